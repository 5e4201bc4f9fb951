/* DNS discovery: the addresses of each backend section, looked up again every resolve_interval. */
#ifndef WSB_DISCOVERY_H
#define WSB_DISCOVERY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "addrs.h"
#include "config.h"
#include "shm.h"

/* The addresses one section's host had when the published table was built. */
struct wsb_known {
  char name[WSB_NAME_MAX];
  char host[WSB_HOST_MAX];
  uint16_t port;
  struct wsb_addrs addrs;
};

struct wsb_discovery {
  uv_loop_t *loop;
  uv_timer_t timer;
  bool timer_open;
  struct wsb_known *known;
  size_t nknown;
  struct lookup *lookups_running; /* the round in progress */
  unsigned pending;
  bool again;   /* a round was asked for while one ran */
  bool changed; /* some section's addresses changed and are not published yet */
  bool closing;
  uint64_t lookups; /* background lookups finished: wsbal_resolves_total */
  uint64_t errors;  /* of which failed: wsbal_resolve_errors_total */
  uint64_t rounds;  /* rounds finished */
  /* Publishes a table built from the known addresses; 0 or an error (then retried next round). */
  int (*on_change)(void *arg);
  void *arg;
};

/*
 * The addresses of each of cfg's backends, in its order (*out is malloc'd):
 * a section whose name, host and port are known reuses its addresses, any other
 * is looked up now, blocking (start-up, reload, admin add). Returns 0, or an
 * error with "FILE:LINE: backend NAME: cannot resolve HOST: why" in err.
 */
int wsb_discovery_lookup(const struct wsb_discovery *d, const struct wsb_config *cfg,
                         struct wsb_addrs **out, char *err, size_t errlen);

/* Looks cfg->backends[i]'s host up now, blocking, into out. Returns 0, or an error with
   "FILE:LINE: backend NAME: cannot resolve HOST: why" in err. */
int wsb_discovery_resolve(const struct wsb_config *cfg, size_t i, struct wsb_addrs *out, char *err,
                          size_t errlen);

/* A table built from cfg and addrs was published: they become what rounds compare to. */
int wsb_discovery_commit(struct wsb_discovery *d, const struct wsb_config *cfg,
                         const struct wsb_addrs *addrs);

/*
 * Makes addrs known as the addresses of section name (host, port), as if a
 * lookup had found them, so the next table built with that section does not
 * look its host up again (an admin add resolved without blocking). Returns 0
 * or -ENOMEM. wsb_discovery_unlearn forgets them when that table failed.
 */
int wsb_discovery_learn(struct wsb_discovery *d, const char *name, const char *host, uint16_t port,
                        const struct wsb_addrs *addrs);
void wsb_discovery_unlearn(struct wsb_discovery *d, const char *name);

/* Logs a host's addresses as a lookup found them ("backend NAME: HOST is A B"), and how many
   past WSB_ADDRS_MAX were left out. */
void wsb_discovery_log_addrs(const char *name, const char *host, const struct wsb_addrs *addrs,
                             size_t dropped);

/* Starts the timer in loop (0 = never again; only reloads refresh). */
void wsb_discovery_start(struct wsb_discovery *d, uv_loop_t *loop, uint64_t interval_ms);

/* Looks every host name up again now, without blocking (uv_getaddrinfo). */
void wsb_discovery_refresh(struct wsb_discovery *d);

/* Cancels lookups and closes the timer; a running round's answers are dropped. */
void wsb_discovery_close(struct wsb_discovery *d);
void wsb_discovery_free(struct wsb_discovery *d);

#endif
