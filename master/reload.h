/* Reading the configuration again (SIGHUP): load and validate the file, or refuse. */
#ifndef WSB_RELOAD_H
#define WSB_RELOAD_H

#include "config.h"

/*
 * Loads path (with the environment and the -w override, workers_override
 * < 0 for none) into next and checks its TLS files. Logs every problem and
 * adds it to errs (when not NULL). Returns 0, or WSB_ECONFIG with next freed.
 * The backend table is built from it by the one publish path (master.c).
 */
int wsb_reload_load(const char *path, int workers_override, struct wsb_config *next,
                    struct wsb_config_errors *errs);

/* Appends a formatted line to a reload's (or -t's) list; nothing when errs is NULL or memory
   runs out (the log has the line). */
__attribute__((format(printf, 2, 3))) void wsb_reload_note(struct wsb_config_errors *errs,
                                                           const char *fmt, ...);

#endif
