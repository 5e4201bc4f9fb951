/* wsbal's entry: the command line of SPEC.md, configuration loading, then the master role. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "errors.h"
#include "log.h"
#include "master.h"
#include "values.h"

/* SPEC.md's exit statuses. */
enum {
  EXIT_CLEAN = 0,
  EXIT_CONFIG = 1,
  EXIT_USAGE = 2,
  EXIT_STARTUP = 3,
};

#define DEFAULT_CONFIG "/etc/wsbal/wsbal.ini"

extern char **environ;

static void usage(FILE *out) {
  fprintf(out, "usage: wsbal [-c FILE] [-t] [-w N] [-V] [-h]\n"
               "  -c, --config FILE   INI file (default " DEFAULT_CONFIG ")\n"
               "  -t, --test          validate the configuration and exit 0 (OK) or 1 (errors)\n"
               "  -w, --workers N     override [wsbal] workers (1..1024 or auto)\n"
               "  -V, --version       print the version and exit\n"
               "  -h, --help          print this help and exit\n"
               "Signals: HUP reload, TERM/INT graceful stop (twice: at once), USR1 reopen the "
               "access log.\n");
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"config", required_argument, NULL, 'c'},  {"test", no_argument, NULL, 't'},
      {"workers", required_argument, NULL, 'w'}, {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
  };
  const char *path = DEFAULT_CONFIG;
  const char *workers_arg = NULL;
  int test_only = 0;
  int opt;
  while ((opt = getopt_long(argc, argv, "c:tw:Vh", options, NULL)) != -1) {
    switch (opt) {
    case 'c':
      path = optarg;
      break;
    case 't':
      test_only = 1;
      break;
    case 'w':
      workers_arg = optarg;
      break;
    case 'V':
      printf("wsbal %s\n", WSB_VERSION);
      return EXIT_CLEAN;
    case 'h':
      usage(stdout);
      return EXIT_CLEAN;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "wsbal: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_USAGE;
  }

  /* -w is checked before the file so a typo on the command line is a usage error (2), not 1. */
  uint64_t workers = 0;
  if (workers_arg != NULL && strcmp(workers_arg, "auto") != 0 &&
      wsb_parse_uint(workers_arg, 1, 1024, &workers) != 0) {
    fprintf(stderr, "wsbal: -w takes 1..1024 or auto, not '%s'\n", workers_arg);
    return EXIT_USAGE;
  }

  struct wsb_config cfg;
  struct wsb_config_errors errs = {0};
  int rc = wsb_config_load(&cfg, path, environ, &errs);
  if (rc == 0)
    rc = wsb_config_check_tls(&cfg, &errs);
  if (workers_arg != NULL)
    cfg.wsbal.workers = (unsigned)workers;
  /* -t finds what a start would (users, host names, the table's limits), short of binding. */
  wsb_log_setup(WSB_LOG_WARN, WSB_LOG_TEXT, "wsbal -t", -1);
  if (rc == 0 && test_only)
    rc = wsb_master_check(&cfg, &errs);
  if (rc != 0) {
    for (size_t i = 0; i < errs.n; i++)
      fprintf(stderr, "%s\n", errs.lines[i]);
    fprintf(stderr, "wsbal: %zu configuration error%s in %s\n", errs.n, errs.n == 1 ? "" : "s",
            path);
    wsb_config_errors_free(&errs);
    wsb_config_free(&cfg);
    return EXIT_CONFIG;
  }
  wsb_config_errors_free(&errs);
  if (test_only) {
    printf("configuration OK\n");
    wsb_config_free(&cfg);
    return EXIT_CLEAN;
  }

  rc = wsb_master_run(&cfg, path, workers_arg != NULL ? (int)workers : -1);
  wsb_config_free(&cfg);
  return rc;
}
