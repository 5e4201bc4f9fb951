/* TLS session ticket keys: made by the master, rotated on a timer, published through the segment.
 */
#include "tickets.h"

#include <errno.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"

int wsb_tickets_init(struct wsb_tickets *t, struct wsb_shm *shm) {
  uint8_t fresh[WSB_TICKET_KEY_LEN];
  t->shm = shm;
  if (RAND_bytes(fresh, sizeof(fresh)) != 1)
    return -EIO;
  wsb_ticket_keys_init(&t->keys, fresh);
  OPENSSL_cleanse(fresh, sizeof(fresh));
  wsb_shm_tickets_set(shm, &t->keys);
  return 0;
}

/*
 * One key per interval, the one before kept to decrypt: every worker reads the segment at each
 * ticket, so all of them move to the new key at the same moment, and a ticket made just before
 * a rotation resumes until the next one.
 */
static void on_rotate(uv_timer_t *timer) {
  struct wsb_tickets *t = timer->data;
  uint8_t fresh[WSB_TICKET_KEY_LEN];
  if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
    wsb_log_error("TLS session ticket keys not rotated: no random bytes; trying at the next "
                  "interval");
    return;
  }
  wsb_ticket_keys_rotate(&t->keys, fresh);
  OPENSSL_cleanse(fresh, sizeof(fresh));
  wsb_shm_tickets_set(t->shm, &t->keys);
  wsb_log_debug("TLS session ticket keys rotated");
}

void wsb_tickets_schedule(struct wsb_tickets *t, uv_loop_t *loop, uint64_t interval_ms) {
  if (!t->timer_ready) {
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    t->timer_ready = true;
  } else if (interval_ms == t->interval_ms) {
    return; /* a reload that kept it: the rotation stays on time */
  }
  t->interval_ms = interval_ms;
  uv_timer_start(&t->timer, on_rotate, interval_ms, interval_ms);
}

void wsb_tickets_close(struct wsb_tickets *t) {
  if (t->timer_ready)
    uv_close((uv_handle_t *)&t->timer, NULL);
  t->timer_ready = false;
  OPENSSL_cleanse(&t->keys, sizeof(t->keys));
}
