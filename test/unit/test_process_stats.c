/* Unit tests for master/process_stats.c: /proc/PID/stat, limits and /proc/stat as the kernel
 * writes them (command names with spaces and parentheses, unlimited, missing lines), and this
 * process read live. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "process_stats.h"
#include "run_suite.h"

/* A worker's line from a real system: fields 14, 15, 22, 23, 24 are 1543, 377, 2156489,
   3133440, 416; field 8 (tpgid) is -1. */
static const char stat_line[] =
    "9728 (wsbal) S 9724 9724 3416 0 -1 4194304 100 0 0 0 1543 377 0 0 20 0 1 0 2156489 "
    "3133440 416 18446744073709551615 94195559452672 94195559472553 140734969972912 0 0 0 0 0 "
    "0 0 0 0 17 1 0 0 0 0 0\n";

/* A real line, and one whose command name holds spaces and parentheses: a process may name
   itself anything, so the fields start after the last ")". */
START_TEST(test_stat) {
  static const struct {
    const char *text;
    struct wsb_proc_stat want;
  } cases[] = {
      {stat_line,
       {.utime = 1543, .stime = 377, .starttime = 2156489, .vsize = 3133440, .rss = 416}},
      {"1 (a) 2 3 (x) y) R 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 4096 3 1\n",
       {.utime = 7, .stime = 8, .starttime = 99, .vsize = 4096, .rss = 3}},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct wsb_proc_stat st;
    ck_assert_int_eq(wsb_proc_parse_stat(cases[i].text, &st), 0);
    ck_assert_mem_eq(&st, &cases[i].want, sizeof(st));
  }
}
END_TEST

START_TEST(test_stat_bad) {
  struct wsb_proc_stat st;
  const char *bad[] = {
      "",
      "1 wsbal S 0",                                                    /* no parentheses */
      "1 (wsbal)",                                                      /* nothing after the name */
      "1 (wsbal)S 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 4096 3\n",   /* no blank */
      "1 (wsbal) S 0 1 1 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 4096\n",    /* rss missing */
      "1 (wsbal) S 0 1 1 0 -1 0 0 0 0 0 -7 8 0 0 20 0 1 0 99 4096 3\n", /* negative utime */
      "1 (wsbal) S 0 1 1 0 -1 0 0 0 0 0 7x 8 0 0 20 0 1 0 99 4096 3\n", /* not a number */
      "1 (wsbal) S 0 1 1 0 -1 0 0 0 0 0 99999999999999999999999 8 0 0 20 0 1 0 99 4096 3\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(wsb_proc_parse_stat(bad[i], &st) == -EINVAL, "accepted: %s", bad[i]);
}
END_TEST

static const char limits[] =
    "Limit                     Soft Limit           Hard Limit           Units     \n"
    "Max cpu time              unlimited            unlimited            seconds   \n"
    "Max processes             96367                96367                processes \n"
    "Max open files            20000                524288               files     \n"
    "Max locked memory         8388608              8388608              bytes     \n";

START_TEST(test_limits) {
  uint64_t v = 0;
  ck_assert_int_eq(wsb_proc_parse_max_fds(limits, &v), 0);
  ck_assert_uint_eq(v, 20000); /* the soft limit */
  ck_assert_int_eq(wsb_proc_parse_max_fds(
                       "Max open files            unlimited            unlimited  files\n", &v),
                   -ERANGE);
  ck_assert_int_eq(wsb_proc_parse_max_fds("Max processes  1 1 processes\n", &v), -ENOENT);
  ck_assert_int_eq(wsb_proc_parse_max_fds("", &v), -ENOENT);
  ck_assert_int_eq(wsb_proc_parse_max_fds("Max open files   lots  1 files\n", &v), -EINVAL);
}
END_TEST

START_TEST(test_btime) {
  uint64_t v = 0;
  ck_assert_int_eq(wsb_proc_parse_btime("cpu  1 2 3\nintr 5 6 7\nctxt 9\nbtime 1796479784\n"
                                        "processes 12\n",
                                        &v),
                   0);
  ck_assert_uint_eq(v, 1796479784);
  ck_assert_int_eq(wsb_proc_parse_btime("btime 17\n", &v), 0); /* one line, as read */
  ck_assert_uint_eq(v, 17);
  ck_assert_int_eq(wsb_proc_parse_btime("cpu 1\nxbtime 5\n", &v), -ENOENT);
  ck_assert_int_eq(wsb_proc_parse_btime("btime x\n", &v), -ENOENT);
}
END_TEST

/* This process, live: the figures agree with what it knows of itself. */
START_TEST(test_read_self) {
  struct wsb_process_stats st;
  int extra[8];
  for (int i = 0; i < 8; i++)
    extra[i] = open("/dev/null", O_RDONLY);
  ck_assert_int_eq(wsb_process_stats_read(getpid(), &st), 0);
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur != RLIM_INFINITY) {
    ck_assert(st.have_max_fds);
    ck_assert_uint_eq(st.max_fds, rl.rlim_cur);
  }
  ck_assert(st.have_open_fds);
  ck_assert_uint_ge(st.open_fds, 8 + 3);
  /* As many as a listing finds (whose own descriptor may be counted or not). */
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  uint64_t listed = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    listed += e->d_name[0] != '.';
  closedir(d);
  ck_assert_uint_ge(st.open_fds + 1, listed);
  ck_assert_uint_le(st.open_fds, listed);
  ck_assert_uint_gt(st.resident_bytes, 0);
  ck_assert_uint_ge(st.virtual_bytes, st.resident_bytes);
  double now = (double)time(NULL);
  ck_assert_msg(st.start_time > now - 3600 && st.start_time <= now + 2, "start %f now %f",
                st.start_time, now);
  ck_assert(st.cpu_seconds >= 0);
  for (int i = 0; i < 8; i++)
    close(extra[i]);
  struct wsb_process_stats after;
  ck_assert_int_eq(wsb_process_stats_read(getpid(), &after), 0);
  ck_assert_uint_eq(after.open_fds, st.open_fds - 8);
  /* A process that is not there: an error, nothing made up. */
  ck_assert_int_lt(wsb_process_stats_read(0x7ffffffe, &st), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("process_stats");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_stat);
  tcase_add_test(tc, test_stat_bad);
  tcase_add_test(tc, test_limits);
  tcase_add_test(tc, test_btime);
  tcase_add_test(tc, test_read_self);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
