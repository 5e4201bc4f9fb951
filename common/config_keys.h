/* The table of configuration keys and their parsers, for the config*.c files and the tests. */
#ifndef WSB_CONFIG_KEYS_H
#define WSB_CONFIG_KEYS_H

#include <stdarg.h>
#include <stddef.h>

#include "config.h"

/* Every section kind; the order is SPEC.md's, and CFG_SEC_NONE/SKIP only exist while reading a
 * file. */
enum cfg_section {
  CFG_SEC_WSBAL,
  CFG_SEC_LISTEN,
  CFG_SEC_UPSTREAM,
  CFG_SEC_ADMIN,
  CFG_SEC_BACKEND,
  CFG_SEC_POOL, /* [pool:NAME]: [upstream]'s keys */
  CFG_SEC_ROUTE,
  CFG_SEC_NONE, /* before the first section header */
  CFG_SEC_SKIP, /* inside an unknown, malformed or duplicate section: its keys are ignored */
};

/* More keys than any section has, so the loader sizes its per-key arrays at compile time. */
#define CFG_MAX_KEYS         64
#define CFG_MAX_BACKEND_KEYS 8
#define CFG_MAX_ROUTE_KEYS   8

/* "wsbal", "listen", "upstream", "admin", "backend", "pool" or "route". */
const char *wsb__cfg_section_name(enum cfg_section sec);

/* How many keys section sec has (0 for CFG_SEC_NONE and CFG_SEC_SKIP), and the name of its key i
 * (i below that count; NULL past it): every key the parser accepts, for checks that document or
 * list them all. */
size_t wsb__cfg_key_count(enum cfg_section sec);
const char *wsb__cfg_key_name(enum cfg_section sec, size_t i);

/* The index of key name in section sec's own table (below CFG_MAX_KEYS, or CFG_MAX_BACKEND_KEYS and
 * CFG_MAX_ROUTE_KEYS for a backend and a route), or -1. */
int wsb__cfg_key_find(enum cfg_section sec, const char *name);

/*
 * Parses value into key idx of section sec. base is the struct wsb_config
 * for [wsbal], [listen] and [admin], the struct wsb_upstream_config for
 * [upstream] and a pool, the struct wsb_backend_config for a backend and the
 * struct wsb_route_config for a route.
 * label is the section as the user wrote it ("[listen]", "[backend:app1]").
 * On failure the field is unchanged, a sentence without location goes to
 * msg, and the result is WSB_EVALUE or WSB_ERANGE_VALUE.
 */
int wsb__cfg_key_apply(enum cfg_section sec, int idx, void *base, const char *label,
                       const char *value, char *msg, size_t msglen);

/* Splits a comma list into trimmed, non-empty, heap-allocated items. */
void wsb__cfg_strlist_split(const char *value, struct wsb_strlist *list);
void wsb__cfg_strlist_free(struct wsb_strlist *list);

/* strdup that treats running out of memory as fatal, as every start-up allocation does. */
char *wsb__cfg_strdup(const char *s);
void *wsb__cfg_must(void *p);

/* Appends one formatted line to errs. */
void wsb__cfg_errors_add(struct wsb_config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
