/* Keys that are parsed and validated but whose feature is not built yet: never silently ignored. */
#include "inactive.h"

#include <stdbool.h>
#include <string.h>

#include "log.h"

void wsb_warn_inactive_keys(const struct wsb_config *cfg) {
  struct wsb_config d;
  wsb_config_defaults(&d);
  const struct {
    const char *key;
    bool set;
  } keys[] = {
      {"[upstream] failover", cfg->upstream.failover != d.upstream.failover},
      {"[upstream] failover_codes", cfg->upstream.nfailover_codes != d.upstream.nfailover_codes ||
                                        memcmp(cfg->upstream.failover_codes,
                                               d.upstream.failover_codes,
                                               sizeof(d.upstream.failover_codes)) != 0},
      {"[upstream] max_failovers", cfg->upstream.max_failovers != d.upstream.max_failovers},
      {"[upstream] failover_buffer", cfg->upstream.failover_buffer != d.upstream.failover_buffer},
  };
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (keys[i].set)
      wsb_log_warn("%s is set, but its feature is not built yet: it has no effect", keys[i].key);
  wsb_config_free(&d);
}
