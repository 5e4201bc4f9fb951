/* Health checks and load reports of backends: their results, the answers' parsing and verdicts. */
#ifndef WSB_PROBE_H
#define WSB_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A probe's answer is read whole into this many bytes, head and body together. */
#define WSB_PROBE_MAX_RESPONSE 8192

/*
 * How a health check or a load-report poll ended, in the order of the labels of
 * wsbal_backend_health_checks_total{result} and wsbal_backend_load_reports_total{result}.
 * Health checks never end in bad_body (a body that is not JSON leaves the HTTP status to decide).
 */
#define WSB_PROBE_RESULTS(XX)  \
  XX(OK, "ok")                 \
  XX(REFUSED, "refused")       \
  XX(TIMEOUT, "timeout")       \
  XX(ERROR, "error")           \
  XX(BAD_STATUS, "bad_status") \
  XX(BAD_BODY, "bad_body")

enum wsb_probe_result {
#define WSB_XX(name, label) WSB_PROBE_##name,
  WSB_PROBE_RESULTS(WSB_XX)
#undef WSB_XX
      WSB_PROBE_RESULT_COUNT
};

/* The label of a result ("ok", "refused", ...). */
const char *wsb_probe_result_name(enum wsb_probe_result r);

/* A complete HTTP response: its status and its body, decoded when it came chunked. */
struct wsb_probe_response {
  uint16_t status;
  size_t body_len;
  char body[WSB_PROBE_MAX_RESPONSE];
};

/*
 * Parses the bytes received so far of an answer to a GET (buf[0..len)); eof says the peer
 * has closed. Returns 0 with r filled once the response is complete (Content-Length, chunked,
 * or up to eof when it has neither), WSB_PARTIAL while more is needed, WSB_EHTTP when the
 * bytes are not one HTTP/1.x response (or it ends early), WSB_ETOO_BIG past
 * WSB_PROBE_MAX_RESPONSE bytes. Pure: parses buf from its start at every call.
 */
int wsb_probe_parse(const char *buf, size_t len, bool eof, struct wsb_probe_response *r);

/*
 * The health verdict of a complete response: WSB_PROBE_OK for a 2xx whose body, when it is a
 * JSON object with a "status" member, holds a 2xx status there too (a number, or a string of
 * digits as wsbal-echo sends: {"status":"200"}); else WSB_PROBE_BAD_STATUS. why (may be NULL)
 * gets a short reason such as "HTTP 503" or "JSON status \"500\"".
 */
enum wsb_probe_result wsb_probe_health(const struct wsb_probe_response *r, char *why,
                                       size_t whylen);

/*
 * The connection count a backend reports: a 2xx whose body is a JSON object with a
 * non-negative integer "agentsConnections" or, when that is absent, "connections" (a number,
 * or a string of digits). Returns WSB_PROBE_OK with *count set, WSB_PROBE_BAD_STATUS for
 * another HTTP status, or WSB_PROBE_BAD_BODY.
 */
enum wsb_probe_result wsb_probe_load(const struct wsb_probe_response *r, uint64_t *count);

#endif
