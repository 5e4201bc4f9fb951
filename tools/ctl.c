/* wsbalctl: the command-line client of wsbal's admin API. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "json.h"

/*
 * What scripts can rely on beyond SPEC.md:
 * - Options may come before or after the command; "--" ends them.
 * - With --json the answer's body goes to stdout exactly as the server sent it, also for an
 *   error answer (whose message then also goes to stderr), so `wsbalctl --json backends | jq`
 *   works and a script still sees the exit status.
 * - Every request is one connection with Connection: close; nothing is retried, since add,
 *   remove, drain, kill and failover are not idempotent.
 * - sessions asks for every page (limit/offset, within the bounds ctl.h gives); with --json,
 *   a list of more than one page is printed as one object of a page's shape holding them all
 *   (plus "pages"), not as the server's several answers.
 * - Names and session ids are percent-encoded into the path as they are; the server judges them.
 */

#define TARGET_MAX 1024
#define BODY_MAX   2048

/* The command-specific options, in the order of enum option_bit. */
static const char *const option_names[] = {"--backend", "--weight",  "--to",  "--sessions",
                                           "--wait",    "--timeout", "--pool"};

enum option_bit {
  OPT_BACKEND = 1 << 0,  /* sessions --backend NAME */
  OPT_WEIGHT = 1 << 1,   /* add --weight W */
  OPT_TO = 1 << 2,       /* failover --to NAME */
  OPT_SESSIONS = 1 << 3, /* remove --sessions keep|failover|close */
  OPT_WAIT = 1 << 4,     /* drain --wait */
  OPT_TIMEOUT = 1 << 5,  /* drain --wait --timeout S */
  OPT_POOL = 1 << 6,     /* add --pool P, sessions --pool P */
};

/* How long drain --wait waits by default, and how often it looks: HAProxy's operators wait on
   "show servers state" in about this rhythm. */
#define DRAIN_TIMEOUT_S 60
#define DRAIN_POLL_MS   500
#define TOKEN_MAX       4096

struct options {
  const char *addr;
  const char *token;      /* -T: NULL when not given */
  const char *token_file; /* --token-file: NULL when not given */
  bool json;
  unsigned given; /* enum option_bit */
  const char *backend;
  const char *to;
  const char *sessions;
  const char *pool;
  unsigned long weight;
  unsigned long timeout; /* drain --wait: seconds */
  char **args;           /* the command and its operands */
  int nargs;
};

/* What a command sends: method, encoded target and an optional JSON body. */
struct call {
  const char *method;
  char target[TARGET_MAX];
  char body[BODY_MAX];
  size_t body_len; /* 0: no body */
};

/*
 * A command's request: method and path, the first operand percent-encoded after a path that
 * ends in '/', then suffix; body (may be NULL) adds a query or a JSON body.
 */
struct command {
  const char *name;
  int operands;
  unsigned options; /* enum option_bit allowed */
  const char *synopsis;
  const char *method;
  const char *path;
  const char *suffix;
  bool (*body)(const struct options *o, struct call *c);
  int (*print)(const struct wsb_ctl_answer *ans); /* NULL: sessions, asked page by page */
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: wsbalctl [-a ADDR] [-T TOKEN | --token-file PATH] [--json] COMMAND\n"
          "commands:\n"
          "  status                            version, uptime, workers and totals\n"
          "  backends                          every backend with its state and counters\n"
          "  sessions [--backend NAME] [--pool P]\n"
          "                                    live sessions, every page of them\n"
          "  add NAME URL [--weight W] [--pool P]\n"
          "                                    add a backend (ws:// or wss:// URL, W 1..1000) to\n"
          "                                    pool P (default: default)\n"
          "  remove NAME [--sessions MODE]     remove a backend; its live sessions: keep\n"
          "                                    (default), failover or close\n"
          "  enable NAME, disable NAME         start/stop giving a backend new sessions\n"
          "  weight NAME W                     set a backend's weight (1..1000)\n"
          "  drain NAME [--wait [--timeout S]] disable it and move its sessions to the others;\n"
          "                                    --wait returns once it has none (S default 60)\n"
          "  kill SESSION                      close a session\n"
          "  failover SESSION [--to NAME]      move a session to another backend now\n"
          "  reload                            re-read the configuration file, like SIGHUP\n"
          "  pools                             list the pools: algorithm, backends, sessions\n"
          "  pool NAME KEY=VALUE               set an [upstream] key of one pool until the next\n"
          "                                    reload (a pool no file names is made)\n"
          "  routes                            the routes in matching order, with their matches\n"
          "  upgrade                           start the program file again and hand over to it,\n"
          "                                    like SIGUSR2 (answers once it is ready or refused)\n"
          "options:\n"
          "  -a, --address ADDR  admin API HOST:PORT (default $WSBAL_ADMIN or " WSB_CTL_DEFAULT_ADDR
          ")\n"
          "  -T, --token TOKEN   bearer token (shows in ps: prefer --token-file)\n"
          "  --token-file PATH   read the token from PATH; default $WSBAL_TOKEN, then the file\n"
          "                      $WSBAL_TOKEN_FILE names\n"
          "  -j, --json          print the server's JSON answer as it came\n"
          "  -h, --help          show this help;  -V, --version  print the version\n"
          "exit status: 0 done, 1 the server answered an error or could not be reached, 2 usage\n");
}

__attribute__((noreturn, format(printf, 1, 2))) static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "wsbalctl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'wsbalctl --help'.\n");
  va_end(ap);
  exit(WSB_CTL_EXIT_USAGE);
}

/* ---- building requests ---- */

/* Appends s percent-encoded: everything but RFC 3986's unreserved characters. */
static bool append_encoded(char *out, size_t cap, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t len = strlen(out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~';
    if (len + (plain ? 1 : 3) >= cap)
      return false;
    if (plain) {
      out[len++] = (char)ch;
    } else {
      out[len++] = '%';
      out[len++] = hex[ch >> 4];
      out[len++] = hex[ch & 15];
    }
  }
  out[len] = '\0';
  return true;
}

/* Appends ?name=encoded(value) to the target, or &name=... after a first one. */
static bool add_query(struct call *c, const char *name, const char *value) {
  size_t len = strlen(c->target);
  return snprintf(c->target + len, sizeof(c->target) - len,
                  "%c%s=", strchr(c->target, '?') != NULL ? '&' : '?',
                  name) < (int)(sizeof(c->target) - len) &&
         append_encoded(c->target, sizeof(c->target), value);
}

static bool sessions_query(const struct options *o, struct call *c) {
  return (o->backend == NULL || add_query(c, "backend", o->backend)) &&
         (o->pool == NULL || add_query(c, "pool", o->pool));
}

static bool remove_query(const struct options *o, struct call *c) {
  return o->sessions == NULL || add_query(c, "sessions", o->sessions);
}

/* A request body is one JSON object: body_begin opens it in c->body, body_end closes it. */
static void body_begin(struct call *c, struct wsb_json *j) {
  wsb_json_init(j, c->body, sizeof(c->body));
  wsb_json_object_begin(j);
}

static bool body_end(struct call *c, struct wsb_json *j) {
  wsb_json_object_end(j);
  c->body_len = wsb_json_finish(j);
  return c->body_len > 0;
}

static bool add_body(const struct options *o, struct call *c) {
  struct wsb_json j;
  body_begin(c, &j);
  wsb_json_key(&j, "name");
  wsb_json_cstring(&j, o->args[1]);
  wsb_json_key(&j, "url");
  wsb_json_cstring(&j, o->args[2]);
  if (o->given & OPT_WEIGHT) {
    wsb_json_key(&j, "weight");
    wsb_json_uint(&j, o->weight);
  }
  if (o->given & OPT_POOL) {
    wsb_json_key(&j, "pool");
    wsb_json_cstring(&j, o->pool);
  }
  return body_end(c, &j);
}

static bool failover_body(const struct options *o, struct call *c) {
  if (o->to == NULL)
    return true;
  struct wsb_json j;
  body_begin(c, &j);
  wsb_json_key(&j, "backend");
  wsb_json_cstring(&j, o->to);
  return body_end(c, &j);
}

/* pool NAME KEY=VALUE: PATCH {"KEY": "VALUE"}, the value as the file would spell it. */
static bool pool_body(const struct options *o, struct call *c) {
  const char *eq = strchr(o->args[2], '=');
  if (eq == NULL || eq == o->args[2])
    usage_error("pool takes KEY=VALUE, e.g. algorithm=round_robin, not \"%s\"", o->args[2]);
  char key[128];
  snprintf(key, sizeof(key), "%.*s", (int)(eq - o->args[2]), o->args[2]);
  struct wsb_json j;
  body_begin(c, &j);
  wsb_json_key(&j, key);
  wsb_json_cstring(&j, eq + 1);
  return body_end(c, &j);
}

/* weight NAME W: PATCH {"weight": W}. */
static bool weight_body(const struct options *o, struct call *c) {
  struct wsb_json j;
  body_begin(c, &j);
  wsb_json_key(&j, "weight");
  wsb_json_uint(&j, o->weight);
  return body_end(c, &j);
}

static const struct command commands[] = {
    {"status", 0, 0, "status", "GET", "/api/v1/status", "", NULL, wsb_ctl_print_status},
    {"backends", 0, 0, "backends", "GET", "/api/v1/backends", "", NULL, wsb_ctl_print_backends},
    {"sessions", 0, OPT_BACKEND | OPT_POOL, "sessions [--backend NAME] [--pool P]", "GET",
     "/api/v1/sessions", "", sessions_query, NULL},
    {"add", 2, OPT_WEIGHT | OPT_POOL, "add NAME URL [--weight W] [--pool P]", "POST",
     "/api/v1/backends", "", add_body, wsb_ctl_print_backend},
    {"remove", 1, OPT_SESSIONS, "remove NAME [--sessions keep|failover|close]", "DELETE",
     "/api/v1/backends/", "", remove_query, wsb_ctl_print_fields},
    {"enable", 1, 0, "enable NAME", "POST", "/api/v1/backends/", "/enable", NULL,
     wsb_ctl_print_backend},
    {"disable", 1, 0, "disable NAME", "POST", "/api/v1/backends/", "/disable", NULL,
     wsb_ctl_print_backend},
    {"weight", 2, 0, "weight NAME W", "PATCH", "/api/v1/backends/", "", weight_body,
     wsb_ctl_print_backend},
    {"drain", 1, OPT_WAIT | OPT_TIMEOUT, "drain NAME [--wait [--timeout S]]", "POST",
     "/api/v1/backends/", "/drain", NULL, wsb_ctl_print_fields},
    {"kill", 1, 0, "kill SESSION", "DELETE", "/api/v1/sessions/", "", NULL, wsb_ctl_print_fields},
    {"failover", 1, OPT_TO, "failover SESSION [--to NAME]", "POST", "/api/v1/sessions/",
     "/failover", failover_body, wsb_ctl_print_fields},
    {"reload", 0, 0, "reload", "POST", "/api/v1/reload", "", NULL, wsb_ctl_print_reload},
    {"pools", 0, 0, "pools", "GET", "/api/v1/pools", "", NULL, wsb_ctl_print_pools},
    {"pool", 2, 0, "pool NAME KEY=VALUE", "PATCH", "/api/v1/pools/", "", pool_body,
     wsb_ctl_print_pool},
    {"routes", 0, 0, "routes", "GET", "/api/v1/routes", "", NULL, wsb_ctl_print_routes},
    {"upgrade", 0, 0, "upgrade", "POST", "/api/v1/upgrade", "", NULL, wsb_ctl_print_fields},
};

/* The command's request: false when an argument makes it too long. */
static bool build_call(const struct command *cmd, const struct options *o, struct call *c) {
  c->method = cmd->method;
  snprintf(c->target, sizeof(c->target), "%s", cmd->path);
  if (cmd->path[strlen(cmd->path) - 1] == '/' &&
      !append_encoded(c->target, sizeof(c->target), o->args[1]))
    return false;
  size_t len = strlen(c->target);
  if (snprintf(c->target + len, sizeof(c->target) - len, "%s", cmd->suffix) >=
      (int)(sizeof(c->target) - len))
    return false;
  return cmd->body == NULL || cmd->body(o, c);
}

/* ---- the command line ---- */

/* A whole number from min to max, or a usage error naming what takes it. */
static unsigned long parse_number(const char *s, const char *what, unsigned long min,
                                  unsigned long max) {
  char *end;
  errno = 0;
  unsigned long v = s[0] >= '0' && s[0] <= '9' ? strtoul(s, &end, 10) : 0;
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
    usage_error("%s takes a whole number from %lu to %lu, not \"%s\"", what, min, max, s);
  return v;
}

static void parse_options(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {
      {"address", required_argument, NULL, 'a'},  {"token", required_argument, NULL, 'T'},
      {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},        {"backend", required_argument, NULL, 'b'},
      {"weight", required_argument, NULL, 'w'},   {"to", required_argument, NULL, 't'},
      {"sessions", required_argument, NULL, 's'}, {"wait", no_argument, NULL, 'W'},
      {"timeout", required_argument, NULL, 'o'},  {"token-file", required_argument, NULL, 'F'},
      {"pool", required_argument, NULL, 'p'},     {NULL, 0, NULL, 0},
  };
  opterr = 0; /* our own messages, with the exit status SPEC.md gives usage errors */
  int ch;
  while ((ch = getopt_long(argc, argv, ":a:T:jhV", longopts, NULL)) != -1) {
    switch (ch) {
    case 'a':
      o->addr = optarg;
      break;
    case 'T':
      o->token = optarg;
      break;
    case 'j':
      o->json = true;
      break;
    case 'h':
      usage(stdout);
      exit(WSB_CTL_EXIT_OK);
    case 'V':
      printf("wsbalctl %s\n", WSB_VERSION);
      exit(WSB_CTL_EXIT_OK);
    case 'b':
      o->given |= OPT_BACKEND;
      o->backend = optarg;
      break;
    case 'w':
      o->given |= OPT_WEIGHT;
      o->weight = parse_number(optarg, "--weight", 1, 1000);
      break;
    case 'W':
      o->given |= OPT_WAIT;
      break;
    case 'o':
      o->given |= OPT_TIMEOUT;
      o->timeout = parse_number(optarg, "--timeout", 1, 86400);
      break;
    case 'F':
      o->token_file = optarg;
      break;
    case 't':
      o->given |= OPT_TO;
      o->to = optarg;
      break;
    case 'p':
      o->given |= OPT_POOL;
      o->pool = optarg;
      break;
    case 's':
      o->given |= OPT_SESSIONS;
      o->sessions = optarg;
      if (strcmp(optarg, "keep") && strcmp(optarg, "failover") && strcmp(optarg, "close"))
        usage_error("--sessions takes keep, failover or close, not \"%s\"", optarg);
      break;
    case ':':
      usage_error("%s needs a value", argv[optind - 1]);
    default:
      if (optopt != 0)
        usage_error("unknown option -%c", optopt);
      usage_error("unknown option %s", argv[optind - 1]);
    }
  }
  o->args = argv + optind;
  o->nargs = argc - optind;
}

static const struct command *find_command(const struct options *o) {
  if (o->nargs == 0)
    usage_error("%s", "no command given");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    const struct command *cmd = &commands[i];
    if (strcmp(cmd->name, o->args[0]) != 0)
      continue;
    if (o->nargs - 1 != cmd->operands)
      usage_error("%s takes %d operand%s: wsbalctl [-a ADDR] [-T TOKEN] [--json] %s", cmd->name,
                  cmd->operands, cmd->operands == 1 ? "" : "s", cmd->synopsis);
    for (unsigned b = 0; b < sizeof(option_names) / sizeof(option_names[0]); b++)
      if ((o->given & ~cmd->options) & (1u << b))
        usage_error("%s does not go with %s", option_names[b], cmd->name);
    for (int a = 1; a < o->nargs; a++)
      if (o->args[a][0] == '\0')
        usage_error("%s: an operand is empty", cmd->name);
    if ((o->given & OPT_TIMEOUT) && !(o->given & OPT_WAIT))
      usage_error("%s", "--timeout goes with --wait");
    return cmd;
  }
  usage_error("unknown command \"%s\"", o->args[0]);
}

/* ---- the token ---- */

__attribute__((noreturn, format(printf, 1, 2))) static void token_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "wsbalctl: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(WSB_CTL_EXIT_USAGE);
}

/* The token in the file at path, one trailing newline (LF or CR LF) stripped. An unreadable,
   empty or oversized file is a usage error: sending no token would only earn a 401. */
static const char *read_token_file(const char *path) {
  static char token[TOKEN_MAX + 2];
  FILE *f = fopen(path, "re");
  if (f == NULL)
    token_error("cannot read the token file %s: %s", path, strerror(errno));
  size_t n = fread(token, 1, sizeof(token) - 1, f);
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (err != 0)
    token_error("cannot read the token file %s: %s", path, strerror(err));
  if (n > TOKEN_MAX)
    token_error("the token file %s holds more than %d bytes", path, TOKEN_MAX);
  token[n] = '\0';
  if (n > 0 && token[n - 1] == '\n')
    token[--n] = '\0';
  if (n > 0 && token[n - 1] == '\r')
    token[--n] = '\0';
  if (n == 0)
    token_error("the token file %s is empty", path);
  return token;
}

/* --token, then --token-file, then $WSBAL_TOKEN, then the file $WSBAL_TOKEN_FILE names. */
static const char *find_token(const struct options *o) {
  if (o->token != NULL)
    return o->token;
  if (o->token_file != NULL)
    return read_token_file(o->token_file);
  const char *env = getenv("WSBAL_TOKEN");
  if (env != NULL && env[0] != '\0')
    return env;
  env = getenv("WSBAL_TOKEN_FILE");
  if (env != NULL && env[0] != '\0')
    return read_token_file(env);
  return NULL;
}

/* ---- talking to the server ---- */

/* One request; false with the reason on stderr when there is no answer. */
static bool call(const struct options *o, const struct wsb_ctl_addr *addr, const char *method,
                 const char *target, const struct call *c, struct wsb_ctl_answer *ans) {
  struct wsb_ctl_request rq = {
      .method = method,
      .target = target,
      .body = c != NULL && c->body_len > 0 ? c->body : NULL,
      .body_len = c != NULL ? c->body_len : 0,
      .token = o->token,
  };
  char err[512];
  if (wsb_ctl_call(addr, &rq, ans, err, sizeof(err)) != 0) {
    fprintf(stderr, "wsbalctl: %s\n", err);
    return false;
  }
  return true;
}

static bool answer_ok(const struct wsb_ctl_answer *ans) {
  return ans->status >= 200 && ans->status < 300;
}

/* With --json, the body to stdout as it came. */
static void print_raw(const struct options *o, const struct wsb_ctl_answer *ans) {
  if (o->json)
    wsb_ctl_print_body(ans);
}

static int flush_stdout(int rc) {
  if (fflush(stdout) != 0) {
    perror("wsbalctl: stdout");
    return WSB_CTL_EXIT_ERROR;
  }
  return rc;
}

/* The path of the backend or session named name: base, then name percent-encoded. */
static bool named_target(char *out, size_t cap, const char *base, const char *name) {
  snprintf(out, cap, "%s", base);
  return append_encoded(out, cap, name);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * drain --wait: asks for the backend until it has no live session left, or the timeout says
 * to give up (exit 1: the drain goes on in the server). A section of DNS-found addresses is
 * answered as a list: every address must be empty.
 */
static int wait_drained(const struct options *o, const struct wsb_ctl_addr *addr,
                        const char *name) {
  char target[TARGET_MAX];
  if (!named_target(target, sizeof(target), "/api/v1/backends/", name))
    usage_error("%s", "an argument is too long");
  unsigned long timeout = o->given & OPT_TIMEOUT ? o->timeout : DRAIN_TIMEOUT_S;
  uint64_t deadline = now_ms() + (uint64_t)timeout * 1000;
  for (;;) {
    struct wsb_ctl_answer ans;
    if (!call(o, addr, "GET", target, NULL, &ans))
      return WSB_CTL_EXIT_ERROR;
    uint64_t left = 0;
    int rc = WSB_CTL_EXIT_OK;
    if (!answer_ok(&ans))
      wsb_ctl_print_error(&ans);
    else
      rc = wsb_ctl_sessions_left(&ans, &left);
    free(ans.body);
    if (!answer_ok(&ans) || rc != WSB_CTL_EXIT_OK)
      return WSB_CTL_EXIT_ERROR;
    if (left == 0) {
      if (!o->json)
        printf("%s: drained, no live sessions left\n", name);
      return flush_stdout(WSB_CTL_EXIT_OK);
    }
    uint64_t now = now_ms();
    if (now >= deadline) {
      fprintf(stderr, "wsbalctl: drain %s: %llu session%s still live after %lu s\n", name,
              (unsigned long long)left, left == 1 ? "" : "s", timeout);
      return WSB_CTL_EXIT_ERROR;
    }
    uint64_t pause = deadline - now < DRAIN_POLL_MS ? deadline - now : DRAIN_POLL_MS;
    struct timespec ts = {.tv_sec = (time_t)(pause / 1000),
                          .tv_nsec = (long)(pause % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
}

/* Where the pages of a session list are asked for. */
struct page_source {
  const struct options *o;
  const struct wsb_ctl_addr *addr;
};

static bool fetch_page(void *arg, const char *target, struct wsb_ctl_answer *ans) {
  const struct page_source *src = arg;
  return call(src->o, src->addr, "GET", target, NULL, ans);
}

/* Sends the call and reports the answer; returns the exit status. */
static int run(const struct options *o, const struct wsb_ctl_addr *addr, const struct call *c,
               const struct command *cmd) {
  if (cmd->print == NULL) {
    struct page_source src = {o, addr};
    return flush_stdout(wsb_ctl_sessions(c->target, o->json, fetch_page, &src));
  }
  struct wsb_ctl_answer ans;
  if (!call(o, addr, c->method, c->target, c, &ans))
    return WSB_CTL_EXIT_ERROR;
  bool ok = answer_ok(&ans);
  int rc = ok ? WSB_CTL_EXIT_OK : WSB_CTL_EXIT_ERROR;
  /* kill and failover of a session that is not live: the server answers 404 (a malformed id
     too), said in wsbalctl's own words. */
  bool no_session = ans.status == 404 && strcmp(cmd->path, "/api/v1/sessions/") == 0 &&
                    wsb_ctl_error_starts(&ans, "no such session");
  if (no_session) {
    fprintf(stderr, "wsbalctl: no such session: %s\n", o->args[1]);
  } else {
    print_raw(o, &ans);
    if (!ok)
      wsb_ctl_print_error(&ans);
    else if (!o->json)
      rc = cmd->print(&ans);
  }
  free(ans.body);
  rc = flush_stdout(rc);
  if (rc == WSB_CTL_EXIT_OK && (o->given & OPT_WAIT))
    rc = wait_drained(o, addr, o->args[1]);
  return rc;
}

int main(int argc, char **argv) {
  struct options o = {.addr = getenv("WSBAL_ADMIN")};
  if (o.addr == NULL || o.addr[0] == '\0')
    o.addr = WSB_CTL_DEFAULT_ADDR;
  parse_options(argc, argv, &o);
  const struct command *cmd = find_command(&o);
  if (strcmp(cmd->name, "weight") == 0)
    o.weight = parse_number(o.args[2], "weight", 1, 1000);

  struct wsb_ctl_addr addr;
  char err[512];
  if (wsb_ctl_addr_parse(o.addr, &addr, err, sizeof(err)) != 0)
    usage_error("%s", err);
  o.token = find_token(&o);
  for (const char *t = o.token; t != NULL && *t; t++)
    if ((unsigned char)*t < ' ' || *t == 0x7f)
      usage_error("%s", "the token holds a control character");
  struct call c = {0};
  if (!build_call(cmd, &o, &c))
    usage_error("%s", "an argument is too long");
  return run(&o, &addr, &c, cmd);
}
