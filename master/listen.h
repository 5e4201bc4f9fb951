/* Listening sockets: one SO_REUSEPORT socket per worker slot and address, bound by the master. */
#ifndef WSB_LISTEN_H
#define WSB_LISTEN_H

#include "values.h"

#include <stdbool.h>

/*
 * Opens a non-blocking TCP socket bound to hp with SO_REUSEADDR and, when
 * reuseport, SO_REUSEPORT (IPv6 sockets are v6-only, so [::] and 0.0.0.0
 * combine) and listening. Returns the descriptor or a negative errno; err
 * says what failed.
 */
int wsb_listen_open(const struct wsb_hostport *hp, bool reuseport, char *err, size_t errlen);

/* Looks hp's host up as wsb_listen_open would, binding nothing (wsbal -t). Returns 0, or
   -EADDRNOTAVAIL with err saying why. */
int wsb_listen_resolve(const struct wsb_hostport *hp, char *err, size_t errlen);

#endif
