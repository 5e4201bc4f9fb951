/* The segment's creation and its reader/writer protocol: two table copies and a generation. */
#include "shm.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define WSB_SHM_MAGIC 0x77736231u /* "wsb1" */

static size_t segment_size(unsigned nworkers) {
  return sizeof(struct wsb_shm) + (size_t)nworkers * sizeof(struct wsb_shm_worker);
}

struct wsb_shm *wsb_shm_create(unsigned nworkers) {
  /* Anonymous and shared: visible to the processes forked from us, to nobody else. */
  void *p =
      mmap(NULL, segment_size(nworkers), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  struct wsb_shm *shm = p;
  shm->magic = WSB_SHM_MAGIC;
  shm->nworkers = nworkers;
  atomic_store_explicit(&shm->generation, 0, memory_order_relaxed);
  for (unsigned i = 0; i < WSB_SHM_MAX_BACKENDS; i++)
    atomic_store_explicit(&shm->backend_up[i], 1, memory_order_relaxed);
  return shm;
}

void wsb_shm_destroy(struct wsb_shm *shm) {
  if (shm != NULL)
    munmap(shm, segment_size(shm->nworkers));
}

void wsb_shm_publish(struct wsb_shm *shm, const struct wsb_shm_table *t) {
  uint64_t next = atomic_load_explicit(&shm->generation, memory_order_relaxed) + 1;
  /* A slot given to another backend starts with a closed breaker. A backend added or enabled
     after start-up starts its slow start now; at start-up every backend has its full weight. */
  const struct wsb_shm_table *now = &shm->tables[(next - 1) & 1];
  uint64_t now_ms = wsb_shm_now_ms();
  for (uint32_t s = 0; s < t->nslots; s++) {
    bool same = next > 1 && s < now->nslots && now->backends[s].in_use &&
                strcmp(now->backends[s].name, t->backends[s].name) == 0;
    if (t->backends[s].in_use && !same) {
      atomic_store(&shm->breaker_state[s], WSB_BREAKER_CLOSED);
      atomic_store(&shm->breaker_failures[s], 0);
      atomic_store(&shm->breaker_until_ms[s], 0);
      atomic_store(&shm->ramp_since_ms[s], next > 1 ? now_ms : 0);
    } else if (t->backends[s].in_use && t->backends[s].enabled && !now->backends[s].enabled) {
      atomic_store(&shm->ramp_since_ms[s], now_ms);
    }
  }
  /* Readers of the current generation use the other copy; a reader still on the
     copy we overwrite sees the generation move and reads again. */
  memcpy(&shm->tables[next & 1], t, sizeof(*t));
  atomic_store_explicit(&shm->generation, next, memory_order_release);
}

uint64_t wsb_shm_generation(const struct wsb_shm *shm) {
  return atomic_load_explicit(&shm->generation, memory_order_acquire);
}

uint64_t wsb_shm_read(const struct wsb_shm *shm, struct wsb_shm_table *out) {
  for (;;) {
    uint64_t before = atomic_load_explicit(&shm->generation, memory_order_acquire);
    memcpy(out, &shm->tables[before & 1], sizeof(*out));
    atomic_thread_fence(memory_order_acquire);
    /* The copy we read is rewritten only after the generation has moved past it. */
    if (atomic_load_explicit(&shm->generation, memory_order_relaxed) == before)
      return before;
  }
}

uint64_t wsb_shm_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  return ms > 0 ? ms : 1;
}

void wsb_shm_backend_set_up(struct wsb_shm *shm, uint32_t slot, bool up, uint64_t now_ms) {
  if (slot >= WSB_SHM_MAX_BACKENDS)
    return;
  /* The master is the only writer of backend_up. The start is stored first, so a worker that
     sees the backend up also sees it ramping. */
  if (up && !atomic_load(&shm->backend_up[slot]))
    atomic_store(&shm->ramp_since_ms[slot], now_ms > 0 ? now_ms : 1);
  atomic_store(&shm->backend_up[slot], up ? 1 : 0);
}

static unsigned slots_used(const struct wsb_shm *shm) {
  return atomic_load_explicit(&shm->slots_used, memory_order_acquire);
}

uint64_t wsb_shm_sum(const struct wsb_shm *shm, size_t offset) {
  assert(offset % sizeof(uint64_t) == 0 && offset < sizeof(struct wsb_shm_worker));
  uint64_t sum = 0;
  for (unsigned w = 0, n = slots_used(shm); w < n; w++) {
    const _Atomic uint64_t *counter =
        (const _Atomic uint64_t *)((const char *)&shm->workers[w] + offset);
    sum += atomic_load_explicit(counter, memory_order_relaxed);
  }
  return sum;
}

uint64_t wsb_shm_backend_live(const struct wsb_shm *shm, uint32_t slot) {
  return WSB_SHM_SUM(shm, sessions[slot]);
}

uint64_t wsb_shm_backend_opened(const struct wsb_shm *shm, uint32_t slot) {
  return WSB_SHM_SUM(shm, sessions_total[slot]);
}

/* A master killed mid-write leaves seq odd for good: readers give up after this many tries. */
#define LOAD_READ_TRIES 64

uint64_t wsb_shm_backend_load(const struct wsb_shm *shm, uint32_t slot, uint64_t now_ms) {
  const struct wsb_shm_load_report *r = &shm->load[slot];
  uint64_t ttl = atomic_load_explicit(&shm->load_report_ttl_ms[slot], memory_order_relaxed);
  for (int i = 0; i < LOAD_READ_TRIES; i++) {
    uint64_t seq = atomic_load_explicit(&r->seq, memory_order_acquire);
    if (seq & 1)
      continue;
    uint64_t count = atomic_load_explicit(&r->count, memory_order_relaxed);
    uint64_t at = atomic_load_explicit(&r->at_ms, memory_order_relaxed);
    uint64_t opened = atomic_load_explicit(&r->opened, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&r->seq, memory_order_relaxed) != seq)
      continue;
    if (at == 0 || now_ms > at + ttl)
      break;
    /* sessions_total only grows, but a worker slot reused after a crash may start below. */
    uint64_t now_opened = wsb_shm_backend_opened(shm, slot);
    return count + (now_opened > opened ? now_opened - opened : 0);
  }
  return wsb_shm_backend_live(shm, slot);
}

static void load_write(struct wsb_shm *shm, uint32_t slot, uint64_t count, uint64_t at,
                       uint64_t opened) {
  struct wsb_shm_load_report *r = &shm->load[slot];
  uint64_t seq = atomic_load_explicit(&r->seq, memory_order_relaxed);
  atomic_store_explicit(&r->seq, seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&r->count, count, memory_order_relaxed);
  atomic_store_explicit(&r->at_ms, at, memory_order_relaxed);
  atomic_store_explicit(&r->opened, opened, memory_order_relaxed);
  atomic_store_explicit(&r->seq, seq + 2, memory_order_release);
}

void wsb_shm_load_set(struct wsb_shm *shm, uint32_t slot, uint64_t count, uint64_t now_ms) {
  /* at_ms 0 means "none"; wsb_shm_now_ms() never reads 0. */
  load_write(shm, slot, count, now_ms ? now_ms : 1, wsb_shm_backend_opened(shm, slot));
}

void wsb_shm_load_clear(struct wsb_shm *shm, uint32_t slot) {
  load_write(shm, slot, 0, 0, 0);
}

/* Both keys and has_previous as the segment's words. */
static void tickets_pack(const struct wsb_ticket_keys *k, uint64_t w[WSB_SHM_TICKET_WORDS]) {
  memcpy(w, k->current, WSB_TICKET_KEY_LEN);
  memcpy((uint8_t *)w + WSB_TICKET_KEY_LEN, k->previous, WSB_TICKET_KEY_LEN);
  w[WSB_SHM_TICKET_WORDS - 1] = k->has_previous ? 2 : 1; /* 0 = nothing published */
}

void wsb_shm_tickets_set(struct wsb_shm *shm, const struct wsb_ticket_keys *k) {
  struct wsb_shm_tickets *t = &shm->tickets;
  uint64_t w[WSB_SHM_TICKET_WORDS];
  tickets_pack(k, w);
  uint64_t seq = atomic_load_explicit(&t->seq, memory_order_relaxed);
  atomic_store_explicit(&t->seq, seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  for (size_t i = 0; i < WSB_SHM_TICKET_WORDS; i++)
    atomic_store_explicit(&t->words[i], w[i], memory_order_relaxed);
  atomic_store_explicit(&t->seq, seq + 2, memory_order_release);
}

bool wsb_shm_tickets_get(const struct wsb_shm *shm, struct wsb_ticket_keys *out) {
  const struct wsb_shm_tickets *t = &shm->tickets;
  uint64_t w[WSB_SHM_TICKET_WORDS];
  for (int i = 0; i < LOAD_READ_TRIES; i++) {
    uint64_t seq = atomic_load_explicit(&t->seq, memory_order_acquire);
    if (seq & 1)
      continue;
    for (size_t j = 0; j < WSB_SHM_TICKET_WORDS; j++)
      w[j] = atomic_load_explicit(&t->words[j], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&t->seq, memory_order_relaxed) != seq)
      continue;
    if (w[WSB_SHM_TICKET_WORDS - 1] == 0)
      break;
    memcpy(out->current, w, WSB_TICKET_KEY_LEN);
    memcpy(out->previous, (const uint8_t *)w + WSB_TICKET_KEY_LEN, WSB_TICKET_KEY_LEN);
    out->has_previous = w[WSB_SHM_TICKET_WORDS - 1] == 2;
    return true;
  }
  memset(out, 0, sizeof(*out));
  return false;
}

uint64_t wsb_shm_live(const struct wsb_shm *shm) {
  return WSB_SHM_SUM(shm, live);
}

uint64_t wsb_shm_admitted(const struct wsb_shm *shm) {
  return WSB_SHM_SUM(shm, admitted);
}

void wsb_shm_worker_forget(struct wsb_shm *shm, unsigned worker) {
  struct wsb_shm_worker *w = &shm->workers[worker];
  atomic_store_explicit(&w->pid, 0, memory_order_relaxed);
  atomic_store_explicit(&w->live, 0, memory_order_relaxed);
  atomic_store_explicit(&w->admitted, 0, memory_order_relaxed);
  atomic_store_explicit(&w->failover_buffer_bytes, 0, memory_order_relaxed);
  atomic_store_explicit(&w->hold_bytes, 0, memory_order_relaxed);
  for (unsigned i = 0; i < WSB_SHM_MAX_BACKENDS; i++)
    atomic_store_explicit(&w->sessions[i], 0, memory_order_relaxed);
  for (unsigned i = 0; i < WSB_SHM_MAX_POOLS; i++)
    atomic_store_explicit(&w->pool_sessions[i], 0, memory_order_relaxed);
}

void wsb_shm_slot_used(struct wsb_shm *shm, unsigned worker) {
  if (worker + 1 > slots_used(shm))
    atomic_store_explicit(&shm->slots_used, worker + 1, memory_order_release);
}
