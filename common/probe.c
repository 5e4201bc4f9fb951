/* Health checks and load reports of backends: the answers' parsing and verdicts, no I/O. */
#include "probe.h"

#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "errors.h"
#include "json_read.h"

/* Enough for the small objects health and metric endpoints answer; a bigger one is no report. */
#define PROBE_JSON_TOKENS 256

const char *wsb_probe_result_name(enum wsb_probe_result r) {
  static const char *const names[] = {
#define WSB_XX(name, label) label,
      WSB_PROBE_RESULTS(WSB_XX)
#undef WSB_XX
  };
  return (unsigned)r < WSB_PROBE_RESULT_COUNT ? names[r] : "?";
}

struct parse_state {
  llhttp_t parser;
  struct wsb_probe_response *r;
  bool complete;
};

static int on_message_begin(llhttp_t *p) {
  struct parse_state *s = (struct parse_state *)p;
  s->r->body_len = 0;
  return HPE_OK;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct parse_state *s = (struct parse_state *)p;
  /* The body is never longer than the bytes it came in, which are at most the buffer's size. */
  if (len > sizeof(s->r->body) - s->r->body_len)
    return HPE_USER;
  memcpy(s->r->body + s->r->body_len, at, len);
  s->r->body_len += len;
  return HPE_OK;
}

static int on_message_complete(llhttp_t *p) {
  struct parse_state *s = (struct parse_state *)p;
  /* 1xx answers are interim: the real one follows. */
  if (llhttp_get_status_code(p) < 200)
    return HPE_OK;
  s->r->status = (uint16_t)llhttp_get_status_code(p);
  s->complete = true;
  return HPE_PAUSED;
}

int wsb_probe_parse(const char *buf, size_t len, bool eof, struct wsb_probe_response *r) {
  if (len > WSB_PROBE_MAX_RESPONSE)
    return WSB_ETOO_BIG;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  struct parse_state s = {.r = r};
  r->status = 0;
  r->body_len = 0;
  llhttp_init(&s.parser, HTTP_RESPONSE, &settings);
  llhttp_errno_t e = llhttp_execute(&s.parser, buf, len);
  if (s.complete)
    return 0;
  if (e != HPE_OK)
    return WSB_EHTTP;
  if (!eof)
    return len == WSB_PROBE_MAX_RESPONSE ? WSB_ETOO_BIG : WSB_PARTIAL;
  /* A body without length ends with the connection; any other message cut short is broken. */
  e = llhttp_finish(&s.parser);
  return s.complete && (e == HPE_OK || e == HPE_PAUSED) ? 0 : WSB_EHTTP;
}

/* A count or status code in a JSON value: a non-negative integer, or a string of 1 to 18 digits. */
static int json_uint(const struct wsb_json_doc *doc, int i, uint64_t *v) {
  if (wsb_json_get_uint(doc, i, 0, UINT64_MAX, v) == 0)
    return 0;
  char s[24];
  size_t n;
  if (wsb_json_get_string(doc, i, s, sizeof(s), &n) != 0 || n == 0 || n > 18)
    return WSB_EVALUE;
  *v = 0;
  for (size_t k = 0; k < n; k++) {
    if (s[k] < '0' || s[k] > '9')
      return WSB_EVALUE;
    *v = *v * 10 + (uint64_t)(s[k] - '0');
  }
  return 0;
}

/* The raw text of token i, cut to fit, for a log line. */
static void token_text(const struct wsb_json_doc *doc, int i, char *buf, size_t cap) {
  const struct wsb_json_token *t = &doc->tokens[i];
  size_t n = t->end - t->start;
  if (n > 32)
    n = 32;
  snprintf(buf, cap, "%.*s", (int)n, doc->text + t->start);
}

static bool is_2xx(uint64_t status) {
  return status >= 200 && status <= 299;
}

/* A response body read as JSON, its tokens beside it. */
struct body_json {
  struct wsb_json_token tokens[PROBE_JSON_TOKENS];
  struct wsb_json_doc doc;
};

/* False when the body is not JSON, or too large a document to be a report. */
static bool body_parse(struct body_json *b, const struct wsb_probe_response *r) {
  return wsb_json_parse(&b->doc, r->body, r->body_len, b->tokens, PROBE_JSON_TOKENS, 0) > 0;
}

enum wsb_probe_result wsb_probe_health(const struct wsb_probe_response *r, char *why,
                                       size_t whylen) {
  if (!is_2xx(r->status)) {
    if (why != NULL)
      snprintf(why, whylen, "HTTP %u", (unsigned)r->status);
    return WSB_PROBE_BAD_STATUS;
  }
  struct body_json b;
  /* A body that is not a JSON object says nothing more than its HTTP status. */
  if (!body_parse(&b, r))
    return WSB_PROBE_OK;
  int i = wsb_json_member(&b.doc, 0, "status");
  if (i < 0)
    return WSB_PROBE_OK;
  uint64_t code;
  if (json_uint(&b.doc, i, &code) == 0 && is_2xx(code))
    return WSB_PROBE_OK;
  if (why != NULL) {
    char text[40];
    token_text(&b.doc, i, text, sizeof(text));
    snprintf(why, whylen, "JSON status %s", text);
  }
  return WSB_PROBE_BAD_STATUS;
}

enum wsb_probe_result wsb_probe_load(const struct wsb_probe_response *r, uint64_t *count) {
  if (!is_2xx(r->status))
    return WSB_PROBE_BAD_STATUS;
  struct body_json b;
  if (!body_parse(&b, r))
    return WSB_PROBE_BAD_BODY;
  int i = wsb_json_member(&b.doc, 0, "agentsConnections");
  if (i == WSB_EJSON_ABSENT)
    i = wsb_json_member(&b.doc, 0, "connections");
  if (i < 0 || json_uint(&b.doc, i, count) != 0)
    return WSB_PROBE_BAD_BODY;
  return WSB_PROBE_OK;
}
