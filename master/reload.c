/* SIGHUP: a new configuration and table are prepared aside; the running ones stay on any error. */
#include "reload.h"

#include <stdarg.h>
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

__attribute__((format(printf, 2, 3))) static void discard(struct wsb_config_errors *out,
                                                          const char *fmt, ...) {
  char line[WSB_NAME_MAX + 2 * sizeof(((struct wsb_backend_config *)0)->url_text) + 64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  add_error(out, line);
}

static const struct wsb_backend_config *find(const struct wsb_backend_config *list, size_t n,
                                             const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i].name, name) == 0)
      return &list[i];
  return NULL;
}

static const char *on_off(bool v) {
  return v ? "on" : "off";
}

void wsb_reload_discarded(const struct wsb_backend_config *base, size_t nbase,
                          const struct wsb_backend_config *run, size_t nrun,
                          const struct wsb_config *next, const struct wsb_shm_table *next_table,
                          const struct wsb_discovery *d, struct wsb_config_errors *out) {
  for (size_t i = 0; i < nrun; i++) {
    const struct wsb_backend_config *r = &run[i];
    const struct wsb_backend_config *b = find(base, nbase, r->name);
    const struct wsb_backend_config *n = find(next->backends, next->nbackends, r->name);
    if (n == NULL) {
      if (b == NULL)
        discard(out, "backend %s: removed (added through the API)", r->name);
      continue; /* the file removed it: not a runtime change */
    }
    /* A field counts when the API changed it: it differs from what the file said, or the
       backend came from the API altogether. */
    if (r->enabled != n->enabled && (b == NULL || b->enabled != r->enabled))
      discard(out, "backend %s: %s (%s through the API)", r->name,
              n->enabled ? "enabled" : "disabled", r->enabled ? "enabled" : "disabled");
    if (r->weight != n->weight && (b == NULL || b->weight != r->weight))
      discard(out, "backend %s: weight %u (%u through the API)", r->name, n->weight, r->weight);
    if (strcmp(r->url_text, n->url_text) != 0 && (b == NULL || strcmp(b->url_text, r->url_text)))
      discard(out, "backend %s: url %s (%s through the API)", r->name, n->url_text, r->url_text);
    if (r->max_sessions != n->max_sessions && (b == NULL || b->max_sessions != r->max_sessions))
      discard(out, "backend %s: max_sessions %u (%u through the API)", r->name, n->max_sessions,
              r->max_sessions);
    if (r->backup != n->backup && (b == NULL || b->backup != r->backup))
      discard(out, "backend %s: backup %s (%s through the API)", r->name, on_off(n->backup),
              on_off(r->backup));
  }
  for (size_t i = 0; i < nbase; i++)
    if (find(run, nrun, base[i].name) == NULL &&
        find(next->backends, next->nbackends, base[i].name) != NULL)
      discard(out, "backend %s: back (deleted through the API)", base[i].name);
  /* Changes to one address of a host (NAME#ADDR) are not in any section: discovery holds them. */
  for (size_t i = 0; i < d->noverrides; i++) {
    const struct wsb_override *o = &d->overrides[i];
    const struct wsb_shm_backend *n = NULL;
    for (uint32_t s = 0; s < next_table->nslots && n == NULL; s++)
      if (next_table->backends[s].in_use && strcmp(next_table->backends[s].name, o->name) == 0)
        n = &next_table->backends[s];
    if (n == NULL)
      continue; /* the address is gone with the file's change */
    if (o->enabled >= 0 && (o->enabled != 0) != n->enabled)
      discard(out, "backend %s: %s (%s through the API)", o->name,
              n->enabled ? "enabled" : "disabled", o->enabled ? "enabled" : "disabled");
    if (o->weight > 0 && o->weight != n->weight)
      discard(out, "backend %s: weight %u (%u through the API)", o->name, n->weight, o->weight);
  }
}
