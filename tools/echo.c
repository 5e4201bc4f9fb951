/* wsbal-echo: a small, fast WebSocket echo backend for the demo, the tests and benchmarks. */
#include "echo.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "errors.h"
#include "log.h"
#include "values.h"

/*
 * What clients and scripts can rely on beyond SPEC.md:
 * - Messages are echoed as they stream in, never reassembled: each read's
 *   share of a data frame goes back at once as one fragment (the first with
 *   the message's opcode, then continuations, FIN on the piece that ends the
 *   message), so a 16 MiB message costs no 16 MiB buffer and a small message
 *   inside one read comes back as the single frame it was. Text is checked
 *   before it is echoed, so invalid UTF-8 is never sent back (close 1007).
 * - Control frames between fragments are answered in place: a pong for a
 *   ping, nothing for a pong, and a close ends the echo.
 * - Plain HTTP answers (GET /healthCheck, GET /metric, 404, 405 for other
 *   methods) are JSON with Connection: close. A request carrying Upgrade,
 *   Sec-WebSocket-Key, Sec-WebSocket-Version or Connection: upgrade is judged
 *   as a WebSocket handshake (400/426 when it fails).
 * - After its last frame or answer the server sends FIN and reads until the
 *   peer's EOF, at most 5 s, so the last bytes are never lost to a reset.
 * - A connection whose unsent output passes 1 MiB is not read until it falls
 *   to 256 KiB, so a client that does not read cannot grow the server.
 */

#define EXIT_STARTUP 3

struct options {
  const char *host;
  const char *id; /* NULL: "echo-PORT" once the port is known */
  long port;
  uint64_t max_message;
  bool verbose;
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: wsbal-echo --port P [--host 127.0.0.1] [--id NAME] [--max-message SIZE] [-v]\n"
          "  -p, --port P            TCP port to listen on; 0 picks a free one\n"
          "  -H, --host ADDR         IPv4 or IPv6 address to bind (default 127.0.0.1)\n"
          "  -i, --id NAME           value of the X-Backend-Id header (default echo-PORT)\n"
          "  -m, --max-message SIZE  larger messages close the session with 1009\n"
          "                          (default 16m; k/m/g suffixes; 0 = no limit)\n"
          "  -v, --verbose           log every connection's end\n"
          "  -h, --help              show this help\n"
          "Prints \"listening on HOST:PORT\" once ready. GET /healthCheck and GET /metric\n"
          "answer JSON; every other request is a WebSocket upgrade or an error.\n");
}

/* The id goes into a response header, so it must be a visible ASCII token. */
static bool id_is_valid(const char *id) {
  size_t len = strlen(id);
  if (len == 0 || len > WSB_ECHO_ID_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if (id[i] <= ' ' || id[i] > '~')
      return false;
  return true;
}

static const struct wsb_cli cli = {"wsbal-echo", usage, true};

static void parse_options(int argc, char **argv, struct options *o) {
  static const struct option longopts[] = {
      {"port", required_argument, NULL, 'p'},
      {"host", required_argument, NULL, 'H'},
      {"id", required_argument, NULL, 'i'},
      {"max-message", required_argument, NULL, 'm'},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  *o = (struct options){.host = "127.0.0.1", .port = -1, .max_message = WSB_ECHO_MAX_MESSAGE};
  int ch;
  while ((ch = getopt_long(argc, argv, "p:H:i:m:vh", longopts, NULL)) != -1) {
    uint64_t value;
    switch (ch) {
    case 'p':
      if (wsb_parse_uint(optarg, 0, 65535, &value) != 0)
        wsb_cli_usage_error(&cli, "bad port", optarg);
      o->port = (long)value;
      break;
    case 'H':
      o->host = optarg;
      break;
    case 'i':
      if (!id_is_valid(optarg))
        wsb_cli_usage_error(&cli, "the id must be 1-128 visible ASCII characters", optarg);
      o->id = optarg;
      break;
    case 'm':
      if (wsb_parse_size(optarg, &o->max_message) != 0)
        wsb_cli_usage_error(&cli, "bad size", optarg);
      break;
    case 'v':
      o->verbose = true;
      break;
    case 'h':
    default:
      wsb_cli_help(&cli, ch == 'h');
    }
  }
  wsb_cli_no_operands(&cli, argc, argv);
  if (o->port < 0)
    wsb_cli_usage_error(&cli, "--port is required", NULL);
}

static void on_connection(uv_stream_t *listener, int status) {
  struct wsb_echo_server *srv = listener->loop->data;
  if (status < 0) {
    wsb_log_warn("listen: %s", uv_strerror(status));
    return;
  }
  wsb_echo_conn_accept(srv);
}

/* Stops everything; uv_run returns once the last handle is closed. */
static void on_signal(uv_signal_t *sig, int signum) {
  struct wsb_echo_server *srv = sig->loop->data;
  wsb_log_info("stopping on signal %d", signum);
  uv_close((uv_handle_t *)&srv->listener, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  wsb_echo_conn_close_all(srv);
}

static int resolve(const char *host, long port, struct sockaddr_storage *addr) {
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) == 0)
    return 0;
  return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr);
}

static int bound_port(uv_tcp_t *tcp) {
  struct sockaddr_storage addr;
  int len = sizeof(addr);
  if (uv_tcp_getsockname(tcp, (struct sockaddr *)&addr, &len) != 0)
    return -1;
  if (addr.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
  return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

/* Binds and listens, then tells whoever waits for us where we are. */
static void start_listening(struct wsb_echo_server *srv, const struct options *o) {
  struct sockaddr_storage addr;
  if (resolve(o->host, o->port, &addr) != 0)
    wsb_cli_usage_error(&cli, "not an IP address", o->host);
  uv_tcp_init(&srv->loop, &srv->listener);
  int err = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
  if (err == 0)
    err = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
  if (err != 0)
    wsb_fatal(EXIT_STARTUP, "cannot listen on %s:%ld: %s", o->host, o->port, uv_strerror(err));
  int port = bound_port(&srv->listener);
  if (o->id != NULL)
    snprintf(srv->id, sizeof(srv->id), "%s", o->id);
  else
    snprintf(srv->id, sizeof(srv->id), "echo-%d", port);
  bool v6 = strchr(o->host, ':') != NULL;
  printf("listening on %s%s%s:%d\n", v6 ? "[" : "", o->host, v6 ? "]" : "", port);
  fflush(stdout);
  wsb_log_info("listening on %s port %d as %s", o->host, port, srv->id);
}

static void start_signals(struct wsb_echo_server *srv) {
  uv_signal_init(&srv->loop, &srv->sigint);
  uv_signal_init(&srv->loop, &srv->sigterm);
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  /* A peer that vanishes mid-write must cost an EPIPE, not the process. */
  signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv) {
  struct options o;
  parse_options(argc, argv, &o);
  wsb_log_setup(o.verbose ? WSB_LOG_DEBUG : WSB_LOG_INFO, WSB_LOG_TEXT, "wsbal-echo", -1);

  struct wsb_echo_server *srv = calloc(1, sizeof(*srv));
  if (srv == NULL)
    wsb_fatal(EXIT_STARTUP, "out of memory");
  srv->max_message = o.max_message;
  int err = uv_loop_init(&srv->loop);
  if (err != 0)
    wsb_fatal(EXIT_STARTUP, "uv_loop_init: %s", uv_strerror(err));
  srv->loop.data = srv;

  start_signals(srv);
  start_listening(srv, &o);
  uv_run(&srv->loop, UV_RUN_DEFAULT);

  err = uv_loop_close(&srv->loop);
  free(srv);
  if (err != 0) {
    wsb_log_error("handles left open at exit: %s", uv_strerror(err));
    return 1;
  }
  return 0;
}
