/* Tells the operator which configured keys name features this build does not have yet. */
#ifndef WSB_INACTIVE_H
#define WSB_INACTIVE_H

#include "config.h"

/* Logs one warning per key set away from its default whose feature is not built yet. */
void wsb_warn_inactive_keys(const struct wsb_config *cfg);

#endif
