/* SIGHUP: a new configuration and table are prepared aside; the running ones stay on any error. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"

extern char **environ;

static void add_error(struct wsb_config_errors *errs, const char *line) {
  if (errs == NULL)
    return;
  char **lines = realloc(errs->lines, (errs->n + 1) * sizeof(char *));
  if (lines == NULL)
    return;
  errs->lines = lines;
  if ((lines[errs->n] = strdup(line)) != NULL)
    errs->n++;
}

int wsb_reload_prepare(const char *path, int workers_override, const struct wsb_shm_table *table,
                       const struct wsb_shm *shm, const struct wsb_discovery *d,
                       struct wsb_config *next, struct wsb_shm_table *next_table,
                       struct wsb_addrs **next_addrs, struct wsb_config_errors *errs) {
  struct wsb_config_errors found = {0};
  int rc = wsb_config_load(next, path, environ, &found);
  if (rc == 0)
    rc = wsb_config_check_tls(next, &found); /* a broken certificate keeps the old ones */
  for (size_t i = 0; i < found.n; i++) {
    wsb_log_error("reload: %s", found.lines[i]);
    add_error(errs, found.lines[i]);
  }
  wsb_config_errors_free(&found);
  if (rc != 0) {
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  if (workers_override >= 0)
    next->wsbal.workers = (unsigned)workers_override;

  char err[512];
  rc = wsb_discovery_lookup(d, next, next_addrs, err, sizeof(err));
  if (rc == 0) {
    rc = wsb_shm_table_build(next_table, next, *next_addrs, table, shm, err, sizeof(err));
    if (rc != 0) {
      free(*next_addrs);
      *next_addrs = NULL;
    }
  }
  if (rc != 0) {
    wsb_log_error("reload: %s", err);
    add_error(errs, err);
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  return 0;
}
