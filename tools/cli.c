/* Help and usage errors for wsbal-echo and wsbal-load (exit status 2, as wsbal's usage errors). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>

void wsb_cli_usage_error(const struct wsb_cli *cli, const char *msg, const char *arg) {
  fprintf(stderr, "%s: %s%s%s\n", cli->name, msg, arg != NULL ? ": " : "", arg != NULL ? arg : "");
  if (cli->usage_after_error)
    cli->usage(stderr);
  exit(WSB_CLI_EXIT_USAGE);
}

void wsb_cli_help(const struct wsb_cli *cli, bool asked) {
  cli->usage(asked ? stdout : stderr);
  exit(asked ? 0 : WSB_CLI_EXIT_USAGE);
}

void wsb_cli_no_operands(const struct wsb_cli *cli, int argc, char **argv) {
  if (optind < argc)
    wsb_cli_usage_error(cli, "unexpected argument", argv[optind]);
}
