/* Unit tests for master/backends.c: the verbs over the desired state, the changes to single
   addresses on a table, and what a reload says it discards. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "run_suite.h"
#include "values.h"

/* A file's sections: "web" (a host name with several addresses), "e1" and "e2". */
static void from_file(struct wsb_backends *bs) {
  struct wsb_config cfg;
  wsb_config_defaults(&cfg);
  cfg.backends = calloc(3, sizeof(*cfg.backends));
  ck_assert_ptr_nonnull(cfg.backends);
  cfg.nbackends = 3;
  const char *const names[] = {"web", "e1", "e2"};
  const char *const urls[] = {"ws://svc.example:8080/p", "ws://10.0.0.1:9000",
                              "ws://10.0.0.2:9000"};
  for (int i = 0; i < 3; i++) {
    struct wsb_backend_config *b = &cfg.backends[i];
    snprintf(b->name, sizeof(b->name), "%s", names[i]);
    snprintf(b->url_text, sizeof(b->url_text), "%s", urls[i]);
    ck_assert_int_eq(wsb_parse_url(urls[i], &b->url), 0);
    b->weight = 1;
    b->enabled = true;
  }
  ck_assert_int_eq(wsb_backends_from_config(bs, &cfg), 0);
  ck_assert_ptr_null(cfg.backends); /* taken: no one reads a list the API changes */
  ck_assert_uint_eq(cfg.nbackends, 0);
  wsb_config_free(&cfg);
}

/* A table with web's three addresses and e1, e2, as a build from the sections would make. */
static struct wsb_shm_table *table_of(const struct wsb_backends *bs) {
  struct wsb_shm_table *t = calloc(1, sizeof(*t));
  ck_assert_ptr_nonnull(t);
  const char *const names[] = {"web#10.1.0.1", "web#10.1.0.2", "web#10.1.0.3", "e1", "e2"};
  for (uint32_t s = 0; s < 5; s++) {
    char sec[WSB_NAME_MAX];
    snprintf(sec, sizeof(sec), "%.*s", (int)strcspn(names[s], "#"), names[s]);
    const struct wsb_backend_config *b = wsb_backends_find(bs, sec);
    if (b == NULL)
      continue;
    snprintf(t->backends[s].name, sizeof(t->backends[s].name), "%s", names[s]);
    t->backends[s].in_use = true;
    t->backends[s].weight = b->weight;
    t->backends[s].enabled = b->enabled;
    t->nslots = s + 1;
  }
  return t;
}

START_TEST(test_add_and_remove) {
  struct wsb_backends bs;
  from_file(&bs);
  struct wsb_backend_config b = {.name = "x", .weight = 2, .enabled = true};
  ck_assert_int_eq(wsb_backends_add(&bs, &b), 0);
  ck_assert_uint_eq(bs.n, 4);
  ck_assert_uint_eq(wsb_backends_find(&bs, "x")->weight, 2);
  ck_assert_int_eq(wsb_backends_add(&bs, &b), -EEXIST);
  struct wsb_backend_config bad = {.name = "web#10.1.0.9", .weight = 1};
  ck_assert_int_eq(wsb_backends_add(&bs, &bad), -EINVAL); /* '#' is for addresses */
  ck_assert_int_eq(wsb_backends_remove(&bs, "nope"), -ENOENT);
  ck_assert_int_eq(wsb_backends_remove(&bs, "web#10.1.0.1"), -EPERM);
  ck_assert_int_eq(wsb_backends_remove(&bs, "e1"), 0);
  ck_assert_ptr_null(wsb_backends_find(&bs, "e1"));
  ck_assert_str_eq(bs.sections[1].name, "e2"); /* the others keep their order */
  ck_assert_str_eq(bs.sections[2].name, "x");
  ck_assert_int_eq(wsb_backends_remove(&bs, "e1"), -ENOENT);
  ck_assert_uint_eq(bs.nfile, 3); /* the file's word is kept for the next reload */
  wsb_backends_free(&bs);
}
END_TEST

START_TEST(test_weight_and_enabled) {
  struct wsb_backends bs;
  from_file(&bs);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "e1", 0), -ERANGE);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "e1", 1001), -ERANGE);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "nope", 5), -ENOENT);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "e1", 7), 0);
  ck_assert_uint_eq(wsb_backends_find(&bs, "e1")->weight, 7);
  ck_assert_int_eq(wsb_backends_disable(&bs, "e2"), 0);
  ck_assert(!wsb_backends_find(&bs, "e2")->enabled);
  ck_assert_int_eq(wsb_backends_enable(&bs, "e2"), 0);
  ck_assert(wsb_backends_find(&bs, "e2")->enabled);
  ck_assert(!wsb_backends_draining(&bs, "e2"));
  ck_assert_int_eq(wsb_backends_drain(&bs, "e2"), 0); /* a drain leaves it disabled */
  ck_assert(!wsb_backends_find(&bs, "e2")->enabled);
  ck_assert(wsb_backends_draining(&bs, "e2"));
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "e2", 3), 0); /* a weight leaves the drain */
  ck_assert(wsb_backends_draining(&bs, "e2"));
  ck_assert_int_eq(wsb_backends_disable(&bs, "e2"), 0); /* a plain disable ends it */
  ck_assert(!wsb_backends_draining(&bs, "e2"));
  ck_assert_int_eq(wsb_backends_drain(&bs, "e2"), 0);
  ck_assert_int_eq(wsb_backends_enable(&bs, "e2"), 0);
  ck_assert(!wsb_backends_draining(&bs, "e2"));
  ck_assert(!wsb_backends_draining(&bs, "nope"));
  ck_assert_int_eq(wsb_backends_drain(&bs, "nope"), -ENOENT);
  ck_assert_uint_eq(bs.noverrides, 0);
  wsb_backends_free(&bs);
}
END_TEST

/* A change to one address stays off its section and reaches only that address's backend. */
START_TEST(test_address_of_a_section) {
  struct wsb_backends bs;
  from_file(&bs);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "nope#10.1.0.1", 5), -ENOENT);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "web#10.1.0.2", 5), 0);
  ck_assert_int_eq(wsb_backends_drain(&bs, "web#10.1.0.3"), 0);
  ck_assert_int_eq(wsb_backends_disable(&bs, "web#10.1.0.2"), 0); /* the same address: merged */
  ck_assert_uint_eq(bs.noverrides, 2);
  ck_assert(wsb_backends_draining(&bs, "web#10.1.0.3"));
  ck_assert(!wsb_backends_draining(&bs, "web#10.1.0.2")); /* disabled, not drained */
  ck_assert(!wsb_backends_draining(&bs, "web#10.1.0.1") && !wsb_backends_draining(&bs, "web"));
  ck_assert_uint_eq(wsb_backends_find(&bs, "web")->weight, 1);
  ck_assert(wsb_backends_find(&bs, "web")->enabled);
  struct wsb_shm_table *t = table_of(&bs);
  wsb_backends_apply(&bs, t);
  ck_assert_uint_eq(t->backends[0].weight, 1);
  ck_assert(t->backends[0].enabled);
  ck_assert_uint_eq(t->backends[1].weight, 5);
  ck_assert(!t->backends[1].enabled);
  ck_assert_uint_eq(t->backends[2].weight, 1);
  ck_assert(!t->backends[2].enabled);
  /* An address gone from the next answer: its change goes, a new one of its name starts from
     its section. */
  t->backends[2].in_use = false;
  wsb_backends_apply(&bs, t);
  ck_assert_uint_eq(bs.noverrides, 1);
  ck_assert_str_eq(bs.overrides[0].name, "web#10.1.0.2");
  /* The section's word is the last: its change forgets the one to its address. */
  ck_assert_int_eq(wsb_backends_enable(&bs, "web"), 0);
  ck_assert_uint_eq(bs.noverrides, 0);
  ck_assert_int_eq(wsb_backends_drain(&bs, "web"), 0); /* a section's drain is its addresses' */
  ck_assert(wsb_backends_draining(&bs, "web#10.1.0.1"));
  ck_assert_int_eq(wsb_backends_enable(&bs, "web#10.1.0.1"), 0); /* until one is enabled */
  ck_assert(!wsb_backends_draining(&bs, "web#10.1.0.1"));
  ck_assert(wsb_backends_draining(&bs, "web#10.1.0.2"));
  ck_assert_int_eq(wsb_backends_enable(&bs, "web"), 0);
  ck_assert_uint_eq(bs.noverrides, 0);
  ck_assert_int_eq(wsb_backends_set_weight(&bs, "web#10.1.0.1", 3), 0);
  ck_assert_int_eq(wsb_backends_remove(&bs, "web"), 0); /* and its removal too */
  ck_assert_uint_eq(bs.noverrides, 0);
  free(t);
  wsb_backends_free(&bs);
}
END_TEST

/* A change is made on a copy: the running state is untouched until the copy is swapped in. */
START_TEST(test_copy_and_swap) {
  struct wsb_backends run, next;
  from_file(&run);
  ck_assert_int_eq(wsb_backends_disable(&run, "web#10.1.0.1"), 0);
  ck_assert_int_eq(wsb_backends_copy(&next, &run), 0);
  ck_assert_int_eq(wsb_backends_remove(&next, "web"), 0);
  ck_assert_int_eq(wsb_backends_set_weight(&next, "e1", 9), 0);
  ck_assert_uint_eq(run.n, 3);
  ck_assert_uint_eq(run.noverrides, 1);
  ck_assert_uint_eq(wsb_backends_find(&run, "e1")->weight, 1);
  wsb_backends_swap(&run, &next);
  ck_assert_uint_eq(run.n, 2);
  ck_assert_uint_eq(wsb_backends_find(&run, "e1")->weight, 9);
  ck_assert_uint_eq(next.n, 3);
  wsb_backends_free(&run);
  wsb_backends_free(&next);
}
END_TEST

/* A reload starts from the file: every runtime change goes, each said once. */
START_TEST(test_reload_discards) {
  struct wsb_backends run, next;
  from_file(&run);
  struct wsb_backend_config x = {.name = "x", .weight = 1, .enabled = true};
  ck_assert_int_eq(wsb_backends_add(&run, &x), 0);
  ck_assert_int_eq(wsb_backends_disable(&run, "e1"), 0);
  ck_assert_int_eq(wsb_backends_set_weight(&run, "e1", 4), 0);
  ck_assert_int_eq(wsb_backends_remove(&run, "e2"), 0);
  ck_assert_int_eq(wsb_backends_disable(&run, "web#10.1.0.2"), 0);
  ck_assert_int_eq(wsb_backends_set_weight(&run, "web#10.1.0.3", 8), 0);
  from_file(&next); /* the same file again */
  ck_assert_uint_eq(next.noverrides, 0);
  struct wsb_shm_table *t = table_of(&next);
  t->backends[2].in_use = false; /* web#10.1.0.3 is gone with the new answer: nothing to say */
  struct wsb_config_errors out = {0};
  wsb_backends_discarded(&run, &next, t, &out);
  const char *const want[] = {
      "backend e1: enabled (disabled through the API)",
      "backend e1: weight 1 (4 through the API)",
      "backend x: removed (added through the API)",
      "backend e2: back (deleted through the API)",
      "backend web#10.1.0.2: enabled (disabled through the API)",
  };
  ck_assert_uint_eq(out.n, sizeof(want) / sizeof(want[0]));
  for (size_t i = 0; i < out.n; i++)
    ck_assert_str_eq(out.lines[i], want[i]);
  wsb_config_errors_free(&out);
  /* A change the new file makes too is not the API's to lose. */
  struct wsb_backends file2;
  ck_assert_int_eq(wsb_backends_copy(&file2, &next), 0);
  file2.sections[1].weight = 4; /* as if the file now said weight 4 and enabled = off */
  file2.sections[1].enabled = false;
  wsb_backends_discarded(&run, &file2, t, &out);
  ck_assert_uint_eq(out.n, 3);
  ck_assert_str_eq(out.lines[0], "backend x: removed (added through the API)");
  wsb_config_errors_free(&out);
  free(t);
  wsb_backends_free(&file2);
  wsb_backends_free(&run);
  wsb_backends_free(&next);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("backends");
  TCase *tc = tcase_create("verbs");
  tcase_add_test(tc, test_add_and_remove);
  tcase_add_test(tc, test_weight_and_enabled);
  tcase_add_test(tc, test_address_of_a_section);
  tcase_add_test(tc, test_copy_and_swap);
  tcase_add_test(tc, test_reload_discards);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return wsb_run_suite(suite());
}
