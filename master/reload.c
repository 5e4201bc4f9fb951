/* SIGHUP: the file is read and checked aside; the running configuration stays on any error. */
#include "reload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "errors.h"
#include "log.h"

extern char **environ;

void wsb_reload_note(struct wsb_config_errors *errs, const char *fmt, ...) {
  if (errs == NULL)
    return;
  char *line;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  char **lines = realloc(errs->lines, (errs->n + 1) * sizeof(char *));
  if (lines == NULL) {
    free(line);
    return;
  }
  errs->lines = lines;
  lines[errs->n++] = line;
}

int wsb_reload_load(const char *path, int workers_override, struct wsb_config *next,
                    struct wsb_config_errors *errs) {
  struct wsb_config_errors found = {0};
  int rc = wsb_config_load(next, path, environ, &found);
  if (rc == 0)
    rc = wsb_config_check_tls(next, &found); /* a broken certificate keeps the old ones */
  for (size_t i = 0; i < found.n; i++) {
    wsb_log_error("reload: %s", found.lines[i]);
    wsb_reload_note(errs, "%s", found.lines[i]);
  }
  wsb_config_errors_free(&found);
  if (rc != 0) {
    wsb_config_free(next);
    return WSB_ECONFIG;
  }
  if (workers_override >= 0)
    next->wsbal.workers = (unsigned)workers_override;
  return 0;
}
