/* SIGHUP: a new configuration and table are prepared aside; the running ones stay on any error. */
#include "reload.h"

#include <stdio.h>

#include "errors.h"
#include "log.h"

extern char **environ;

int wsb_reload_prepare(const char *path, int workers_override, const struct wsb_shm_table *table,
                       const struct wsb_shm *shm, struct wsb_config *next,
                       struct wsb_shm_table *next_table) {
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


  char err[512];
  rc = wsb_shm_table_build(next_table, next, table, shm, err, sizeof(err));
  if (rc != 0) {
    wsb_log_error("reload: %s", err);
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  return 0;
}
