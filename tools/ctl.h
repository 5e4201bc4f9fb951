/* wsbalctl's internal interfaces: the HTTP exchange, text tables and the answer printers. */
#ifndef WSB_CTL_H
#define WSB_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json_read.h"

#define WSB_CTL_DEFAULT_ADDR "127.0.0.1:8081"
#define WSB_CTL_DEFAULT_PORT "8081"

/* Exit statuses, as SPEC.md gives them. */
#define WSB_CTL_EXIT_OK    0
#define WSB_CTL_EXIT_ERROR 1 /* the server answered an error, or could not be reached or read */
#define WSB_CTL_EXIT_USAGE 2

/* Where the admin API listens: HOST or [V6]:PORT as the user wrote it, split. */
struct wsb_ctl_addr {
  char host[256]; /* without brackets */
  char port[16];
  char display[300]; /* HOST:PORT, brackets around IPv6: messages and the Host header */
};

/* One request: the target is already percent-encoded; body may be NULL. */
struct wsb_ctl_request {
  const char *method;
  const char *target;
  const char *body;
  size_t body_len;
  const char *token; /* NULL or empty: no Authorization header */
};

/* The answer: status and the whole body, NUL-terminated (the NUL is not counted in len). */
struct wsb_ctl_answer {
  int status;
  char *body;
  size_t len;
};

/*
 * Parses "HOST", "HOST:PORT", "[V6]:PORT" or a bare IPv6 address, each optionally after
 * "http://" and before a trailing "/"; a missing port is 8081. Returns 0, or WSB_EVALUE with
 * a reason in err.
 */
int wsb_ctl_addr_parse(const char *text, struct wsb_ctl_addr *addr, char *err, size_t errlen);

/*
 * Sends one request with Connection: close and reads the whole answer. Returns 0 with ans
 * filled (free ans->body), or a negative code with a sentence in err that names the address:
 * "cannot reach the admin API at ADDR: Connection refused", a timeout, a malformed answer.
 */
int wsb_ctl_call(const struct wsb_ctl_addr *addr, const struct wsb_ctl_request *rq,
                 struct wsb_ctl_answer *ans, char *err, size_t errlen);

/* An aligned text table: cells added row by row, printed once every width is known. */
struct wsb_ctl_table {
  size_t ncols;
  const bool *right; /* per column: numbers align right; NULL = all left */
  char **cells;
  size_t ncells;
  size_t cap;
  bool failed; /* out of memory: printing says so instead of a wrong table */
};

void wsb_ctl_table_init(struct wsb_ctl_table *t, size_t ncols, const bool *right);
/* Adds the next cell (copied), filling rows left to right. */
void wsb_ctl_table_add(struct wsb_ctl_table *t, const char *cell);
/* Prints every row with two spaces between columns and no trailing blanks; frees the table.
   Returns 0, or -ENOMEM when a cell could not be stored. */
int wsb_ctl_table_print(struct wsb_ctl_table *t, FILE *out);
void wsb_ctl_table_free(struct wsb_ctl_table *t);

/* ---- reading answers into tables (ctl_print.c) ---- */

/* A column: its title, the member it shows (a dot names a member of an object member:
   "settings.algorithm"), and whether it is a number (aligned right). */
struct wsb_ctl_column {
  const char *title;
  const char *key;
  bool right;
};

/* An answer's JSON body, parsed. */
struct wsb_ctl_reader {
  struct wsb_json_doc doc;
  struct wsb_json_token *tokens;
};

/* Parses the body; unless quiet, says why on stderr and returns false when it is not JSON. */
bool wsb_ctl_read_json(const struct wsb_ctl_answer *ans, struct wsb_ctl_reader *r, bool quiet);
void wsb_ctl_reader_free(struct wsb_ctl_reader *r);
/* The type of token i, 0 when i is not one (a member not found). */
enum wsb_json_type wsb_ctl_json_type(const struct wsb_json_doc *doc, int i);
/* "the admin API's answer is not what wsbalctl expects: why" on stderr. */
void wsb_ctl_unexpected(const char *why);
/* The titles as t's first row; right[] (one per column, kept by t) says which align right. */
void wsb_ctl_table_header(struct wsb_ctl_table *t, const struct wsb_ctl_column *cols, size_t ncols,
                          bool *right);
/* One row: the members of object obj that cols name, as cells ("-" when absent or null). */
void wsb_ctl_table_row(struct wsb_ctl_table *t, const struct wsb_json_doc *doc, int obj,
                       const struct wsb_ctl_column *cols, size_t ncols);
/* An answer's body to stdout as it came, with a newline after it if it had none. */
void wsb_ctl_print_body(const struct wsb_ctl_answer *ans);
/* Prints t to stdout and frees it; returns an exit status. */
int wsb_ctl_table_finish(struct wsb_ctl_table *t);

/* ---- sessions, every page (ctl_sessions.c) ---- */

/* Asks for one target; false when there is no answer (the reason is on stderr). */
typedef bool (*wsb_ctl_fetch_fn)(void *arg, const char *target, struct wsb_ctl_answer *ans);

/*
 * sessions: GET target (/api/v1/sessions with its filter), then the next page at each
 * next_offset until the last, each session once, at most WSB_CTL_SESSION_PAGES pages or past
 * WSB_CTL_SESSIONS_MAX sessions (what a server that lies about next_offset can make it hold).
 * Prints them as one table, or with json as the first answer's body when it was the only page,
 * else one object of the same shape holding every page's sessions. Returns an exit status.
 */
#define WSB_CTL_SESSION_PAGES 1000
#define WSB_CTL_SESSIONS_MAX  1000000
int wsb_ctl_sessions(const char *target, bool json, wsb_ctl_fetch_fn fetch, void *arg);

/*
 * Printers of successful answers, by command. Each reads the JSON body, prints to stdout and
 * returns an exit status: an answer that is not the JSON expected is reported on stderr (1).
 */
int wsb_ctl_print_status(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_backends(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_backend(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_pools(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_pool(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_reload(const struct wsb_ctl_answer *ans);
int wsb_ctl_print_routes(const struct wsb_ctl_answer *ans);
/* drain --wait: the live sessions of a backend's answer, or the sum over a section's
   {"backends": [...]}, into *left; an answer without them is reported on stderr (1). */
int wsb_ctl_sessions_left(const struct wsb_ctl_answer *ans, uint64_t *left);
/* Any other object: one "key  value" line per member. */
int wsb_ctl_print_fields(const struct wsb_ctl_answer *ans);

/* Reports an error answer on stderr: "wsbalctl: STATUS: the server's error", then any
   "errors" lines (a failed reload's FILE:LINE messages). */
void wsb_ctl_print_error(const struct wsb_ctl_answer *ans);
/* Whether an answer's JSON "error" text starts with prefix. */
bool wsb_ctl_error_starts(const struct wsb_ctl_answer *ans, const char *prefix);

#endif
