/* The passive breaker: consecutive connect/upgrade failures take a backend out for a cooldown,
   then exactly one trial session, across all workers, decides whether it comes back. */
#include "log.h"
#include "worker.h"

/* A trial that its worker never reports (it died) is given up after this long. */
#define TRIAL_GRACE_MS 2000

/* The breaker of a backend follows its pool's keys (the pool it is in now). */
static const struct wsb_shm_settings *slot_settings(const struct wsb_worker *w, uint32_t slot) {
  return wsb_shm_pool_settings(w->table, w->table->backends[slot].pool);
}

bool wsb_breaker_allows(struct wsb_worker *w, uint32_t slot) {
  struct wsb_shm *shm = w->shm;
  uint32_t state = atomic_load(&shm->breaker_state[slot]);
  if (state == WSB_BREAKER_CLOSED)
    return true;
  uint64_t now = uv_now(&w->loop), until = atomic_load(&shm->breaker_until_ms[slot]);
  if (now < until)
    return false; /* cooling down, or another session's trial is under way */
  /* The cooldown is over (or a trial was lost): the first worker to swap the state runs the
     trial; the others keep away until it has decided. */
  uint64_t trial_until = now + slot_settings(w, slot)->connect_timeout_ms + TRIAL_GRACE_MS;
  if (!atomic_compare_exchange_strong(&shm->breaker_state[slot], &state, WSB_BREAKER_TRIAL))
    return false;
  atomic_store(&shm->breaker_until_ms[slot], trial_until);
  wsb_log_info("breaker of backend %s: trial session", w->table->backends[slot].name);
  return true;
}

void wsb_breaker_failure(struct wsb_worker *w, uint32_t slot) {
  struct wsb_shm *shm = w->shm;
  const struct wsb_shm_settings *cfg = slot_settings(w, slot);
  uint32_t threshold = cfg->breaker_threshold;
  uint32_t failures = atomic_fetch_add(&shm->breaker_failures[slot], 1) + 1;
  uint32_t state = atomic_load(&shm->breaker_state[slot]);
  bool trip = (state == WSB_BREAKER_CLOSED && threshold > 0 && failures >= threshold) ||
              state == WSB_BREAKER_TRIAL;
  if (!trip || !atomic_compare_exchange_strong(&shm->breaker_state[slot], &state, WSB_BREAKER_OPEN))
    return;
  atomic_store(&shm->breaker_until_ms[slot], uv_now(&w->loop) + cfg->breaker_cooldown_ms);
  wsb_log_warn("breaker of backend %s open for %llu ms after %u failures in a row",
               w->table->backends[slot].name, (unsigned long long)cfg->breaker_cooldown_ms,
               failures);
}

/* An answer that says nothing about the backend's health (a status for the client's request)
   gives a trial under way back at once: the next session decides. Held until it expired, the
   trial would let a client keep a recovered backend out by asking for a failing path. */
void wsb_breaker_no_verdict(struct wsb_worker *w, uint32_t slot) {
  struct wsb_shm *shm = w->shm;
  uint32_t state = WSB_BREAKER_TRIAL;
  if (atomic_compare_exchange_strong(&shm->breaker_state[slot], &state, WSB_BREAKER_OPEN))
    atomic_store(&shm->breaker_until_ms[slot], uv_now(&w->loop));
}

void wsb_breaker_success(struct wsb_worker *w, uint32_t slot) {
  struct wsb_shm *shm = w->shm;
  atomic_store(&shm->breaker_failures[slot], 0);
  uint32_t state = atomic_load(&shm->breaker_state[slot]);
  if (state != WSB_BREAKER_CLOSED &&
      atomic_compare_exchange_strong(&shm->breaker_state[slot], &state, WSB_BREAKER_CLOSED)) {
    /* Back after a trial: it ramps up like a backend that came up (slow start). */
    atomic_store(&shm->ramp_since_ms[slot], wsb_shm_now_ms());
    wsb_log_info("breaker of backend %s closed", w->table->backends[slot].name);
  }
}
