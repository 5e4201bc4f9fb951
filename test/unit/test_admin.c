/* Unit tests for master/admin.c on a private loop: incremental heads, accept failures, Host. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "http.h"
#include "run_suite.h"

/*
 * Linked with --wrap=calloc and --wrap=wsb_http_feed: calls from admin.c
 * land here, so a test can make the next calloc fail and count the bytes
 * the server hands its head parser.
 */
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
ssize_t __real_wsb_http_feed(struct wsb_http_head *h, const char *buf, size_t len);
ssize_t __wrap_wsb_http_feed(struct wsb_http_head *h, const char *buf, size_t len);

static int calloc_failures; /* the next this many connection-sized callocs return NULL */
static int calloc_failed;   /* how many did */
static size_t fed_bytes;

/* Only a connection's size (its buffer alone is 80 KiB) fails: check allocates too. */
void *__wrap_calloc(size_t n, size_t size) {
  if (calloc_failures > 0 && n * size > 64 * 1024) {
    calloc_failures--;
    calloc_failed++;
    return NULL;
  }
  return __real_calloc(n, size);
}

ssize_t __wrap_wsb_http_feed(struct wsb_http_head *h, const char *buf, size_t len) {
  fed_bytes += len;
  return __real_wsb_http_feed(h, buf, len);
}

static uv_loop_t loop;
static struct wsb_config cfg;
static struct wsb_admin admin;
static int port;
static int routed;

static uint64_t later_conns[8]; /* the requests /later keeps waiting */
static size_t nlater;

static void fill(struct wsb_admin_reply *r) {
  r->status = 200;
  r->body = malloc(8);
  memcpy(r->body, "{\"x\":1}\n", 8);
  r->len = 8;
}

#define BIG (1024 * 1024)

/* Every path answers 200 {"x":1}: /later when the test says, /sync before the handler returns;
   /big answers a megabyte, more than a client that does not read lets through. */
static void route(void *ctx, const struct wsb_admin_request *req, struct wsb_admin_reply *r) {
  routed++;
  if (strcmp(req->path, "/big") == 0) {
    r->status = 200;
    r->body = calloc(1, BIG);
    r->len = BIG;
  } else if (strcmp(req->path, "/later") == 0) {
    if (nlater < 8)
      later_conns[nlater++] = req->conn;
  } else if (strcmp(req->path, "/sync") == 0) {
    struct wsb_admin_reply now = {0};
    fill(&now);
    wsb_admin_complete(&admin, req->conn, &now);
  } else {
    fill(r);
  }
}

static void setup(void) {
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  wsb_config_defaults(&cfg);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* Accepted sockets inherit a small send buffer: a megabyte answer cannot vanish into it. */
  int sndbuf = 16 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  socklen_t sl = sizeof(sin);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
  port = ntohs(sin.sin_port);
  memset(&admin, 0, sizeof(admin));
  ck_assert_int_eq(wsb_admin_start(&admin, &loop, fd, &cfg, route, NULL), 0);
  calloc_failures = calloc_failed = routed = 0;
  nlater = 0;
  fed_bytes = 0;
}

static void teardown(void) {
  wsb_admin_stop(&admin);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  wsb_config_free(&cfg);
}

static int client_with_rcvbuf(int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
  ck_assert(rc == 0 || errno == EINPROGRESS);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static int client(void) {
  return client_with_rcvbuf(0);
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) {
      uv_run(&loop, UV_RUN_NOWAIT);
      continue;
    }
    ck_assert_int_gt(w, 0);
    p += w;
    n -= (size_t)w;
  }
}

/* Runs the loop for ms milliseconds. */
static void run_for(unsigned ms) {
  uint64_t until = uv_hrtime() + ms * 1000000ull;
  while (uv_hrtime() < until) {
    uv_run(&loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 2);
  }
}

/* True once the server has closed fd (seen by the kernel, whatever is left unread). */
static bool ended(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != TCP_ESTABLISHED;
}

/* Reads fd until the server closes it (true) or want bytes came or 2 s passed (false). */
static bool drain(int fd, size_t want, size_t *got) {
  char buf[65536];
  *got = 0;
  uint64_t deadline = uv_hrtime() + 2000000000ull;
  while (uv_hrtime() < deadline && *got < want) {
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      return true;
    if (n > 0)
      *got += (size_t)n;
    else
      poll(NULL, 0, 1);
  }
  return false;
}

/* Opens a connection in a state: idle (nothing sent), reading (half a head), writing (/big
   asked, never read) or waiting (/later). */
static int open_as(const char *what) {
  int fd = client_with_rcvbuf(strcmp(what, "writing") == 0 ? 1024 : 0);
  const char *send_this =
      strcmp(what, "reading") == 0   ? "GET /healthz HTTP/1.1\r\n"
      : strcmp(what, "writing") == 0 ? "GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      : strcmp(what, "waiting") == 0 ? "GET /later HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                                     : "";
  uint64_t accepted = admin.next_conn;
  size_t fed = fed_bytes, later = nlater;
  int answered = routed;
  send_all(fd, send_this, strlen(send_this));
  /* Until the server has accepted it and, if it sent something, read, routed or deferred it. */
  uint64_t deadline = uv_hrtime() + 2000000000ull;
  while (uv_hrtime() < deadline &&
         (admin.next_conn == accepted || (*send_this != '\0' && fed_bytes == fed) ||
          (strcmp(what, "writing") == 0 && routed == answered) ||
          (strcmp(what, "waiting") == 0 && nlater == later))) {
    uv_run(&loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 1);
  }
  ck_assert_uint_gt(admin.next_conn, accepted);
  return fd;
}

/*
 * Runs the loop until fd has an answer head (returns its status), the
 * server closed it (returns 0) or 2 s passed (returns -1). The loop runs
 * in between, so the server makes progress while the client waits.
 */
static int read_status(int fd) {
  char buf[4096];
  size_t len = 0;
  uint64_t deadline = uv_hrtime() + 2000000000ull;
  while (uv_hrtime() < deadline) {
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      return 0;
    if (n > 0) {
      len += (size_t)n;
      buf[len] = '\0';
      if (strstr(buf, "\r\n\r\n") != NULL)
        return atoi(buf + 9);
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    poll(&pfd, 1, 1);
  }
  return -1;
}

static int ask(const char *request) {
  int fd = client();
  send_all(fd, request, strlen(request));
  int status = read_status(fd);
  close(fd);
  return status;
}

/* A head sent a byte per read is handed to the parser once, not again from its start per read. */
START_TEST(head_parsed_incrementally) {
  char head[12 * 1024]; /* 80 headers of 150 bytes, under the limit of 100 */
  size_t n = (size_t)snprintf(head, sizeof(head), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (int i = 0; i < 80; i++)
    n += (size_t)snprintf(head + n, sizeof(head) - n, "X-Pad-%02d: %0138d\r\n", i, i);
  n += (size_t)snprintf(head + n, sizeof(head) - n, "\r\n");
  ck_assert_uint_lt(n, sizeof(head) - 1);
  int fd = client();
  for (size_t i = 0; i < n; i++) {
    send_all(fd, head + i, 1);
    /* The next byte goes only once the server has read this one: one read per byte. */
    size_t before = fed_bytes;
    uint64_t deadline = uv_hrtime() + 2000000000ull;
    while (fed_bytes == before && uv_hrtime() < deadline) {
      uv_run(&loop, UV_RUN_NOWAIT);
      if (fed_bytes == before)
        poll(NULL, 0, 1);
    }
    ck_assert_uint_gt(fed_bytes, before);
  }
  ck_assert_int_eq(read_status(fd), 200);
  ck_assert_int_eq(routed, 1);
  ck_assert_uint_eq(fed_bytes, n);
  close(fd);
}
END_TEST

/* The connection whose memory could not be had is closed; the listener keeps accepting. */
START_TEST(accept_survives_allocation_failure) {
  calloc_failures = 1;
  int refused = client();
  ck_assert_int_eq(read_status(refused), 0);
  ck_assert_int_eq(calloc_failed, 1);
  close(refused);
  ck_assert_int_eq(ask("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 200);

  /* Three failures in one go: the spare handle is still closing when the second comes. */
  calloc_failures = 3;
  int fds[3];
  for (int i = 0; i < 3; i++)
    fds[i] = client();
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(read_status(fds[i]), 0);
    close(fds[i]);
  }
  ck_assert_int_eq(calloc_failed, 4);
  ck_assert_int_eq(ask("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 200);
}
END_TEST

static int with_host(const char *host) {
  char req[256];
  snprintf(req, sizeof(req), "GET /api/v1/status HTTP/1.1\r\nHost: %s\r\n\r\n", host);
  return ask(req);
}

/* Without a token, only addresses: a DNS rebinding attack brings a name of its own. */
START_TEST(host_must_be_an_address_without_token) {
  const char *ok[] = {"127.0.0.1", "127.0.0.1:8081", "localhost",  "LocalHost:9999",
                      "[::1]",     "[::1]:8081",     "10.1.2.3:1", "[2001:db8::1]:65535"};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    ck_assert_msg(with_host(ok[i]) == 200, "Host: %s", ok[i]);
  const char *bad[] = {"evil.example",
                       "evil.example:8081",
                       "127.0.0.1.nip.io:8081",
                       "localhost.:80",
                       "localhost.evil:1",
                       "127.0.0.1:",
                       "127.0.0.1:x",
                       "127.0.0.1:123456",
                       "[::1",
                       "[::1]x",
                       "[localhost]:1",
                       "::1",
                       "",
                       "127.1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(with_host(bad[i]) == 421, "Host: %s", bad[i]);
  ck_assert_int_eq(ask("GET /healthz HTTP/1.1\r\n\r\n"), 400);
  ck_assert_int_eq(ask("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n"), 400);
  ck_assert_int_eq(ask("GET /healthz HTTP/1.0\r\n\r\n"), 200);
  ck_assert_int_eq(routed, 9);

  /* With a token the API is not open to whoever reaches it: any name may be used. */
  cfg.admin.token = strdup("secret");
  ck_assert_int_eq(with_host("wsbal.example:8081"), 401);
  ck_assert_int_eq(ask("GET /api/v1/status HTTP/1.1\r\nHost: wsbal.example\r\nAuthorization: "
                       "Bearer secret\r\n\r\n"),
                   200);
}
END_TEST

/* State-changing requests from another origin, and bodies that are not JSON, are refused. */
START_TEST(cross_site_requests_refused) {
  const char *post = "POST /api/v1/backends/a/disable HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n";
  char req[512];
  snprintf(req, sizeof(req), "%sOrigin: http://evil.example\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 403);
  snprintf(req, sizeof(req), "%sOrigin: null\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 403);
  snprintf(req, sizeof(req), "%sOrigin: http://127.0.0.1:9999\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 403);
  snprintf(req, sizeof(req), "%sOrigin: https://127.0.0.1:8081\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 403);
  snprintf(req, sizeof(req), "%sContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", post);
  ck_assert_int_eq(ask(req), 415);
  snprintf(req, sizeof(req), "%sContent-Length: 2\r\n\r\n{}", post);
  ck_assert_int_eq(ask(req), 415);
  snprintf(req, sizeof(req), "%sContent-Type: application/x-www-form-urlencoded\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 415);
  snprintf(req, sizeof(req), "%sContent-Type: application/jsonx\r\nContent-Length: 2\r\n\r\n{}",
           post);
  ck_assert_int_eq(ask(req), 415);
  ck_assert_int_eq(routed, 0);
  /* The same origin (the status page), no Origin (curl, wsbalctl), JSON bodies: served. */
  snprintf(req, sizeof(req), "%sOrigin: http://127.0.0.1:8081\r\n\r\n", post);
  ck_assert_int_eq(ask(req), 200);
  snprintf(req, sizeof(req), "%s\r\n", post);
  ck_assert_int_eq(ask(req), 200);
  snprintf(req, sizeof(req),
           "%sContent-Type: Application/JSON; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}", post);
  ck_assert_int_eq(ask(req), 200);
  /* Reading is not refused for its Origin (a browser keeps the answer from the other site) nor
     for a Content-Type it does not read. */
  ck_assert_int_eq(
      ask("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\n"), 200);
  ck_assert_int_eq(
      ask("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\n"), 200);
  ck_assert_int_eq(routed, 5);
}
END_TEST

/* No deadline while the master works on a deferred answer; one given at once is sent too. */
START_TEST(deferred_answers) {
  cfg.admin.request_timeout_ms = 100;
  int fd = open_as("waiting");
  run_for(300); /* three times request_timeout */
  ck_assert_int_eq(routed, 1);
  struct wsb_admin_reply r = {0};
  fill(&r);
  wsb_admin_complete(&admin, later_conns[0], &r);
  ck_assert_int_eq(read_status(fd), 200);
  close(fd);
  ck_assert_int_eq(ask("GET /sync HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 200);
}
END_TEST

/*
 * At the cap (4 here) a new connection closes the idle one first, then the
 * request arriving longest, then the answer waiting longest for its client;
 * never one the master is still answering: then the new one is refused.
 */
START_TEST(cap_makes_way) {
  const char *probe = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  int w = open_as("writing"), r1 = open_as("reading"), i = open_as("idle"), r2 = open_as("reading");
  ck_assert_int_eq(ask(probe), 200);
  ck_assert(ended(i));
  ck_assert(!ended(w) && !ended(r1) && !ended(r2));
  int r3 = open_as("reading");
  ck_assert_int_eq(ask(probe), 200);
  ck_assert(ended(r1));
  ck_assert(!ended(w) && !ended(r2) && !ended(r3));
  int w2 = open_as("writing"), w3 = open_as("writing"); /* w3 closes r2 */
  int w4 = open_as("writing");                          /* closes r3 */
  ck_assert_int_eq(ask(probe), 200); /* closes w, whose answer has waited longest */
  ck_assert(ended(r2) && ended(r3));
  /* A closed writer's answer is cut short; the others come whole on a live connection. */
  size_t got;
  ck_assert(drain(w, SIZE_MAX, &got));
  ck_assert_uint_lt(got, BIG);
  ck_assert(!drain(w2, BIG + 100, &got));
  ck_assert_uint_ge(got, BIG);
  ck_assert(!ended(w3) && !ended(w4));
  int fds[] = {w, r1, i, r2, r3, w2, w3, w4};
  for (size_t k = 0; k < sizeof(fds) / sizeof(fds[0]); k++)
    close(fds[k]);
  run_for(20);

  int waiting[4];
  for (int k = 0; k < 4; k++)
    waiting[k] = open_as("waiting");
  ck_assert_int_eq(ask(probe), 0); /* refused: every place has an answer in the works */
  for (size_t k = 0; k < nlater; k++) {
    struct wsb_admin_reply r = {0};
    fill(&r);
    wsb_admin_complete(&admin, later_conns[k], &r);
  }
  for (int k = 0; k < 4; k++) {
    ck_assert_int_eq(read_status(waiting[k]), 200);
    close(waiting[k]);
  }
  ck_assert_int_eq(ask(probe), 200);
}
END_TEST

static int idle_calls;

static void on_idle(void *arg) {
  ck_assert_ptr_eq(arg, &admin);
  ck_assert_uint_eq(admin.connections, 0);
  idle_calls++;
}

/*
 * After quiesce (a binary upgrade's old master) the server calls back once, when its last
 * connection has closed: here a request arriving and one the master answers later, each
 * answered with Connection: close. Nothing to wait for, or a disarmed wait, never calls.
 */
START_TEST(idle_after_quiesce) {
  idle_calls = 0;
  int reading = open_as("reading"), waiting = open_as("waiting"), idle = open_as("idle");
  wsb_admin_quiesce(&admin);
  ck_assert(wsb_admin_when_idle(&admin, on_idle, &admin));
  run_for(20);
  ck_assert(ended(idle));
  ck_assert_int_eq(idle_calls, 0);
  struct wsb_admin_reply r = {0};
  fill(&r);
  wsb_admin_complete(&admin, later_conns[0], &r);
  ck_assert_int_eq(read_status(waiting), 200);
  run_for(20);
  ck_assert_int_eq(idle_calls, 0); /* the request arriving is still under way */
  send_all(reading, "Host: 127.0.0.1\r\n\r\n", 19);
  ck_assert_int_eq(read_status(reading), 200);
  run_for(20);
  ck_assert(ended(reading) && ended(waiting));
  ck_assert_int_eq(idle_calls, 1);
  ck_assert(!wsb_admin_when_idle(&admin, on_idle, &admin)); /* none open: nothing armed */
  close(reading);
  close(waiting);
  close(idle);
  run_for(20);
  ck_assert_int_eq(idle_calls, 1);
}
END_TEST

/* A wait given up (the old master serves again) never calls back, when connections close later. */
START_TEST(idle_disarmed) {
  idle_calls = 0;
  int reading = open_as("reading");
  wsb_admin_quiesce(&admin);
  ck_assert(wsb_admin_when_idle(&admin, on_idle, &admin));
  ck_assert(!wsb_admin_when_idle(&admin, NULL, NULL));
  close(reading);
  run_for(50);
  ck_assert_uint_eq(admin.connections, 0);
  ck_assert_int_eq(idle_calls, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("admin");
  TCase *tc = tcase_create("admin");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, head_parsed_incrementally);
  tcase_add_test(tc, accept_survives_allocation_failure);
  tcase_add_test(tc, host_must_be_an_address_without_token);
  tcase_add_test(tc, cross_site_requests_refused);
  tcase_add_test(tc, deferred_answers);
  tcase_add_test(tc, cap_makes_way);
  tcase_add_test(tc, idle_after_quiesce);
  tcase_add_test(tc, idle_disarmed);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
