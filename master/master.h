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

#endif
