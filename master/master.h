/* The master role: binds, maps the segment, forks and supervises workers, handles signals. */
#ifndef WSB_MASTER_H
#define WSB_MASTER_H

#include "config.h"

/* Runs the master until it stops; returns the process exit status of SPEC.md (0 or 3). */
int wsb_master_run(const struct wsb_config *cfg);

#endif
