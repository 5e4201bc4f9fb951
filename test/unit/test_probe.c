/* Unit tests for common/probe.c: HTTP answers read whole, health verdicts, load reports. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "probe.h"
#include "run_suite.h"

static struct wsb_probe_response resp;

/* Parses text copied into an allocation of exactly its length, so ASan sees any over-read. */
static int parse(const char *text, bool eof) {
  size_t len = strlen(text);
  char *copy = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(copy);
  memcpy(copy, text, len);
  int r = wsb_probe_parse(copy, len, eof, &resp);
  free(copy);
  return r;
}

static const char *ok_len = "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"status\":\"200\"}";

START_TEST(content_length) {
  ck_assert_int_eq(parse(ok_len, false), 0);
  ck_assert_uint_eq(resp.status, 200);
  ck_assert_uint_eq(resp.body_len, 16);
  /* Every prefix is partial, whatever the split; cut short by eof it is broken. */
  size_t len = strlen(ok_len);
  for (size_t n = 0; n < len; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, ok_len, n);
    ck_assert_int_eq(wsb_probe_parse(copy, n, false, &resp), WSB_PARTIAL);
    ck_assert_int_eq(wsb_probe_parse(copy, n, true, &resp), WSB_EHTTP);
    free(copy);
  }
}
END_TEST

START_TEST(until_eof_and_chunked) {
  ck_assert_int_eq(parse("HTTP/1.0 503 Busy\r\n\r\n{\"status\":503}", false), WSB_PARTIAL);
  ck_assert_int_eq(parse("HTTP/1.0 503 Busy\r\n\r\n{\"status\":503}", true), 0);
  ck_assert_uint_eq(resp.status, 503);
  ck_assert_uint_eq(resp.body_len, 14);
  ck_assert_int_eq(memcmp(resp.body, "{\"status\":503}", 14), 0);
  ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\n{\"con\r\n10\r\nnections\":42}   \r\n0\r\n\r\n",
                         false),
                   0);
  ck_assert_uint_eq(resp.body_len, 5 + 16);
  ck_assert_int_eq(memcmp(resp.body, "{\"connections\":42}   ", 21), 0);
  /* An interim 100 is skipped; a 204 has no body. */
  ck_assert_int_eq(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false), 0);
  ck_assert_uint_eq(resp.status, 204);
  ck_assert_uint_eq(resp.body_len, 0);
}
END_TEST

START_TEST(broken) {
  ck_assert_int_eq(parse("SSH-2.0-OpenSSH\r\n", false), WSB_EHTTP);
  ck_assert_int_eq(parse("", true), WSB_EHTTP);
  ck_assert_int_eq(parse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false), WSB_EHTTP);
  /* Too long to be an answer a probe waits for. */
  size_t n = WSB_PROBE_MAX_RESPONSE;
  char *big = malloc(n + 1);
  int head = snprintf(big, n, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
  memset(big + head, 'x', n + 1 - (size_t)head);
  ck_assert_int_eq(wsb_probe_parse(big, n, false, &resp), WSB_ETOO_BIG);
  ck_assert_int_eq(wsb_probe_parse(big, n + 1, false, &resp), WSB_ETOO_BIG);
  free(big);
}
END_TEST

/* The health verdict of a complete response with this status and body. */
static enum wsb_probe_result health(int status, const char *body, char *why) {
  resp.status = (uint16_t)status;
  resp.body_len = strlen(body);
  memcpy(resp.body, body, resp.body_len);
  return wsb_probe_health(&resp, why, 64);
}

START_TEST(health_verdicts) {
  char why[64] = "";
  ck_assert_int_eq(health(200, "{\"status\":\"200\"}", why), WSB_PROBE_OK);
  ck_assert_int_eq(health(204, "", why), WSB_PROBE_OK);
  ck_assert_int_eq(health(200, "OK", why), WSB_PROBE_OK);
  ck_assert_int_eq(health(200, "[500]", why), WSB_PROBE_OK); /* not an object: no status */
  ck_assert_int_eq(health(200, "{\"ok\":true}", why), WSB_PROBE_OK);
  ck_assert_int_eq(health(200, "{\"status\":299}", why), WSB_PROBE_OK);
  ck_assert_int_eq(health(200, "{\"status\":\"500\"}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_str_eq(why, "JSON status \"500\"");
  ck_assert_int_eq(health(200, "{\"status\":500}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_str_eq(why, "JSON status 500");
  ck_assert_int_eq(health(200, "{\"status\":\"UP\"}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(health(200, "{\"status\":200.0}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(health(200, "{\"status\":null}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(health(200, "{\"status\":\"2000\"}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(health(199, "", why), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(health(503, "{\"status\":\"200\"}", why), WSB_PROBE_BAD_STATUS);
  ck_assert_str_eq(why, "HTTP 503");
  ck_assert_int_eq(health(301, "", NULL), WSB_PROBE_BAD_STATUS);
}
END_TEST

static enum wsb_probe_result load(int status, const char *body, uint64_t *n) {
  resp.status = (uint16_t)status;
  resp.body_len = strlen(body);
  memcpy(resp.body, body, resp.body_len);
  return wsb_probe_load(&resp, n);
}

START_TEST(load_reports) {
  uint64_t n = 7;
  ck_assert_int_eq(load(200, "{\"agentsConnections\":12}", &n), WSB_PROBE_OK);
  ck_assert_uint_eq(n, 12);
  ck_assert_int_eq(load(200, "{\"connections\":0,\"other\":[1,2]}", &n), WSB_PROBE_OK);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(load(200, "{\"connections\":\"31\"}", &n), WSB_PROBE_OK);
  ck_assert_uint_eq(n, 31);
  /* agentsConnections wins when both are there. */
  ck_assert_int_eq(load(200, "{\"connections\":5,\"agentsConnections\":6}", &n), WSB_PROBE_OK);
  ck_assert_uint_eq(n, 6);
  ck_assert_int_eq(load(500, "{\"connections\":5}", &n), WSB_PROBE_BAD_STATUS);
  ck_assert_int_eq(load(200, "", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"connections\":-1}", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"connections\":1.5}", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"connections\":\"x\"}", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"agentsConnections\":null,\"connections\":3}", &n),
                   WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"sessions\":3}", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"connections\":3", &n), WSB_PROBE_BAD_BODY);
  ck_assert_int_eq(load(200, "{\"connections\":3,\"connections\":4}", &n), WSB_PROBE_BAD_BODY);
  ck_assert_str_eq(wsb_probe_result_name(WSB_PROBE_BAD_BODY), "bad_body");
  ck_assert_str_eq(wsb_probe_result_name(WSB_PROBE_OK), "ok");
}
END_TEST

int main(void) {
  Suite *s = suite_create("probe");
  TCase *tc = tcase_create("probe");
  tcase_add_test(tc, content_length);
  tcase_add_test(tc, until_eof_and_chunked);
  tcase_add_test(tc, broken);
  tcase_add_test(tc, health_verdicts);
  tcase_add_test(tc, load_reports);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
