/* Error-log lines a peer can cause at will (rejected upgrades, failed TLS), rate-limited. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "worker.h"

void wsb_worker_log_event(struct wsb_worker *w, enum wsb_log_kind kind,
                          const struct wsb_log_field *fields, size_t n, const char *fmt, ...) {
  if (!wsb_log_enabled(WSB_LOG_INFO))
    return; /* not written anyway: nothing is suppressed */
  uint32_t rate = w->table->settings.log_rate_limit;
  uint64_t dropped;
  if (!wsb_log_limit_take(&w->log_limits[kind], rate, wsb_log_limit_burst(rate), uv_now(&w->loop),
                          &dropped)) {
    wsb_shm_add(&w->stats->log_suppressed[kind], 1);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  if (dropped == 0) {
    wsb_log_fieldsv(WSB_LOG_INFO, fields, n, fmt, ap);
    va_end(ap);
    return;
  }
  /* The count goes in the message, for a reader, and as a field, for a log shipper. */
  char msg[WSB_LOG_MSG_MAX];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  struct wsb_log_field all[WSB_LOG_FIELDS_MAX];
  size_t k = n < WSB_LOG_FIELDS_MAX - 1 ? n : WSB_LOG_FIELDS_MAX - 1;
  for (size_t i = 0; i < k; i++)
    all[i] = fields[i];
  all[k++] = wsb_log_num("suppressed", (int64_t)dropped);
  wsb_log_fields(WSB_LOG_INFO, all, k, "%s (%" PRIu64 " similar lines suppressed)", msg, dropped);
}
