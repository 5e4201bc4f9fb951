/* wsbal-load: a WebSocket load generator for benchmarks on loopback (echo, rate, idle, connect,
 * storm). */
#include "load.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli.h"
#include "errors.h"
#include "log.h"

/*
 * The run, in phases: open every session (at most CONNECT_CONCURRENCY
 * handshakes at a time, so no listen queue overflows), warm up, measure for
 * the duration, drain (rate mode), then close every session with a close
 * handshake. Each phase is bounded, so the program always stops by itself.
 * Storm mode measures the opening itself: every session at once (no cap
 * unless --in-flight), the window spanning from the first connect until
 * every process has all its sessions up, then a hold of the duration.
 */
#define EXIT_ERRORS         1
#define EXIT_STARTUP        3
#define NS                  1000000000ull
#define MAX_SECONDS         600.0
#define TICK_MS             100
#define CONNECT_CONCURRENCY 256
#define STORM_BATCH         64
#define CONNECT_PHASE_NS    (60 * NS)
#define DRAIN_NS            (5 * NS)
#define CLOSE_PHASE_NS      (4 * NS)
#define CLOSE_PER_CONN_NS   (NS / 1000)
#define STALL_NS            (5 * NS)
#define MAX_CONNECTIONS     1000000
#define MAX_DEPTH           10000
#define MAX_SIZE            (16u << 20)
#define MAX_BUFFER_TOTAL    (4ull << 30)

static const char *const mode_names[] = {"echo", "rate", "idle", "connect", "storm"};
static const char *const err_names[] = {
#define WSB_LOAD_XX(name, str) str,
    WSB_LOAD_ERR_MAP(WSB_LOAD_XX)
#undef WSB_LOAD_XX
};

uint64_t wsb_load_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* ---- options ---- */

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: wsbal-load --url ws[s]://127.0.0.1:PORT/path --mode echo|rate|idle|connect|storm "
      "[options]\n"
      "  -c, --connections N   sessions (echo, rate: 50; idle, storm: 100) or parallel loops\n"
      "                        (connect: 32)\n"
      "  -d, --depth D         echo: messages in flight per connection (default 1)\n"
      "  -s, --size S          message size in bytes, k/m suffixes (default 64; at least\n"
      "                        16 binary, 32 text)\n"
      "  -t, --duration SEC    measured window (default 10, at most 600); storm: how long\n"
      "                        the sessions are held once all are up\n"
      "  -r, --rate R          rate: messages per second over all connections (required)\n"
      "      --warmup SEC      load before the window, not measured (default 1; idle 0)\n"
      "      --ping-interval SEC  idle: ping every session this often (default 0 = never)\n"
      "      --binary, --text  message type (default binary)\n"
      "      --in-flight N     handshakes under way at once while the sessions open\n"
      "                        (default 256; storm: 0 = all at once)\n"
      "      --watch LABEL:PID[,PID...]  report CPU time and PSS of these processes\n"
      "                        before, at the start and at the end of the window\n"
      "      --processes N     split the connections over N processes (1..64, default 1)\n"
      "                        and report their merged results\n"
      "      --source A-B|A/N  bind each connection to the next address of this loopback\n"
      "                        range (IPv4), so ephemeral ports do not run out\n"
      "      --deflate         idle mode: offer permessage-deflate, so the sessions measured are\n"
      "                        compressed ones (they send no data)\n"
      "      --json-only       no human summary on stderr\n"
      "      --self-test       check the histogram and payload code, then exit\n"
      "  -h, --help            show this help\n"
      "Prints one JSON line with the results on stdout. Loopback targets only.\n"
      "SIGUSR1 (idle mode): ping every open session once, spread evenly over --ping-spread SEC\n"
      "(default 0: all at once). SIGINT/SIGTERM: end the run early.\n"
      "Exit status: 0 clean run, 1 errors or mismatches were counted, 2 usage, 3 start-up.\n");
}

static const struct wsb_cli cli = {"wsbal-load", usage, false};

static double parse_seconds(const char *s, double min, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || errno != 0 || !(v >= min) || v > MAX_SECONDS)
    wsb_cli_usage_error(&cli, what, s);
  return v;
}

static uint32_t parse_count(const char *s, uint64_t min, uint64_t max, const char *what) {
  uint64_t v;
  if (wsb_parse_uint(s, min, max, &v) != 0)
    wsb_cli_usage_error(&cli, what, s);
  return (uint32_t)v;
}

static enum wsb_load_mode parse_mode(const char *s) {
  for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
    if (strcmp(s, mode_names[i]) == 0)
      return (enum wsb_load_mode)i;
  wsb_cli_usage_error(&cli, "mode must be echo, rate, idle, connect or storm", s);
  return MODE_ECHO;
}

/* Benchmarks run on one machine: a load generator aimed elsewhere would be a weapon. */
static void resolve_url(struct wsb_load_opts *o) {
  if (wsb_parse_url(o->url_text, &o->url) != 0)
    wsb_cli_usage_error(&cli, "not a ws:// or wss:// URL", o->url_text);
  if (!wsb_host_is_loopback(o->url.host))
    wsb_cli_usage_error(&cli, "only loopback hosts (127.0.0.0/8, ::1, localhost) are allowed",
                        o->url.host);
  const char *ip = strcasecmp(o->url.host, "localhost") == 0 ? "127.0.0.1" : o->url.host;
  if (uv_ip4_addr(ip, o->url.port, (struct sockaddr_in *)&o->addr) != 0 &&
      uv_ip6_addr(ip, o->url.port, (struct sockaddr_in6 *)&o->addr) != 0)
    wsb_cli_usage_error(&cli, "not an IP address", o->url.host);
}

enum {
  OPT_WARMUP = 256,
  OPT_PING,
  OPT_BINARY,
  OPT_TEXT,
  OPT_WATCH,
  OPT_JSON_ONLY,
  OPT_SELF_TEST,
  OPT_PROCESSES,
  OPT_SOURCE,
  OPT_PING_SPREAD,
  OPT_IN_FLIGHT,
  OPT_DEFLATE,
};

static int self_test(void);

static void apply_defaults(struct wsb_load_opts *o, double warmup, bool warmup_set,
                           bool in_flight_set) {
  bool opens_all = o->mode == MODE_IDLE || o->mode == MODE_STORM;
  if (o->connections == 0)
    o->connections = opens_all ? 100 : o->mode == MODE_CONNECT ? 32 : 50;
  o->warmup_s = warmup_set ? warmup : (opens_all ? 0 : 1);
  if (o->mode == MODE_STORM && o->warmup_s > 0)
    wsb_cli_usage_error(&cli, "storm mode has no warm-up", NULL);
  if (!in_flight_set)
    o->in_flight = o->mode == MODE_STORM ? 0 : CONNECT_CONCURRENCY;
  if (o->mode == MODE_RATE && o->rate <= 0)
    wsb_cli_usage_error(&cli, "rate mode needs --rate", NULL);
  if (o->deflate && o->mode != MODE_IDLE)
    wsb_cli_usage_error(&cli, "--deflate is for idle mode (no compressed data is sent)", NULL);
  if (o->size < wsb_load_payload_head_len(o->text))
    wsb_cli_usage_error(
        &cli, o->text ? "text messages are at least 32 bytes" : "messages are at least 16 bytes",
        NULL);
}

static void parse_options(int argc, char **argv, struct wsb_load_opts *o) {
  static const struct option longopts[] = {
      {"url", required_argument, NULL, 'u'},
      {"mode", required_argument, NULL, 'm'},
      {"connections", required_argument, NULL, 'c'},
      {"depth", required_argument, NULL, 'd'},
      {"size", required_argument, NULL, 's'},
      {"duration", required_argument, NULL, 't'},
      {"rate", required_argument, NULL, 'r'},
      {"warmup", required_argument, NULL, OPT_WARMUP},
      {"ping-interval", required_argument, NULL, OPT_PING},
      {"binary", no_argument, NULL, OPT_BINARY},
      {"text", no_argument, NULL, OPT_TEXT},
      {"deflate", no_argument, NULL, OPT_DEFLATE},
      {"watch", required_argument, NULL, OPT_WATCH},
      {"json-only", no_argument, NULL, OPT_JSON_ONLY},
      {"self-test", no_argument, NULL, OPT_SELF_TEST},
      {"processes", required_argument, NULL, OPT_PROCESSES},
      {"source", required_argument, NULL, OPT_SOURCE},
      {"ping-spread", required_argument, NULL, OPT_PING_SPREAD},
      {"in-flight", required_argument, NULL, OPT_IN_FLIGHT},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  *o = (struct wsb_load_opts){.depth = 1, .size = 64, .duration_s = 10, .processes = 1};
  bool have_mode = false, warmup_set = false, in_flight_set = false;
  double warmup = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "u:m:c:d:s:t:r:h", longopts, NULL)) != -1) {
    uint64_t v;
    switch (ch) {
    case 'u':
      o->url_text = optarg;
      break;
    case 'm':
      o->mode = parse_mode(optarg);
      have_mode = true;
      break;
    case 'c':
      o->connections = parse_count(optarg, 1, MAX_CONNECTIONS, "bad connection count");
      break;
    case 'd':
      o->depth = parse_count(optarg, 1, MAX_DEPTH, "bad depth");
      break;
    case 's':
      if (wsb_parse_size(optarg, &v) != 0 || v > MAX_SIZE)
        wsb_cli_usage_error(&cli, "bad size (at most 16m)", optarg);
      o->size = (uint32_t)v;
      break;
    case 't':
      o->duration_s = parse_seconds(optarg, 0.001, "bad duration (0 < SEC <= 600)");
      break;
    case 'r': {
      char *end;
      o->rate = strtod(optarg, &end);
      if (end == optarg || *end != '\0' || !(o->rate > 0) || o->rate > 1e7)
        wsb_cli_usage_error(&cli, "bad rate (0 < R <= 10000000)", optarg);
      break;
    }
    case OPT_WARMUP:
      warmup = parse_seconds(optarg, 0, "bad warmup (0 <= SEC <= 600)");
      warmup_set = true;
      break;
    case OPT_PING:
      o->ping_interval_s = parse_seconds(optarg, 0, "bad ping interval (0 <= SEC <= 600)");
      break;
    case OPT_BINARY:
      o->text = false;
      break;
    case OPT_TEXT:
      o->text = true;
      break;
    case OPT_DEFLATE:
      o->deflate = true;
      break;
    case OPT_WATCH:
      if (o->nwatch == WSB_LOAD_WATCH_GROUPS)
        wsb_cli_usage_error(&cli, "at most 8 --watch groups", optarg);
      if (wsb_load_watch_parse(optarg, &o->watch[o->nwatch]) != 0)
        wsb_cli_usage_error(&cli, "--watch takes LABEL:PID[,PID...] (at most 64 pids)", optarg);
      o->nwatch++;
      break;
    case OPT_JSON_ONLY:
      o->json_only = true;
      break;
    case OPT_SELF_TEST:
      exit(self_test());
    case OPT_PING_SPREAD:
      o->ping_spread_s = parse_seconds(optarg, 0, "bad ping spread (0 <= SEC <= 600)");
      break;
    case OPT_IN_FLIGHT:
      o->in_flight = parse_count(optarg, 0, MAX_CONNECTIONS, "bad in-flight count (0..1000000)");
      in_flight_set = true;
      break;
    case OPT_PROCESSES:
      o->processes = parse_count(optarg, 1, WSB_LOAD_MAX_PROCESSES, "bad process count (1..64)");
      break;
    case OPT_SOURCE:
      if (wsb_load_parse_source(optarg, &o->source_first, &o->source_count) != 0)
        wsb_cli_usage_error(&cli, "--source takes A-B or A/N inside 127.0.0.0/8", optarg);
      break;
    case 'h':
    default:
      wsb_cli_help(&cli, ch == 'h');
    }
  }
  wsb_cli_no_operands(&cli, argc, argv);
  if (o->url_text == NULL || !have_mode)
    wsb_cli_usage_error(&cli, "--url and --mode are required", NULL);
  resolve_url(o);
  apply_defaults(o, warmup, warmup_set, in_flight_set);
  if (o->source_count > 0 && o->addr.ss_family != AF_INET)
    wsb_cli_usage_error(&cli, "--source needs an IPv4 target", o->url.host);
  if (o->processes > o->connections)
    wsb_cli_usage_error(&cli, "more processes than connections", NULL);
}

/* Idle mode with 10,000 sessions needs as many descriptors; take all the hard limit allows. */
static void raise_fd_limit(const struct wsb_load_opts *o) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      (uint64_t)o->connections + 64 > rl.rlim_cur)
    wsb_fatal(EXIT_STARTUP, "%" PRIu32 " connections need more descriptors than the limit %llu",
              o->connections, (unsigned long long)rl.rlim_cur);
}

/* For the non-negative values here, so the program needs no libm. */
static uint64_t ceil_u64(double x) {
  uint64_t u = (uint64_t)x;
  return (double)u < x ? u + 1 : u;
}

/* ---- rate schedule ---- */

/*
 * The schedule runs on ticks `period` ns apart from its start: one tick per
 * message interval, but never closer than 200 us, so above 5,000 msg/s each
 * tick sends a small burst (four messages at 20,000/s). Message m goes out at
 * the first tick at or after m / rate, and that tick's time is its scheduled
 * time, which latency counts from. In a VM each wakeup costs as much as
 * several messages: a tick per message at 20,000/s took 80 % of a core, four
 * per tick a third of that, and less CPU taken from the proxy under test
 * also means less noise in its latency.
 */
#define SCHED_MIN_PERIOD_NS 200000
#define SCHED_EPS           1e-9

static uint64_t tick_of(const struct wsb_load_ctx *ctx, uint64_t m) {
  double x = (double)m * 1e9 / (ctx->o.rate * (double)ctx->sched.period);
  uint64_t j = (uint64_t)x;
  return x - (double)j > SCHED_EPS ? j + 1 : j;
}

/* How many messages (over all connections) are due by tick j: those whose tick is at most j. */
static uint64_t due_at_tick(const struct wsb_load_ctx *ctx, uint64_t j) {
  return (uint64_t)((double)j * ctx->o.rate * (double)ctx->sched.period / 1e9 + SCHED_EPS) + 1;
}

uint64_t wsb_load_sched_time(const struct wsb_load_ctx *ctx, const struct wsb_load_conn *c,
                             uint64_t k) {
  const struct wsb_load_sched *s = &ctx->sched;
  return s->start + tick_of(ctx, k * s->n + c->slot) * s->period;
}

uint64_t wsb_load_sched_due_k(const struct wsb_load_ctx *ctx, const struct wsb_load_conn *c,
                              uint64_t due) {
  const struct wsb_load_sched *s = &ctx->sched;
  if (s->n == 0 || due <= c->slot)
    return 0;
  return (due - c->slot - 1) / s->n + 1;
}

static uint64_t sched_due(const struct wsb_load_ctx *ctx, uint64_t now) {
  const struct wsb_load_sched *s = &ctx->sched;
  if (now < s->start)
    return 0;
  uint64_t due = due_at_tick(ctx, (now - s->start) / s->period);
  return due < s->m_limit ? due : s->m_limit;
}

/* The first message index scheduled at or after t: the window's end. */
static uint64_t sched_limit(const struct wsb_load_ctx *ctx, uint64_t t) {
  const struct wsb_load_sched *s = &ctx->sched;
  if (s->period == 0 || t <= s->start)
    return 0;
  uint64_t first_tick = (t - s->start + s->period - 1) / s->period;
  return due_at_tick(ctx, first_tick - 1);
}

/* A periodic timer needs no system call per wakeup to re-arm it. */
static void sched_arm(struct wsb_load_ctx *ctx) {
  struct wsb_load_sched *s = &ctx->sched;
  uint64_t first = s->start + s->period;
  struct itimerspec its = {
      .it_interval = {.tv_sec = (time_t)(s->period / NS), .tv_nsec = (long)(s->period % NS)},
      .it_value = {.tv_sec = (time_t)(first / NS), .tv_nsec = (long)(first % NS)},
  };
  timerfd_settime(s->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void sched_disarm(struct wsb_load_ctx *ctx) {
  struct itimerspec its = {0};
  timerfd_settime(ctx->sched.timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * Hands every message that has come due to its connection. The send time
 * written into a message is its scheduled time, whenever it actually goes,
 * so a stall anywhere shows as latency instead of vanishing from the
 * numbers (no coordinated omission).
 */
static void sched_run(struct wsb_load_ctx *ctx) {
  struct wsb_load_sched *s = &ctx->sched;
  uint64_t now = wsb_load_now_ns();
  uint64_t due = sched_due(ctx, now);
  if (due > s->next_m) {
    uint64_t touched = due - s->next_m < s->n ? due - s->next_m : s->n;
    for (uint64_t j = 0; j < touched; j++) {
      struct wsb_load_conn *c = s->list[(s->next_m + j) % s->n];
      if (c->state != C_OPEN)
        continue;
      wsb_load_conn_pump(c, due, now);
      wsb_load_conn_flush(c);
    }
    s->next_m = due;
  }
  if (s->next_m >= s->m_limit && s->armed)
    sched_disarm(ctx);
}

static void on_sched(uv_poll_t *p, int status, int events) {
  struct wsb_load_ctx *ctx = wsb_container_of(p, struct wsb_load_ctx, sched.poll);
  uint64_t expirations;
  ssize_t unused = read(ctx->sched.timerfd, &expirations, sizeof(expirations));
  (void)unused;
  sched_run(ctx);
}

static void sched_start(struct wsb_load_ctx *ctx, uint64_t now) {
  struct wsb_load_sched *s = &ctx->sched;
  s->list = calloc(ctx->nconns, sizeof(*s->list));
  if (s->list == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  for (uint32_t i = 0; i < ctx->nconns; i++) {
    struct wsb_load_conn *c = &ctx->conns[i];
    if (c->state == C_OPEN) {
      c->slot = s->n;
      s->list[s->n++] = c;
    }
  }
  s->start = now;
  s->m_limit = UINT64_MAX;
  s->period = (uint64_t)(1e9 / ctx->o.rate + 0.5);
  if (s->period < SCHED_MIN_PERIOD_NS)
    s->period = SCHED_MIN_PERIOD_NS;
  if (s->n == 0)
    return;
  s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (s->timerfd < 0)
    wsb_fatal(EXIT_STARTUP, "timerfd_create: %s", strerror(errno));
  uv_poll_init(&ctx->loop, &s->poll, s->timerfd);
  uv_poll_start(&s->poll, UV_READABLE, on_sched);
  s->armed = true;
  sched_arm(ctx);
  sched_run(ctx);
}

static void on_sched_closed(uv_handle_t *h) {
  struct wsb_load_ctx *ctx = wsb_container_of((uv_poll_t *)h, struct wsb_load_ctx, sched.poll);
  close(ctx->sched.timerfd);
}

static void sched_stop(struct wsb_load_ctx *ctx) {
  if (!ctx->sched.armed)
    return;
  ctx->sched.armed = false;
  uv_close((uv_handle_t *)&ctx->sched.poll, on_sched_closed);
}

/* ---- phases ---- */

static void enter_window(struct wsb_load_ctx *ctx);
static void end_window(struct wsb_load_ctx *ctx);
static void start_ping_round(struct wsb_load_ctx *ctx, uint64_t now);
static void ping_round_step(struct wsb_load_ctx *ctx, uint64_t now);
static void enter_close(struct wsb_load_ctx *ctx);

static void storm_check_all_up(struct wsb_load_ctx *ctx, uint64_t now);

static void on_phase_timer(uv_timer_t *t) {
  struct wsb_load_ctx *ctx = wsb_container_of(t, struct wsb_load_ctx, phase_timer);
  if (ctx->o.mode == MODE_STORM && ctx->phase == PH_WARMUP)
    storm_check_all_up(ctx, wsb_load_now_ns());
  else if (ctx->o.mode == MODE_STORM)
    enter_close(ctx); /* the hold is over */
  else if (ctx->phase == PH_WARMUP)
    enter_window(ctx);
  else if (ctx->phase == PH_WINDOW)
    end_window(ctx);
}

static uint64_t ms_of(double seconds) {
  return ceil_u64(seconds * 1000.0);
}

static void on_spread(uv_idle_t *h);

/*
 * Opens connections up to the cap on handshakes in flight. A storm opens at
 * most STORM_BATCH per turn of the loop and goes on at the next turn: a loop
 * that issued 10,000 connects before reading any answer would send the first
 * request only seconds later, measuring itself rather than the proxy, where
 * real clients each send their request as soon as they are connected.
 */
static void start_connections(struct wsb_load_ctx *ctx) {
  uint32_t cap = ctx->o.in_flight > 0 ? ctx->o.in_flight : UINT32_MAX;
  uint32_t batch = ctx->o.mode == MODE_STORM ? STORM_BATCH : UINT32_MAX;
  while (ctx->phase == PH_CONNECT && ctx->pending < cap && ctx->next_to_start < ctx->nconns &&
         batch-- > 0) {
    ctx->pending++;
    wsb_load_conn_start(&ctx->conns[ctx->next_to_start++]);
  }
  bool more = ctx->phase == PH_CONNECT && ctx->pending < cap && ctx->next_to_start < ctx->nconns;
  if (more && !uv_is_active((uv_handle_t *)&ctx->spread))
    uv_idle_start(&ctx->spread, on_spread);
  else if (!more)
    uv_idle_stop(&ctx->spread);
}

static void on_spread(uv_idle_t *h) {
  start_connections(wsb_container_of(h, struct wsb_load_ctx, spread));
}

static void enter_warmup(struct wsb_load_ctx *ctx) {
  uint64_t now = wsb_load_now_ns();
  ctx->phase = PH_WARMUP;
  if (ctx->o.mode == MODE_RATE)
    sched_start(ctx, now);
  if (ctx->o.mode == MODE_CONNECT)
    for (uint32_t i = 0; i < ctx->nconns; i++)
      wsb_load_conn_start(&ctx->conns[i]);
  if (ctx->o.warmup_s > 0) {
    uv_update_time(&ctx->loop);
    uv_timer_start(&ctx->phase_timer, on_phase_timer, ms_of(ctx->o.warmup_s), 0);
  } else
    enter_window(ctx);
}

/*
 * Storm mode: the window is the storm. It ends once every process of the run
 * has all its sessions up (asked again every 5 ms until then, for at most the
 * connect phase), so the proxy's CPU covers every handshake; then the sessions
 * are held for the duration.
 */
static void storm_check_all_up(struct wsb_load_ctx *ctx, uint64_t now) {
  if (ctx->phase != PH_WARMUP || ctx->o.mode != MODE_STORM)
    return;
  if (!wsb_load_procs_all_connected(ctx->result) && now < ctx->connect_deadline) {
    uv_update_time(&ctx->loop);
    uv_timer_start(&ctx->phase_timer, on_phase_timer, 5, 0);
    return;
  }
  wsb_load_watch_take(ctx->o.watch, ctx->o.nwatch, &ctx->watch_end, now);
  ctx->phase = PH_WINDOW;
  ctx->win_end = now;
  ctx->open_at_start = ctx->open_at_end = ctx->open;
  uv_update_time(&ctx->loop);
  uv_timer_start(&ctx->phase_timer, on_phase_timer, ms_of(ctx->o.duration_s), 0);
}

static void check_connected(struct wsb_load_ctx *ctx) {
  if (ctx->phase != PH_CONNECT || ctx->next_to_start < ctx->nconns || ctx->pending > 0)
    return;
  ctx->t_connected = wsb_load_now_ns();
  if (ctx->o.mode == MODE_STORM) {
    ctx->phase = PH_WARMUP;
    storm_check_all_up(ctx, ctx->t_connected);
    return;
  }
  if (ctx->open > 0) {
    enter_warmup(ctx);
    return;
  }
  /* Nothing to measure: an empty window reports the failures at once. */
  ctx->phase = PH_WARMUP;
  enter_window(ctx);
  end_window(ctx);
}

static void enter_window(struct wsb_load_ctx *ctx) {
  uint64_t now = wsb_load_now_ns();
  wsb_load_watch_take(ctx->o.watch, ctx->o.nwatch, &ctx->watch_start, now);
  ctx->phase = PH_WINDOW;
  ctx->win_start = now;
  ctx->win_end = now + (uint64_t)(ctx->o.duration_s * 1e9);
  ctx->open_at_start = ctx->open;
  wsb_load_hist_reset(&ctx->lat);
  wsb_load_hist_reset(&ctx->hs_lat);
  if (ctx->o.mode == MODE_RATE)
    ctx->sched.m_limit = sched_limit(ctx, ctx->win_end);
  if (ctx->o.mode == MODE_IDLE && ctx->o.ping_interval_s > 0)
    ctx->next_ping = now + (uint64_t)(ctx->o.ping_interval_s * 1e9);
  if (ctx->ping_requested)
    start_ping_round(ctx, now);
  /* The loop's clock was read before this callback began; the window's length counts from now. */
  uv_update_time(&ctx->loop);
  uv_timer_start(&ctx->phase_timer, on_phase_timer, ms_of(ctx->o.duration_s), 0);
}

static void ping_range(struct wsb_load_ctx *ctx, uint32_t from, uint32_t to, uint64_t now) {
  for (uint32_t i = from; i < to; i++) {
    wsb_load_conn_ping(&ctx->conns[i], now);
    wsb_load_conn_flush(&ctx->conns[i]);
  }
}

static void ping_all(struct wsb_load_ctx *ctx, uint64_t now) {
  ping_range(ctx, 0, ctx->nconns, now);
}

/* A SIGUSR1 round: every session at once, or spread evenly over --ping-spread, tick by tick. */
static void ping_round_step(struct wsb_load_ctx *ctx, uint64_t now) {
  if (ctx->ping_round_start == 0)
    return;
  uint64_t spread = (uint64_t)(ctx->o.ping_spread_s * 1e9), elapsed = now - ctx->ping_round_start;
  uint32_t due =
      elapsed >= spread ? ctx->nconns : (uint32_t)((uint64_t)ctx->nconns * elapsed / spread);
  ping_range(ctx, ctx->ping_round_next, due, now);
  ctx->ping_round_next = due;
  if (due == ctx->nconns)
    ctx->ping_round_start = 0;
}

static void start_ping_round(struct wsb_load_ctx *ctx, uint64_t now) {
  ctx->ping_round_start = now;
  ctx->ping_round_next = 0;
  ping_round_step(ctx, now);
}

static void end_window(struct wsb_load_ctx *ctx) {
  uint64_t now = wsb_load_now_ns();
  wsb_load_watch_take(ctx->o.watch, ctx->o.nwatch, &ctx->watch_end, now);
  ctx->open_at_end = ctx->open;
  /* Echo and connect count what happened in the window as it really lasted. */
  if (ctx->o.mode != MODE_RATE)
    ctx->win_end = now;
  if (ctx->o.mode == MODE_RATE) {
    ctx->phase = PH_DRAIN;
    ctx->drain_deadline = now + DRAIN_NS;
  } else {
    enter_close(ctx);
  }
}

/*
 * Messages of the window that never came back are recorded as if answered
 * now: they took at least that long, and leaving them out would flatter the
 * tail.
 */
static void count_lost(struct wsb_load_ctx *ctx, uint64_t now) {
  for (uint32_t i = 0; i < ctx->sched.n; i++) {
    struct wsb_load_conn *c = ctx->sched.list[i];
    uint64_t want = wsb_load_sched_due_k(ctx, c, ctx->sched.m_limit);
    for (uint64_t k = c->recv_seq; k < want; k++) {
      uint64_t t = wsb_load_sched_time(ctx, c, k);
      if (t >= ctx->win_start && t < ctx->win_end) {
        ctx->st.errors[ERR_LOST]++;
        wsb_load_hist_record(&ctx->lat, now > t ? now - t : 0);
      }
    }
  }
}

static uint64_t outstanding(const struct wsb_load_ctx *ctx) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < ctx->sched.n; i++) {
    const struct wsb_load_conn *c = ctx->sched.list[i];
    uint64_t want = wsb_load_sched_due_k(ctx, c, ctx->sched.m_limit);
    if (c->state == C_OPEN && want > c->recv_seq)
      n += want - c->recv_seq;
  }
  return n;
}

static void finish(struct wsb_load_ctx *ctx) {
  if (ctx->phase == PH_DONE)
    return;
  ctx->phase = PH_DONE;
  sched_stop(ctx);
  uv_close((uv_handle_t *)&ctx->tick, NULL);
  uv_close((uv_handle_t *)&ctx->phase_timer, NULL);
  uv_close((uv_handle_t *)&ctx->sigint, NULL);
  uv_close((uv_handle_t *)&ctx->sigterm, NULL);
  uv_close((uv_handle_t *)&ctx->sigusr1, NULL);
  uv_close((uv_handle_t *)&ctx->spread, NULL);
}

static void enter_close(struct wsb_load_ctx *ctx) {
  if (ctx->phase >= PH_CLOSE)
    return;
  uint64_t now = wsb_load_now_ns();
  if (ctx->phase == PH_DRAIN)
    count_lost(ctx, now);
  /* Cut short before the window ended (a signal): the window ends here. A storm's window is
     the opening, which ended when the last session was up, or ends now if that never came. */
  bool storm = ctx->o.mode == MODE_STORM;
  if (storm ? ctx->phase < PH_WINDOW : ctx->phase == PH_WINDOW) {
    wsb_load_watch_take(ctx->o.watch, ctx->o.nwatch, &ctx->watch_end, now);
    if (storm)
      ctx->open_at_start = ctx->open;
    ctx->open_at_end = ctx->open;
    ctx->win_end = now;
  }
  ctx->phase = PH_CLOSE;
  /* Tens of thousands of close handshakes queue behind each other in the proxy (92,000 through
   wsbal on 2 cores took over 7 s): more time. */
  ctx->close_deadline = now + CLOSE_PHASE_NS + (uint64_t)ctx->nconns * CLOSE_PER_CONN_NS;
  uv_timer_stop(&ctx->phase_timer);
  sched_stop(ctx);
  for (uint32_t i = 0; i < ctx->nconns; i++) {
    struct wsb_load_conn *c = &ctx->conns[i];
    if (c->state == C_BACKOFF)
      c->state = C_IDLE;
    wsb_load_conn_stop(c);
  }
  if (ctx->live == 0)
    finish(ctx);
}

void wsb_load_on_open(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, uint64_t now) {
  if (ctx->phase == PH_CONNECT) {
    ctx->pending--;
    start_connections(ctx);
  }
  if (ctx->phase >= PH_DRAIN) {
    wsb_load_conn_stop(c);
    return;
  }
  switch (ctx->o.mode) {
  case MODE_ECHO:
    /* The closed loop starts with depth messages; each answer sends the next. */
    for (uint32_t i = 0; i < ctx->o.depth; i++)
      wsb_load_conn_send(c, now);
    break;
  case MODE_CONNECT:
    if (ctx->phase == PH_WINDOW)
      wsb_load_hist_record(&ctx->hs_lat, now - c->t_start);
    wsb_load_conn_send(c, now);
    break;
  case MODE_STORM:
    wsb_load_hist_record(&ctx->hs_lat, now - c->t_start);
    break;
  default:
    break;
  }
  check_connected(ctx);
}

void wsb_load_on_conn_gone(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, bool before_upgrade) {
  uint64_t now = wsb_load_now_ns();
  if (ctx->phase == PH_CONNECT && before_upgrade) {
    ctx->pending--;
    start_connections(ctx);
    check_connected(ctx);
  }
  if (ctx->o.mode == MODE_CONNECT) {
    if (c->cycle_ok && ctx->phase == PH_WINDOW) {
      ctx->st.cycles++;
      wsb_load_hist_record(&ctx->lat, now - c->t_start);
    }
    if (ctx->phase == PH_WARMUP || ctx->phase == PH_WINDOW) {
      /* A failed cycle waits for the next tick, so a refused port is no busy loop. */
      if (c->cycle_ok)
        wsb_load_conn_start(c);
      else
        c->state = C_BACKOFF;
    }
  }
  if (ctx->phase == PH_CLOSE && ctx->live == 0)
    finish(ctx);
}

/* ---- housekeeping every 100 ms: deadlines, retries, pings, the end of the drain ---- */

static void give_up_connecting(struct wsb_load_ctx *ctx) {
  uint32_t unstarted = ctx->nconns - ctx->next_to_start;
  ctx->st.failed += unstarted;
  ctx->st.errors[ERR_TIMEOUT] += unstarted;
  ctx->next_to_start = ctx->nconns;
  for (uint32_t i = 0; i < ctx->nconns; i++)
    if (ctx->conns[i].state == C_CONNECTING || ctx->conns[i].state == C_HANDSHAKE)
      wsb_load_conn_abort(&ctx->conns[i], ERR_TIMEOUT);
}

/*
 * An echo that never comes back stops a closed loop without a word, so the
 * oldest unanswered message is watched: in echo mode it went out at the last
 * answer at the earliest, in rate mode at its scheduled time.
 */
static bool is_stalled(const struct wsb_load_ctx *ctx, const struct wsb_load_conn *c,
                       uint64_t now) {
  if (c->send_seq <= c->recv_seq)
    return false;
  uint64_t since;
  if (ctx->o.mode == MODE_ECHO)
    since = c->last_recv;
  else if (ctx->o.mode == MODE_RATE)
    since = wsb_load_sched_time(ctx, c, c->recv_seq);
  else
    return false;
  return now > since && now - since > STALL_NS;
}

static void check_conn(struct wsb_load_ctx *ctx, struct wsb_load_conn *c, uint64_t now) {
  switch (c->state) {
  case C_IDLE:
  case C_SHUT:
    break;
  case C_BACKOFF:
    if (ctx->phase == PH_WARMUP || ctx->phase == PH_WINDOW)
      wsb_load_conn_start(c);
    break;
  default:
    if (c->deadline != 0 && now > c->deadline) {
      wsb_load_conn_abort(c, ERR_TIMEOUT);
      break;
    }
    if (c->state == C_OPEN && ctx->phase == PH_WINDOW && !c->stalled && is_stalled(ctx, c, now)) {
      c->stalled = true;
      ctx->st.errors[ERR_STALLED]++;
    }
    break;
  }
}

static void send_pings(struct wsb_load_ctx *ctx, uint64_t now) {
  ping_all(ctx, now);
  ctx->next_ping += (uint64_t)(ctx->o.ping_interval_s * 1e9);
}

static void on_tick(uv_timer_t *t) {
  struct wsb_load_ctx *ctx = wsb_container_of(t, struct wsb_load_ctx, tick);
  uint64_t now = wsb_load_now_ns();
  if (ctx->phase == PH_CONNECT && now > ctx->connect_deadline)
    give_up_connecting(ctx);
  for (uint32_t i = 0; i < ctx->nconns; i++)
    check_conn(ctx, &ctx->conns[i], now);
  if (ctx->phase == PH_WINDOW && ctx->next_ping != 0 && now >= ctx->next_ping)
    send_pings(ctx, now);
  if (ctx->phase == PH_WINDOW)
    ping_round_step(ctx, now);
  if (ctx->phase == PH_DRAIN && (outstanding(ctx) == 0 || now > ctx->drain_deadline))
    enter_close(ctx);
  if (ctx->phase == PH_CLOSE && now > ctx->close_deadline)
    for (uint32_t i = 0; i < ctx->nconns; i++)
      wsb_load_conn_abort(&ctx->conns[i], ERR_TIMEOUT);
}

/* SIGUSR1 (idle mode): one keepalive round trip on every open session, now, or as soon as the
 * window starts when the sessions are still opening. */
static void on_ping_signal(uv_signal_t *s, int signum) {
  struct wsb_load_ctx *ctx = s->data;
  if (ctx->o.mode != MODE_IDLE)
    return;
  if (ctx->phase < PH_WINDOW) {
    ctx->ping_requested = true;
    return;
  }
  if (ctx->phase == PH_WINDOW)
    start_ping_round(ctx, wsb_load_now_ns());
}

/* The first signal ends the run early, with results; a second one drops every session at once. */
static void on_signal(uv_signal_t *s, int signum) {
  struct wsb_load_ctx *ctx = s->data;
  if (ctx->phase < PH_CLOSE) {
    if (ctx->phase == PH_CONNECT)
      give_up_connecting(ctx);
    enter_close(ctx);
    return;
  }
  for (uint32_t i = 0; i < ctx->nconns; i++)
    wsb_load_conn_abort(&ctx->conns[i], ERR_COUNT);
}

/* ---- results ---- */

static double us(uint64_t ns) {
  return (double)ns / 1000.0;
}

static void json_hist(FILE *f, const char *name, const struct wsb_load_hist *h) {
  fprintf(f,
          ",\"%s\":{\"count\":%" PRIu64 ",\"min\":%.1f,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
          "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
          name, h->count, h->count > 0 ? us(h->min) : 0.0,
          h->count > 0 ? h->sum / (double)h->count / 1000.0 : 0.0,
          us(wsb_load_hist_percentile(h, 50)), us(wsb_load_hist_percentile(h, 90)),
          us(wsb_load_hist_percentile(h, 99)), us(wsb_load_hist_percentile(h, 99.9)), us(h->max));
}

static void json_sample(FILE *f, const struct wsb_load_ctx *ctx, const char *name,
                        const struct wsb_load_watch_sample *s) {
  static const char *const cols[] = {"user",   "nice", "system",  "idle",
                                     "iowait", "irq",  "softirq", "steal"};
  fprintf(f, "%s\"%s\":{\"t_s\":%.6f,\"self_cpu_s\":%.3f,\"groups\":{", name[0] == 'b' ? "" : ",",
          name, s->t_ns >= ctx->t0 ? (double)(s->t_ns - ctx->t0) / 1e9 : 0.0, s->self_cpu_s);
  for (int g = 0; g < ctx->o.nwatch; g++)
    fprintf(f, "%s\"%s\":{\"cpu_s\":%.2f,\"pss_kb\":%" PRId64 ",\"alive\":%d}", g > 0 ? "," : "",
            ctx->o.watch[g].label, s->cpu_s[g], s->pss_kb[g], s->alive[g]);
  fprintf(f, "},\"machine\":{");
  for (int i = 0; i < 8; i++)
    fprintf(f, "%s\"%s\":%.2f", i > 0 ? "," : "", cols[i], s->machine[i]);
  fprintf(f, "}}");
}

static uint64_t error_total(const struct wsb_load_ctx *ctx) {
  uint64_t n = 0;
  for (int i = 0; i < ERR_COUNT; i++)
    n += ctx->st.errors[i];
  return n;
}

static double window_s(const struct wsb_load_ctx *ctx) {
  if (ctx->win_end <= ctx->win_start)
    return 0;
  return (double)(ctx->win_end - ctx->win_start) / 1e9;
}

static double per_s(uint64_t n, double seconds) {
  return seconds > 0 ? (double)n / seconds : 0;
}

static void json_mode_fields(FILE *f, const struct wsb_load_ctx *ctx, double w) {
  const struct wsb_load_opts *o = &ctx->o;
  const struct wsb_load_stats *st = &ctx->st;
  switch (o->mode) {
  case MODE_ECHO:
    fprintf(f, ",\"depth\":%" PRIu32 ",\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f", o->depth,
            st->messages, per_s(st->messages, w));
    json_hist(f, "latency_us", &ctx->lat);
    break;
  case MODE_RATE:
    fprintf(f,
            ",\"rate\":%.1f,\"sent\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"msgs_per_s\":%.1f"
            ",\"late_sends\":%" PRIu64 ",\"send_lag_max_us\":%.1f",
            o->rate, st->sent, st->messages, per_s(st->messages, w), st->late_sends,
            us(st->send_lag_max));
    json_hist(f, "latency_us", &ctx->lat);
    break;
  case MODE_IDLE:
    fprintf(f, ",\"ping_interval_s\":%.3f,\"pongs\":%" PRIu64, o->ping_interval_s, st->pongs);
    json_hist(f, "latency_us", &ctx->lat);
    break;
  case MODE_CONNECT:
    fprintf(f, ",\"cycles\":%" PRIu64 ",\"handshakes_per_s\":%.1f", st->cycles,
            per_s(st->cycles, w));
    json_hist(f, "latency_us", &ctx->lat);
    json_hist(f, "handshake_latency_us", &ctx->hs_lat);
    break;
  case MODE_STORM:
    /* Over the window, which is the storm: first connect to the last process's last 101. */
    fprintf(f, ",\"in_flight\":%" PRIu32 ",\"handshakes_per_s\":%.1f", o->in_flight,
            per_s(st->established, w));
    json_hist(f, "handshake_latency_us", &ctx->hs_lat);
    break;
  }
}

/* The URL was checked by wsb_parse_url, but the output must stay JSON whatever it holds. */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      fprintf(f, "\\u%04x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void print_json(FILE *f, const struct wsb_load_ctx *ctx) {
  const struct wsb_load_opts *o = &ctx->o;
  const struct wsb_load_stats *st = &ctx->st;
  double w = window_s(ctx);
  fprintf(f, "{\"tool\":\"wsbal-load\",\"mode\":\"%s\",\"url\":", mode_names[o->mode]);
  json_string(f, o->url_text);
  fprintf(f,
          ",\"connections\":%" PRIu32 ",\"size\":%" PRIu32
          ",\"binary\":%s,\"warmup_s\":%.3f,\"duration_s\":%.3f"
          ",\"window_s\":%.6f,\"processes\":%" PRIu32 ",\"connect_s\":%.3f",
          o->connections, o->size, o->text ? "false" : "true", o->warmup_s, o->duration_s, w,
          o->processes,
          ctx->t_connected > ctx->t0 ? (double)(ctx->t_connected - ctx->t0) / 1e9 : 0.0);
  json_mode_fields(f, ctx, w);
  fprintf(f,
          ",\"connections_established\":%" PRIu64 ",\"connections_failed\":%" PRIu64
          ",\"open_at_start\":%" PRIu32 ",\"open_at_end\":%" PRIu32 ",\"mismatches\":%" PRIu64
          ",\"errors\":{",
          st->established, st->failed, ctx->open_at_start, ctx->open_at_end, st->mismatches);
  for (int i = 0; i < ERR_COUNT; i++)
    fprintf(f, "%s\"%s\":%" PRIu64, i > 0 ? "," : "", err_names[i], st->errors[i]);
  fprintf(f, "},\"error_total\":%" PRIu64, error_total(ctx));
  fprintf(f, ",\"watch\":{");
  json_sample(f, ctx, "before", &ctx->watch_before);
  json_sample(f, ctx, "start", &ctx->watch_start);
  json_sample(f, ctx, "end", &ctx->watch_end);
  fprintf(f, "}}\n");
  fflush(f);
}

static void print_summary(const struct wsb_load_ctx *ctx) {
  const struct wsb_load_stats *st = &ctx->st;
  const struct wsb_load_hist *h = ctx->o.mode == MODE_STORM ? &ctx->hs_lat : &ctx->lat;
  double w = window_s(ctx);
  uint64_t count = ctx->o.mode == MODE_CONNECT ? st->cycles
                   : ctx->o.mode == MODE_IDLE  ? st->pongs
                   : ctx->o.mode == MODE_STORM ? st->established
                                               : st->messages;
  fprintf(stderr, "wsbal-load %s: %.2f s window, %" PRIu64 " %s (%.0f/s)\n",
          mode_names[ctx->o.mode], w, count,
          ctx->o.mode == MODE_CONNECT ? "handshake cycles"
          : ctx->o.mode == MODE_IDLE  ? "pongs"
          : ctx->o.mode == MODE_STORM ? "upgrades"
                                      : "messages",
          per_s(count, w));
  fprintf(stderr,
          "  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%" PRIu64
          " samples)\n",
          us(wsb_load_hist_percentile(h, 50)), us(wsb_load_hist_percentile(h, 90)),
          us(wsb_load_hist_percentile(h, 99)), us(wsb_load_hist_percentile(h, 99.9)), us(h->max),
          h->count);
  fprintf(stderr,
          "  connections: %" PRIu64 " established, %" PRIu64 " failed, %" PRIu32
          " open at the window's start, %" PRIu32 " at its end\n",
          st->established, st->failed, ctx->open_at_start, ctx->open_at_end);
  fprintf(stderr, "  mismatches %" PRIu64 ", errors %" PRIu64, st->mismatches, error_total(ctx));
  for (int i = 0; i < ERR_COUNT; i++)
    if (st->errors[i] > 0)
      fprintf(stderr, " %s=%" PRIu64, err_names[i], st->errors[i]);
  fprintf(stderr, "\n");
}

/* ---- self-test of the pure parts ---- */

struct tally {
  int passed;
  int failed;
};

static void expect(struct tally *t, bool ok, const char *what) {
  if (ok) {
    t->passed++;
  } else {
    t->failed++;
    fprintf(stderr, "self-test FAIL: %s\n", what);
  }
}

static void test_hist(struct tally *t) {
  bool ok = true;
  for (uint64_t v = 0; v < 5000000; v = v < 1000 ? v + 1 : v + v / 97 + 1) {
    size_t b = wsb_load_hist_bucket(v);
    if (b >= WSB_LOAD_HIST_BUCKETS || wsb_load_hist_bucket_low(b) > v ||
        wsb_load_hist_bucket_high(b) < v)
      ok = false;
    /* A bucket is at most 1/128 of its values wide. */
    if ((double)(wsb_load_hist_bucket_high(b) - wsb_load_hist_bucket_low(b)) > (double)v / 128.0)
      ok = false;
  }
  expect(t, ok, "every value lies inside its bucket, which is at most 1/128 wide");
  ok = true;
  for (size_t b = 0; b + 1 < WSB_LOAD_HIST_BUCKETS; b++)
    if (wsb_load_hist_bucket_high(b) + 1 != wsb_load_hist_bucket_low(b + 1))
      ok = false;
  expect(t, ok, "buckets follow each other with no gap");
  expect(t, wsb_load_hist_bucket(UINT64_MAX) == WSB_LOAD_HIST_BUCKETS - 1,
         "UINT64_MAX is the last bucket");
  expect(t, wsb_load_hist_bucket_high(WSB_LOAD_HIST_BUCKETS - 1) == UINT64_MAX,
         "the last bucket ends at max");

  struct wsb_load_hist *h = malloc(sizeof(*h));
  wsb_load_hist_reset(h);
  expect(t, wsb_load_hist_percentile(h, 50) == 0, "an empty histogram reports 0");
  for (uint64_t v = 1; v <= 1000; v++)
    wsb_load_hist_record(h, v);
  expect(t, h->count == 1000 && h->min == 1 && h->max == 1000, "count, min, max");
  expect(t, wsb_load_hist_percentile(h, 50) == 501,
         "p50 of 1..1000 is the top of bucket [500,501]");
  expect(t, wsb_load_hist_percentile(h, 99) == 991,
         "p99 of 1..1000 is the top of bucket [988,991]");
  expect(t, wsb_load_hist_percentile(h, 100) == 1000, "p100 is the max");
  expect(t, wsb_load_hist_percentile(h, 0.01) == 1, "a tiny percentile is the min");
  wsb_load_hist_reset(h);
  wsb_load_hist_record(h, 1234567);
  expect(t, wsb_load_hist_percentile(h, 99.9) == 1234567, "a single sample is reported exactly");
  free(h);
}

static void test_payload_kind(struct tally *t, bool text) {
  enum { SIZE = 100 };
  uint8_t buf[SIZE];
  wsb_load_payload_fill(buf, SIZE, text, 7, 42, 123456789);
  bool ok = true;
  /* Every split into two pieces gives the same verdict as one piece. */
  for (size_t cut = 0; cut <= SIZE; cut++) {
    struct wsb_load_verify v = {0};
    wsb_load_verify_feed(&v, text, 7, SIZE, buf, cut);
    wsb_load_verify_feed(&v, text, 7, SIZE, buf + cut, SIZE - cut);
    if (!wsb_load_verify_ok(&v, SIZE) || v.seq != 42 || v.t != 123456789)
      ok = false;
  }
  expect(t, ok, text ? "text payload verifies in any two pieces" : "binary payload verifies");
  ok = true;
  for (size_t i = 0; i < SIZE; i++) {
    uint8_t copy[SIZE];
    memcpy(copy, buf, SIZE);
    copy[i] ^= 0x01;
    struct wsb_load_verify v = {0};
    wsb_load_verify_feed(&v, text, 7, SIZE, copy, SIZE);
    if (wsb_load_verify_ok(&v, SIZE))
      ok = false;
  }
  expect(t, ok, "a flipped bit anywhere is caught");
  struct wsb_load_verify v = {0};
  wsb_load_verify_feed(&v, text, 8, SIZE, buf, SIZE);
  expect(t, !wsb_load_verify_ok(&v, SIZE), "another connection's payload is caught");
  v = (struct wsb_load_verify){0};
  wsb_load_verify_feed(&v, text, 7, SIZE, buf, SIZE - 1);
  expect(t, !wsb_load_verify_ok(&v, SIZE), "a short payload is caught");
  v = (struct wsb_load_verify){0};
  wsb_load_verify_feed(&v, text, 7, SIZE, buf, SIZE);
  wsb_load_verify_feed(&v, text, 7, SIZE, buf, 1);
  expect(t, !wsb_load_verify_ok(&v, SIZE), "a long payload is caught");
  if (text) {
    ok = true;
    for (size_t i = 0; i < SIZE; i++)
      if (buf[i] < 0x20 || buf[i] > 0x7f)
        ok = false;
    expect(t, ok, "text payloads are ASCII");
  }
}

static void test_source(struct tally *t) {
  uint32_t first = 0, count = 0;
  expect(t,
         wsb_load_parse_source("127.0.0.2-127.0.255.254", &first, &count) == 0 &&
             first == 0x7f000002u && count == 0xfffdu,
         "a range A-B");
  expect(t,
         wsb_load_parse_source("127.1.0.0/16", &first, &count) == 0 && first == 0x7f010000u &&
             count == 65536,
         "a CIDR block");
  expect(t,
         wsb_load_parse_source("127.0.0.9", &first, &count) == 0 && first == 0x7f000009u &&
             count == 1,
         "one address");
  static const char *const bad[] = {
      "10.0.0.1-10.0.0.9", "127.0.0.9-127.0.0.1", "0.0.0.0/0", "127.0.0.1-128.0.0.1", "127.0.0.1/7",
      "127.0.0.1/33",      "127.0.0.1-",          "::1",       "127.0.0.1/8-9",       ""};
  bool ok = true;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (wsb_load_parse_source(bad[i], &first, &count) == 0)
      ok = false;
  expect(t, ok, "non-loopback, reversed and malformed ranges are refused");
}

static int self_test(void) {
  struct tally t = {0, 0};
  test_source(&t);
  test_hist(&t);
  test_payload_kind(&t, false);
  test_payload_kind(&t, true);
  printf("self-test: %d passed, %d failed\n", t.passed, t.failed);
  return t.failed == 0 ? 0 : 1;
}

/* ---- main ---- */

static void seed_rng(struct wsb_load_ctx *ctx) {
  if (RAND_bytes((unsigned char *)&ctx->rng, sizeof(ctx->rng)) != 1)
    ctx->rng = wsb_load_now_ns() ^ ((uint64_t)getpid() << 32);
  if (ctx->rng == 0)
    ctx->rng = 0x9e3779b97f4a7c15ull;
}

static void setup(struct wsb_load_ctx *ctx) {
  int err = uv_loop_init(&ctx->loop);
  if (err != 0)
    wsb_fatal(EXIT_STARTUP, "uv_loop_init: %s", uv_strerror(err));
  seed_rng(ctx);
  ctx->nconns = ctx->o.connections;
  if ((uint64_t)ctx->nconns * 2 * wsb_load_conn_buffer_size(&ctx->o) > MAX_BUFFER_TOTAL)
    wsb_fatal(WSB_CLI_EXIT_USAGE, "connections x depth x size needs more than 4 GiB of buffers");
  ctx->conns = calloc(ctx->nconns, sizeof(*ctx->conns));
  if (ctx->conns == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  for (uint32_t i = 0; i < ctx->nconns; i++)
    wsb_load_conn_init(ctx, &ctx->conns[i], i);
  if (ctx->o.url.tls && wsb_load_tls_init(ctx) != 0)
    wsb_fatal(EXIT_STARTUP, "cannot set up TLS");
  uv_timer_init(&ctx->loop, &ctx->tick);
  uv_timer_init(&ctx->loop, &ctx->phase_timer);
  uv_idle_init(&ctx->loop, &ctx->spread);
  uv_timer_start(&ctx->tick, on_tick, TICK_MS, TICK_MS);
  uv_signal_init(&ctx->loop, &ctx->sigint);
  uv_signal_init(&ctx->loop, &ctx->sigterm);
  ctx->sigint.data = ctx->sigterm.data = ctx;
  uv_signal_start(&ctx->sigint, on_signal, SIGINT);
  uv_signal_start(&ctx->sigterm, on_signal, SIGTERM);
  uv_signal_init(&ctx->loop, &ctx->sigusr1);
  ctx->sigusr1.data = ctx;
  uv_signal_start(&ctx->sigusr1, on_ping_signal, SIGUSR1);
  /* A session reset mid-write must cost an error count, not the process. */
  signal(SIGPIPE, SIG_IGN);
  /* Rate mode wakes for each scheduled send; the default 50 us of timer slack would skew it. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
}

int main(int argc, char **argv) {
  wsb_log_setup(WSB_LOG_INFO, WSB_LOG_TEXT, "wsbal-load", -1);
  struct wsb_load_ctx *ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  parse_options(argc, argv, &ctx->o);
  struct wsb_load_result *slot = NULL;
  if (ctx->o.processes > 1) {
    int failed = wsb_load_procs_run(ctx, &slot);
    if (failed >= 0) {
      print_json(stdout, ctx);
      if (!ctx->o.json_only)
        print_summary(ctx);
      int status = failed != 0                                 ? EXIT_STARTUP
                   : error_total(ctx) + ctx->st.mismatches > 0 ? EXIT_ERRORS
                                                               : 0;
      free(ctx);
      return status;
    }
  }
  raise_fd_limit(&ctx->o);
  setup(ctx);
  ctx->result = slot;
  if (slot != NULL)
    wsb_load_procs_child_ready();

  ctx->t0 = wsb_load_now_ns();
  wsb_load_watch_take(ctx->o.watch, ctx->o.nwatch, &ctx->watch_before, ctx->t0);
  if (ctx->o.mode == MODE_CONNECT) {
    enter_warmup(ctx);
  } else {
    ctx->phase = PH_CONNECT;
    ctx->connect_deadline = ctx->t0 + CONNECT_PHASE_NS;
    if (ctx->o.mode == MODE_STORM) {
      ctx->win_start = ctx->t0;
      ctx->watch_start = ctx->watch_before;
      wsb_load_hist_reset(&ctx->hs_lat);
    }
    start_connections(ctx);
  }
  uv_run(&ctx->loop, UV_RUN_DEFAULT);

  if (slot != NULL) {
    wsb_load_result_save(ctx, slot);
  } else {
    print_json(stdout, ctx);
    if (!ctx->o.json_only)
      print_summary(ctx);
  }
  int status = error_total(ctx) + ctx->st.mismatches > 0 ? EXIT_ERRORS : 0;
  for (uint32_t i = 0; i < ctx->nconns; i++)
    wsb_load_conn_free(&ctx->conns[i]);
  wsb_load_tls_free_ctx(ctx);
  free(ctx->conns);
  free(ctx->sched.list);
  if (uv_loop_close(&ctx->loop) != 0) {
    wsb_log_error("handles left open at exit");
    status = EXIT_STARTUP;
  }
  free(ctx);
  return status;
}
