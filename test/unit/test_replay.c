/* Unit tests for worker/replay.c, the failover replay window: what is kept, what an answer
 * releases, the two bounds, the worker's list of windows, and what a move resends. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "run_suite.h"
#include "session.h"

/* replay.c pauses a client whose window is full while its session moves; the test counts it. */
static unsigned pauses;
void wsb__leg_pause(struct wsb_leg *l) {
  l->paused = true;
  pauses++;
}

static struct wsb_worker *w;

static void setup(void) {
  w = calloc(1, sizeof(*w));
  w->table = calloc(1, sizeof(*w->table));
  w->stats = calloc(1, sizeof(*w->stats));
  /* A session's failover keys are its pool's ("default" here); the total is the worker's. */
  w->table->npools = 1;
  w->table->pools[0].in_use = true;
  w->table->pools[0].settings.failover = true;
  w->table->pools[0].settings.failover_buffer = 1024;
  w->table->settings.failover_buffer_total = 1u << 20;
  pauses = 0;
}

static void teardown(void) {
  free(w->stats);
  free(w->table);
  free(w);
}

static struct wsb_session *new_session(void) {
  struct wsb_session *s = calloc(1, sizeof(*s));
  s->w = w;
  s->state = S_RELAY;
  s->client.s = s->backend.s = s;
  s->client.is_client = true;
  s->client.peer = &s->backend;
  s->backend.peer = &s->client;
  return s;
}

static void free_session(struct wsb_session *s) {
  wsb__replay_drop(s);
  free(s);
}

/* A masked client text frame (continuation unless first) of n payload bytes of c (the payload
   left as it is: the window never looks into it). */
static size_t frame(uint8_t *out, bool first, bool fin, size_t n, char c) {
  static const uint8_t mask[4] = {1, 2, 3, 4};
  size_t hl = wsb_frame_header_write(out, fin, first ? WSB_OP_TEXT : WSB_OP_CONT, n, mask);
  memset(out + hl, c, n);
  return hl + n;
}

/* Keeps one whole single-frame message; returns its length on the wire. */
static size_t keep_message(struct wsb_session *s, size_t n, char c) {
  uint8_t buf[512];
  size_t len = frame(buf, true, true, n, c);
  wsb__replay_keep(s, buf, len, true);
  return len;
}

/* The worker's list of windows, at either end; NULL when empty. */
static struct wsb_session *oldest(void) {
  return WSB_LIST_FIRST(&w->windows, struct wsb_session, window_link);
}

static struct wsb_session *newest(void) {
  return w->windows.last != NULL
             ? wsb_container_of(w->windows.last, struct wsb_session, window_link)
             : NULL;
}

/* The worker's total and the segment's gauge both follow the window's allocation. */
static void ck_accounted(const struct wsb_session *a, const struct wsb_session *b) {
  uint64_t cap = a->replay.cap + (b != NULL ? b->replay.cap : 0);
  ck_assert_uint_eq(w->replay_bytes, cap);
  ck_assert_uint_eq(atomic_load(&w->stats->failover_buffer_bytes), cap);
}

START_TEST(an_answer_releases_the_oldest_message) {
  struct wsb_session *s = new_session();
  size_t a = keep_message(s, 10, 'a');
  size_t b = keep_message(s, 20, 'b');
  size_t c = keep_message(s, 30, 'c');
  ck_assert_uint_eq(s->replay.len, a + b + c);
  ck_assert(s->window_listed);
  ck_assert_ptr_eq(oldest(), s);
  ck_accounted(s, NULL);
  wsb__replay_answered(s);
  ck_assert_uint_eq(s->replay.len, b + c);
  ck_assert_uint_eq(wsb_buf_data(&s->replay)[b + c - 1], 'c');
  wsb__replay_answered(s);
  wsb__replay_answered(s);
  ck_assert_uint_eq(s->replay.len, 0);
  wsb__replay_answered(s); /* nothing left to answer */
  ck_assert_uint_eq(s->replay.len, 0);
  free_session(s);
  ck_assert_uint_eq(w->replay_bytes, 0);
  ck_assert_ptr_null(oldest());
}
END_TEST

START_TEST(a_fragmented_message_is_released_whole) {
  struct wsb_session *s = new_session();
  uint8_t buf[512];
  size_t f1 = frame(buf, true, false, 5, 'x');
  wsb__replay_keep(s, buf, f1, false);
  ck_assert_uint_eq(s->replay_open, f1);
  /* The open message at the end is not an answered one: an answer now releases nothing. */
  wsb__replay_answered(s);
  ck_assert_uint_eq(s->replay.len, f1);
  size_t f2 = frame(buf, false, true, 7, 'y');
  wsb__replay_keep(s, buf, f2, true);
  ck_assert_uint_eq(s->replay_open, 0);
  size_t m = keep_message(s, 3, 'z');
  wsb__replay_answered(s);
  ck_assert_uint_eq(s->replay.len, m); /* both frames of the first message went */
  free_session(s);
}
END_TEST

START_TEST(past_failover_buffer_the_oldest_give_way) {
  struct wsb_session *s = new_session();
  w->table->pools[0].settings.failover_buffer = 300;
  size_t one = keep_message(s, 100, 'a'); /* 106 bytes each: two fit, a third pushes one out */
  keep_message(s, 100, 'b');
  ck_assert_uint_eq(s->replay.len, 2 * one);
  keep_message(s, 100, 'c');
  ck_assert_uint_eq(s->replay.len, 2 * one);
  ck_assert_uint_eq(wsb_buf_data(&s->replay)[one - 1], 'b');
  /* A message larger than the bound is not kept, and a whole one costs nothing else. */
  uint8_t big[512];
  size_t len = frame(big, true, true, 400, 'd');
  wsb__replay_keep(s, big, len, true);
  ck_assert(!s->client.partial_out);
  /* A fragment that cannot be kept pins the session: it cannot move until its message ends. */
  len = frame(big, true, false, 400, 'e');
  wsb__replay_keep(s, big, len, false);
  ck_assert(s->client.partial_out);
  free_session(s);
}
END_TEST

START_TEST(past_failover_buffer_total_the_oldest_window_goes) {
  struct wsb_session *old = new_session(), *young = new_session();
  keep_message(old, 100, 'a');
  keep_message(young, 100, 'b');
  ck_assert_ptr_eq(oldest(), old);
  ck_assert_ptr_eq(newest(), young);
  ck_accounted(old, young);
  /* Full, not past; then young's window grows (256 bytes to 512) and the oldest gives up. */
  w->table->settings.failover_buffer_total = w->replay_bytes;
  keep_message(young, 200, 'c');
  ck_assert_uint_eq(old->replay.len, 0);
  ck_assert(!old->window_listed);
  ck_assert_ptr_eq(oldest(), young);
  ck_assert_uint_gt(young->replay.len, 0);
  ck_accounted(old, young);
  free_session(old);
  free_session(young);
  ck_assert_uint_eq(w->replay_bytes, 0);
}
END_TEST

START_TEST(a_moving_session_holds_and_pauses) {
  struct wsb_session *s = new_session();
  w->table->pools[0].settings.failover_buffer = 200;
  keep_message(s, 50, 'a');
  s->state = S_FAILOVER;
  wsb__replay_account(s);
  ck_assert(!s->window_listed); /* a moving session's window is never given up */
  s->replay_unsent = true;
  uint8_t buf[512];
  size_t len = frame(buf, true, true, 100, 'b');
  ck_assert_int_eq(wsb__replay_hold(s, buf, len), 0);
  ck_assert_uint_eq(pauses, 0);
  ck_assert(wsb__replay_client_may_read(s));
  ck_assert_int_eq(wsb__replay_hold(s, buf, len), 0); /* past failover_buffer: held anyway */
  ck_assert_uint_eq(pauses, 1);
  ck_assert(s->client.paused);
  ck_assert(!wsb__replay_client_may_read(s));
  /* No answer counts while the new backend has not been sent the window. */
  size_t before = s->replay.len;
  wsb__replay_answered(s);
  ck_assert_uint_eq(s->replay.len, before);
  free_session(s);
}
END_TEST

START_TEST(settling_cuts_a_frame_cut_short) {
  struct wsb_session *s = new_session();
  s->state = S_FAILOVER;
  uint8_t buf[512];
  size_t whole = frame(buf, true, true, 10, 'a');
  wsb__replay_hold(s, buf, whole);
  size_t f1 = frame(buf, true, false, 10, 'b');
  wsb__replay_hold(s, buf, f1);
  wsb__replay_settle(s);
  /* A whole frame of an open message stays as its kept part. */
  ck_assert_uint_eq(s->replay.len, whole + f1);
  ck_assert_uint_eq(s->replay_open, f1);
  ck_assert(!s->client.partial_out);
  /* Half a frame (streamed in while moving) cannot be repeated: the open message leaves. */
  size_t f2 = frame(buf, false, true, 100, 'c');
  wsb__replay_hold(s, buf, f2 - 50);
  wsb__replay_settle(s);
  ck_assert_uint_eq(s->replay.len, whole);
  ck_assert_uint_eq(s->replay_open, 0);
  ck_assert(s->client.partial_out);
  free_session(s);
}
END_TEST

START_TEST(without_failover_nothing_is_kept) {
  struct wsb_session *s = new_session();
  w->table->pools[0].settings.failover = false;
  keep_message(s, 10, 'a');
  ck_assert_uint_eq(s->replay.len, 0);
  ck_assert(!s->window_listed);
  free_session(s);
}
END_TEST

int main(void) {
  Suite *s = suite_create("replay");
  TCase *tc = tcase_create("window");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, an_answer_releases_the_oldest_message);
  tcase_add_test(tc, a_fragmented_message_is_released_whole);
  tcase_add_test(tc, past_failover_buffer_the_oldest_give_way);
  tcase_add_test(tc, past_failover_buffer_total_the_oldest_window_goes);
  tcase_add_test(tc, a_moving_session_holds_and_pauses);
  tcase_add_test(tc, settling_cuts_a_frame_cut_short);
  tcase_add_test(tc, without_failover_nothing_is_kept);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
