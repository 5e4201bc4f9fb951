/* The command-line conventions wsbal-echo and wsbal-load share: help, usage errors, exit 2. */
#ifndef WSB_CLI_H
#define WSB_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define WSB_CLI_EXIT_USAGE 2

struct wsb_cli {
  const char *name;         /* the program, first on every error line */
  void (*usage)(FILE *out); /* the whole usage text */
  bool usage_after_error;   /* a usage error is followed by the usage (a short one) */
};

/* "NAME: msg: arg" (arg may be NULL) on stderr, then exit 2. */
__attribute__((noreturn)) void wsb_cli_usage_error(const struct wsb_cli *cli, const char *msg,
                                                   const char *arg);

/* getopt_long's -h (asked: the usage on stdout, exit 0) or an option it does not know (the usage
   on stderr, exit 2). */
__attribute__((noreturn)) void wsb_cli_help(const struct wsb_cli *cli, bool asked);

/* After getopt_long's loop: a usage error when an operand follows the options. */
void wsb_cli_no_operands(const struct wsb_cli *cli, int argc, char **argv);

#endif
