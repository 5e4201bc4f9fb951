/* HTTP/1.1 head parsing on llhttp, header lookups and the error answers wsbal writes itself. */
#include "http.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "list.h" /* wsb_container_of */

static struct wsb_http_head *head_of(llhttp_t *parser) {
  return wsb_container_of(parser, struct wsb_http_head, parser);
}

/*
 * llhttp hands a span over in pieces when it crosses the end of a feed.
 * Callers feed contiguous bytes, so the next piece starts where the previous
 * one ended and the slice simply grows. A piece that does not start there is
 * a folded line (llhttp joins obs-fold continuations) or a broken caller.
 */
static int slice_extend(struct wsb_http_head *h, struct wsb_slice *s, const char *at, size_t len) {
  if (s->len == 0) {
    s->p = at;
    s->len = len;
    return HPE_OK;
  }
  if (at != s->p + s->len) {
    h->result = WSB_EHTTP;
    return HPE_USER;
  }
  s->len += len;
  return HPE_OK;
}

static int on_url(llhttp_t *parser, const char *at, size_t len) {
  struct wsb_http_head *h = head_of(parser);
  return slice_extend(h, &h->url, at, len);
}

static int on_status(llhttp_t *parser, const char *at, size_t len) {
  struct wsb_http_head *h = head_of(parser);
  return slice_extend(h, &h->reason, at, len);
}

/* The header being named is headers[nheaders]; it is counted once its name is complete. */
static int on_header_field(llhttp_t *parser, const char *at, size_t len) {
  struct wsb_http_head *h = head_of(parser);
  if (h->nheaders == WSB_HTTP_MAX_HEADERS) {
    h->result = WSB_ETOO_MANY_HEADERS;
    return HPE_USER;
  }
  return slice_extend(h, &h->headers[h->nheaders].name, at, len);
}

static int on_header_field_complete(llhttp_t *parser) {
  struct wsb_http_head *h = head_of(parser);
  if (h->nheaders == WSB_HTTP_MAX_HEADERS) {
    h->result = WSB_ETOO_MANY_HEADERS;
    return HPE_USER;
  }
  struct wsb_header *hdr = &h->headers[h->nheaders++];
  /* An empty value still points into the head, so "present but empty" has p != NULL. */
  hdr->value.p = hdr->name.p + hdr->name.len;
  hdr->value.len = 0;
  if (h->nheaders < WSB_HTTP_MAX_HEADERS) /* the next name starts empty (wsb_http_head_init) */
    h->headers[h->nheaders].name = (struct wsb_slice){NULL, 0};
  h->in_value = true;
  return HPE_OK;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len) {
  struct wsb_http_head *h = head_of(parser);
  if (!h->in_value || h->nheaders == 0) {
    h->result = WSB_EHTTP;
    return HPE_USER;
  }
  return slice_extend(h, &h->headers[h->nheaders - 1].value, at, len);
}

/* llhttp drops the whitespace before a value but keeps what follows it. */
static int on_header_value_complete(llhttp_t *parser) {
  struct wsb_http_head *h = head_of(parser);
  if (h->in_value && h->nheaders > 0) {
    struct wsb_slice *v = &h->headers[h->nheaders - 1].value;
    while (v->len > 0 && (v->p[v->len - 1] == ' ' || v->p[v->len - 1] == '\t'))
      v->len--;
  }
  h->in_value = false;
  return HPE_OK;
}

/* The head ends here for every message: what follows is a body or another protocol. */
static int on_headers_complete(llhttp_t *parser) {
  return HPE_PAUSED;
}

static const llhttp_settings_t http_settings = {
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
};

/*
 * llhttp 8 accepts, even without lenient flags, a bare LF as a line end, an
 * obs-fold continuation, whitespace or nothing before a header's colon, and
 * several spaces between the parts of a request line. A proxy must not read
 * such a message differently from the server behind it, so a second pass
 * over exactly the bytes llhttp accepted holds the head to RFC 9112 line
 * syntax. It is a byte machine, so it gives the same verdict however the
 * head is split, and it counts header lines so the limit on them is met at
 * the same byte whichever way.
 */
enum line_state {
  LINE_LEADING = 0, /* before the start line, where empty lines are tolerated (RFC 9112 2.2) */
  LINE_LEADING_CR,
  LINE_START,
  LINE_START_SP, /* in a request line, right after a space */
  LINE_START_CR,
  LINE_FIELD, /* at the beginning of a header line or of the final empty line */
  LINE_NAME,
  LINE_VALUE,
  LINE_VALUE_CR,
  LINE_END_CR,
  LINE_DONE,
  LINE_BAD,
};

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  switch (c) { /* not strchr: every byte of every header name comes here */
  case '!':
  case '#':
  case '$':
  case '%':
  case '&':
  case '\'':
  case '*':
  case '+':
  case '-':
  case '.':
  case '^':
  case '_':
  case '`':
  case '|':
  case '~':
    return true;
  default:
    return false;
  }
}

static enum line_state start_line_byte(bool request, unsigned char c) {
  if (c == '\r')
    return LINE_START_CR;
  if (c == '\n')
    return LINE_BAD;
  if (c == ' ' && request)
    return LINE_START_SP;
  return LINE_START;
}

static enum line_state line_next(enum line_state state, bool request, unsigned char c) {
  switch (state) {
  case LINE_LEADING:
    return c == '\r' ? LINE_LEADING_CR : start_line_byte(request, c);
  case LINE_LEADING_CR:
    return c == '\n' ? LINE_LEADING : LINE_BAD;
  case LINE_START:
    return start_line_byte(request, c);
  case LINE_START_SP:
    return c == ' ' ? LINE_BAD : start_line_byte(request, c);
  case LINE_START_CR:
  case LINE_VALUE_CR:
    return c == '\n' ? LINE_FIELD : LINE_BAD;
  case LINE_FIELD:
    /* A space here is obs-fold, a colon an empty name. */
    return c == '\r' ? LINE_END_CR : is_tchar(c) ? LINE_NAME : LINE_BAD;
  case LINE_NAME:
    return c == ':' ? LINE_VALUE : is_tchar(c) ? LINE_NAME : LINE_BAD;
  case LINE_VALUE:
    return c == '\r' ? LINE_VALUE_CR : c == '\n' ? LINE_BAD : LINE_VALUE;
  case LINE_END_CR:
    return c == '\n' ? LINE_DONE : LINE_BAD;
  default:
    return LINE_BAD; /* nothing of the head follows its end */
  }
}

/* How many bytes from buf on leave the state as it is (line_next), for the states most bytes
   of a head are read in: one test a byte instead of the whole state machine. */
static size_t same_state_run(uint8_t state, bool request, const char *buf, size_t len) {
  size_t i = 0;
  switch (state) {
  case LINE_START:
    while (i < len && buf[i] != '\r' && buf[i] != '\n' && (buf[i] != ' ' || !request))
      i++;
    break;
  case LINE_NAME:
    while (i < len && is_tchar((unsigned char)buf[i]))
      i++;
    break;
  case LINE_VALUE:
    while (i < len && buf[i] != '\r' && buf[i] != '\n')
      i++;
    break;
  default:
    break;
  }
  return i;
}

/* Returns 0, or the error (WSB_EHTTP, WSB_ETOO_MANY_HEADERS) the bytes earn. */
static int check_lines(struct wsb_http_head *h, const char *buf, size_t len) {
  bool request = h->parser.type == HTTP_REQUEST;
  for (size_t i = 0; i < len; i++) {
    i += same_state_run(h->lines, request, buf + i, len - i);
    if (i == len)
      break;
    enum line_state next = line_next((enum line_state)h->lines, request, (unsigned char)buf[i]);
    if (next == LINE_BAD)
      return WSB_EHTTP;
    if (next == LINE_NAME && h->lines == LINE_FIELD && h->nlines++ == WSB_HTTP_MAX_HEADERS)
      return WSB_ETOO_MANY_HEADERS;
    h->lines = (uint8_t)next;
  }
  return 0;
}

void wsb_http_head_init(struct wsb_http_head *h, bool response, size_t max_bytes) {
  /* All but the header table, whose 3 KiB a keep-alive connection would clear for every request
     and answer: a slot is cleared as the parser reaches it (on_header_field_complete), and
     nothing reads past nheaders. */
  memset(h, 0, offsetof(struct wsb_http_head, headers));
  memset(&h->nheaders, 0, sizeof(*h) - offsetof(struct wsb_http_head, nheaders));
  h->headers[0] = (struct wsb_header){{NULL, 0}, {NULL, 0}};
  llhttp_init(&h->parser, response ? HTTP_RESPONSE : HTTP_REQUEST, &http_settings);
  h->max_bytes = max_bytes;
  h->lines = LINE_LEADING;
  h->result = WSB_PARTIAL;
}

static ssize_t finish(struct wsb_http_head *h, ssize_t result) {
  h->result = result;
  return result;
}

static ssize_t complete(struct wsb_http_head *h, size_t used) {
  if (h->lines != LINE_DONE)
    return finish(h, WSB_EHTTP); /* llhttp saw an end the line syntax does not */
  h->seen += used;
  h->complete = true;
  h->status = (uint16_t)h->parser.status_code;
  h->method = h->parser.method;
  h->http_major = h->parser.http_major;
  h->http_minor = h->parser.http_minor;
  return finish(h, (ssize_t)used);
}

/*
 * llhttp runs first on at most what is left of max_bytes; then the line
 * check runs on the bytes llhttp got through, and an error it finds there
 * wins, being the earliest. Errors a callback raised are in h->result.
 */
ssize_t wsb_http_feed(struct wsb_http_head *h, const char *buf, size_t len) {
  if (h->result != WSB_PARTIAL)
    return h->result;
  size_t room = h->max_bytes - h->seen;
  size_t n = len < room ? len : room;
  llhttp_errno_t err = llhttp_execute(&h->parser, buf, n);
  size_t used = n;
  if (err != HPE_OK) {
    const char *pos = llhttp_get_error_pos(&h->parser);
    used = pos >= buf && pos <= buf + n ? (size_t)(pos - buf) : n;
  }
  int rc = check_lines(h, buf, used);
  if (rc < 0)
    return finish(h, rc);
  if (err == HPE_PAUSED)
    return complete(h, used);
  if (err != HPE_OK)
    return finish(h, h->result != WSB_PARTIAL ? h->result : WSB_EHTTP);
  h->seen += n;
  if (n < len)
    return finish(h, WSB_EHEAD_TOO_LARGE);
  return WSB_PARTIAL;
}

static char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Header names and tokens are ASCII: no locale, and a NUL byte is just a byte. */
bool wsb_mem_eq_nocase(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (ascii_lower(a[i]) != ascii_lower(b[i]))
      return false;
  }
  return true;
}

static bool slice_eq_slice(struct wsb_slice a, struct wsb_slice b) {
  /* The first byte before the call: names of one length mostly differ there. */
  return a.len == b.len && (a.len == 0 || ascii_lower(a.p[0]) == ascii_lower(b.p[0])) &&
         wsb_mem_eq_nocase(a.p, b.p, a.len);
}

const struct wsb_header *wsb_http_find(const struct wsb_http_head *h, const char *name,
                                       const struct wsb_header *after) {
  size_t i = after == NULL ? 0 : (size_t)(after - h->headers) + 1;
  struct wsb_slice want = {name, strlen(name)};
  for (; i < h->nheaders; i++) {
    if (slice_eq_slice(h->headers[i].name, want))
      return &h->headers[i];
  }
  return NULL;
}

static bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* Elements of a comma list (RFC 9110 5.6.1), whitespace trimmed, empty ones skipped. */
static bool list_has(struct wsb_slice list, struct wsb_slice token) {
  size_t i = 0;
  while (i < list.len) {
    size_t start = i;
    while (i < list.len && list.p[i] != ',')
      i++;
    size_t end = i++;
    while (start < end && is_ows(list.p[start]))
      start++;
    while (end > start && is_ows(list.p[end - 1]))
      end--;
    struct wsb_slice elem = {list.p + start, end - start};
    if (elem.len > 0 && slice_eq_slice(elem, token))
      return true;
  }
  return false;
}

bool wsb_token_list_has(struct wsb_slice list, const char *token) {
  struct wsb_slice t = {token, strlen(token)};
  return t.len > 0 && list_has(list, t);
}

bool wsb_http_has_token(const struct wsb_http_head *h, const char *name, const char *token) {
  for (const struct wsb_header *hdr = wsb_http_find(h, name, NULL); hdr != NULL;
       hdr = wsb_http_find(h, name, hdr)) {
    if (wsb_token_list_has(hdr->value, token))
      return true;
  }
  return false;
}

bool wsb_http_is_hop_by_hop(const struct wsb_http_head *h, const struct wsb_header *hdr) {
#define WSB_NAME(s) \
  { s, sizeof(s) - 1 }
  static const struct wsb_slice standard[] = {
      WSB_NAME("Connection"),
      WSB_NAME("Keep-Alive"),
      WSB_NAME("Proxy-Connection"),
      WSB_NAME("Proxy-Authenticate"),
      WSB_NAME("Proxy-Authorization"),
      WSB_NAME("TE"),
      WSB_NAME("Trailer"),
      WSB_NAME("Transfer-Encoding"),
      WSB_NAME("Upgrade"),
  };
#undef WSB_NAME
  for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++) {
    if (slice_eq_slice(hdr->name, standard[i]))
      return true;
  }
  if (hdr->name.len == 0)
    return false;
  for (const struct wsb_header *c = wsb_http_find(h, "Connection", NULL); c != NULL;
       c = wsb_http_find(h, "Connection", c)) {
    if (list_has(c->value, hdr->name))
      return true;
  }
  return false;
}

const char *wsb_http_reason(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 417:
    return "Expectation Failed";
  case 421:
    return "Misdirected Request";
  case 422:
    return "Unprocessable Content";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

size_t wsb_http_error_response(char *out, size_t cap, int status, const char *extra_headers) {
  const char *reason = wsb_http_reason(status);
  char body[64];
  int body_len = snprintf(body, sizeof(body), "%d %s\n", status, reason);
  if (body_len < 0 || (size_t)body_len >= sizeof(body))
    return 0;
  int n = snprintf(out, cap,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: text/plain\r\n"
                   "Content-Length: %d\r\n"
                   "Connection: close\r\n"
                   "%s"
                   "\r\n"
                   "%s",
                   status, reason, body_len, extra_headers != NULL ? extra_headers : "", body);
  if (n < 0 || (size_t)n >= cap)
    return 0;
  return (size_t)n;
}

struct wsb_slice wsb_slice_trim(struct wsb_slice s) {
  while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
    s.p++;
    s.len--;
  }
  while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
    s.len--;
  return s;
}

struct wsb_slice wsb_slice_next_item(struct wsb_slice *rest, char sep) {
  const char *end = memchr(rest->p, sep, rest->len);
  size_t len = end != NULL ? (size_t)(end - rest->p) : rest->len;
  struct wsb_slice item = {rest->p, len};
  size_t skip = end != NULL ? len + 1 : len;
  rest->p += skip;
  rest->len -= skip;
  return item;
}
