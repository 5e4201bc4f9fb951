/* SIGHUP: a new configuration and table are prepared aside; the running ones stay on any error. */
#include "reload.h"

#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "log.h"

extern char **environ;

static bool same_addresses(const struct wsb_config *a, const struct wsb_config *b) {
  if (a->listen.naddress != b->listen.naddress)
    return false;
  for (size_t i = 0; i < a->listen.naddress; i++)
    if (a->listen.address[i].port != b->listen.address[i].port ||
        strcmp(a->listen.address[i].host, b->listen.address[i].host) != 0)
      return false;
  return true;
}

int wsb_reload_prepare(const char *path, int workers_override, const struct wsb_config *running,
                       const struct wsb_shm_table *table, const struct wsb_shm *shm,
                       struct wsb_config *next, struct wsb_shm_table *next_table) {
  struct wsb_config_errors errs = {0};
  int rc = wsb_config_load(next, path, environ, &errs);
  for (size_t i = 0; i < errs.n; i++)
    wsb_log_error("reload: %s", errs.lines[i]);
  wsb_config_errors_free(&errs);
  if (rc != 0) {
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  if (workers_override >= 0)
    next->wsbal.workers = (unsigned)workers_override;

  /* Listening sockets and worker processes are not replaced by a reload yet. */
  if (next->wsbal.workers != running->wsbal.workers) {
    wsb_log_warn("reload: [wsbal] workers changed; it takes effect at the next restart");
    next->wsbal.workers = running->wsbal.workers;
  }
  if (!same_addresses(next, running)) {
    wsb_log_warn("reload: [listen] address changed; it takes effect at the next restart");
    memcpy(next->listen.address, running->listen.address, sizeof(next->listen.address));
    next->listen.naddress = running->listen.naddress;
  }

  char err[512];
  rc = wsb_shm_table_build(next_table, next, table, shm, err, sizeof(err));
  if (rc != 0) {
    wsb_log_error("reload: %s", err);
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  return 0;
}
