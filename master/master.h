/* The master role: binds, maps the segment, forks and supervises workers, handles signals. */
#ifndef WSB_MASTER_H
#define WSB_MASTER_H

#include "config.h"

/*
 * Runs the master until it stops; returns the process exit status of SPEC.md
 * (0 or 3). cfg was loaded from path; a reload replaces its contents (the
 * caller frees it afterwards). workers_override is -w's value, or -1.
 */
int wsb_master_run(struct wsb_config *cfg, const char *path, int workers_override);

/*
 * wsbal -t: what a start would find wrong beyond the file itself, appended to
 * errs as "FILE:LINE: message": a user or group this system does not have, a
 * backend host that does not resolve (every one, looked up now), a table the
 * segment cannot hold. Binds nothing, as nginx -t does not. Returns 0 or
 * WSB_ECONFIG.
 */
int wsb_master_check(const struct wsb_config *cfg, struct wsb_config_errors *errs);

#endif
