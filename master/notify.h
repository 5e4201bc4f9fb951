/* The sd_notify protocol: one datagram to $NOTIFY_SOCKET per state change; silent without it. */
#ifndef WSB_NOTIFY_H
#define WSB_NOTIFY_H

#include <stdint.h>

/*
 * Sends "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...", or several of
 * them separated by newlines. Returns 0, 0 when not run by systemd, or
 * -errno when the socket is there but the message could not be sent.
 */
int wsb_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * EXTEND_TIMEOUT_USEC: systemd lets the current state (a stop's drain) run
 * ms longer from now, whatever the unit's TimeoutStopSec says.
 */
int wsb_notify_extend(uint64_t ms);

#endif
