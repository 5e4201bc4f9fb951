/* Unit tests for shm/table.c: every worker setting reaches the segment; a section's addresses
   become backends, and a new answer keeps, adds and removes them by name like a reload, holding a
   gone address's slot while it has sessions; the backends' TLS context from the settings. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "config_keys.h"
#include "run_suite.h"
#include "shm.h"

static void add(struct wsb_addrs *s, const char *text) {
  union wsb_addr a = {0};
  if (strchr(text, ':') != NULL) {
    a.in6.sin6_family = AF_INET6;
    a.in6.sin6_port = htons(8080);
    ck_assert_int_eq(inet_pton(AF_INET6, text, &a.in6.sin6_addr), 1);
  } else {
    a.in.sin_family = AF_INET;
    a.in.sin_port = htons(8080);
    ck_assert_int_eq(inet_pton(AF_INET, text, &a.in.sin_addr), 1);
  }
  ck_assert_int_eq(wsb_addrs_add(s, &a.sa, wsb_addr_len(&a)), 1);
}

/* A configuration of sections "web" (weight 5, backup) and "lit". */
static void config(struct wsb_config *cfg) {
  wsb_config_defaults(cfg);
  cfg->backends = calloc(2, sizeof(*cfg->backends));
  ck_assert_ptr_nonnull(cfg->backends);
  cfg->nbackends = 2;
  const char *const names[] = {"web", "lit"};
  const char *const urls[] = {"ws://svc.example:8080/p", "ws://10.9.9.9:8080"};
  for (int i = 0; i < 2; i++) {
    struct wsb_backend_config *b = &cfg->backends[i];
    strcpy(b->name, names[i]);
    ck_assert_int_eq(wsb_parse_url(urls[i], &b->url), 0);
    b->weight = i == 0 ? 5 : 1;
    b->enabled = true;
    b->backup = i == 0;
  }
}

static int slot_of(const struct wsb_shm_table *t, const char *name) {
  for (uint32_t s = 0; s < t->nslots; s++)
    if (t->backends[s].in_use && strcmp(t->backends[s].name, name) == 0)
      return (int)s;
  return -1;
}

static unsigned in_use(const struct wsb_shm_table *t) {
  unsigned n = 0;
  for (uint32_t s = 0; s < t->nslots; s++)
    n += t->backends[s].in_use;
  return n;
}

START_TEST(test_expand_and_follow) {
  struct wsb_config cfg;
  config(&cfg);
  struct wsb_shm *shm = wsb_shm_create(1);
  ck_assert_ptr_nonnull(shm);
  struct wsb_shm_table *t1 = malloc(sizeof(*t1)), *t2 = malloc(sizeof(*t2)),
                       *t3 = malloc(sizeof(*t3));
  ck_assert(t1 && t2 && t3);
  struct wsb_addrs addrs[2] = {0};
  add(&addrs[0], "10.0.0.2");
  add(&addrs[0], "10.0.0.1");
  add(&addrs[0], "fd00::1");
  add(&addrs[1], "10.9.9.9");
  char err[256] = "";
  ck_assert_int_eq(wsb_shm_table_build(t1, &cfg, addrs, NULL, NULL, err, sizeof(err)), 0);
  ck_assert_uint_eq(in_use(t1), 4);
  int a1 = slot_of(t1, "web#10.0.0.1"), a2 = slot_of(t1, "web#10.0.0.2"),
      a6 = slot_of(t1, "web#fd00::1"), lit = slot_of(t1, "lit");
  ck_assert(a1 >= 0 && a2 >= 0 && a6 >= 0 && lit >= 0);
  const struct wsb_shm_backend *b = &t1->backends[a6];
  ck_assert_uint_eq(b->weight, 5); /* the section's settings, on every address */
  ck_assert(b->backup && b->enabled);
  ck_assert_str_eq(b->url.path, "/p");
  ck_assert_int_eq(b->addr.ss_family, AF_INET6);
  ck_assert_uint_eq(b->addr_len, sizeof(struct sockaddr_in6));
  ck_assert_uint_eq(ntohs(((const struct sockaddr_in6 *)&b->addr)->sin6_port), 8080);

  /* fd00::1 goes while a session lives on it, 10.0.0.3 comes. */
  wsb_shm_slot_used(shm, 0);
  wsb_shm_add(&shm->workers[0].sessions[a6], 1);
  struct wsb_addrs next[2] = {addrs[0], addrs[1]};
  next[0].n = 0;
  add(&next[0], "10.0.0.1");
  add(&next[0], "10.0.0.2");
  add(&next[0], "10.0.0.3");
  ck_assert_int_eq(wsb_shm_table_build(t2, &cfg, next, t1, shm, err, sizeof(err)), 0);
  ck_assert_uint_eq(in_use(t2), 4);
  ck_assert_int_eq(slot_of(t2, "web#10.0.0.1"), a1); /* kept addresses keep their slots */
  ck_assert_int_eq(slot_of(t2, "web#10.0.0.2"), a2);
  ck_assert_int_eq(slot_of(t2, "lit"), lit);
  ck_assert_int_eq(slot_of(t2, "web#fd00::1"), -1);
  int a3 = slot_of(t2, "web#10.0.0.3");
  ck_assert(a3 >= 0 && a3 != a6); /* the gone address's slot is held for its session */

  /* Its session ends; down to one address: the backend is named after its section again. */
  wsb_shm_sub(&shm->workers[0].sessions[a6], 1);
  next[0].n = 0;
  add(&next[0], "10.0.0.3");
  ck_assert_int_eq(wsb_shm_table_build(t3, &cfg, next, t2, shm, err, sizeof(err)), 0);
  ck_assert_uint_eq(in_use(t3), 2);
  ck_assert_int_ge(slot_of(t3, "web"), 0);
  ck_assert_int_eq(slot_of(t3, "web#10.0.0.3"), -1);

  /* No address is an error naming the backend; more than 256 backends in all too. */
  next[0].n = 0;
  ck_assert_int_lt(wsb_shm_table_build(t3, &cfg, next, t2, shm, err, sizeof(err)), 0);
  ck_assert_ptr_nonnull(strstr(err, "backend web"));
  struct wsb_addrs *many = calloc(2, sizeof(*many));
  ck_assert_ptr_nonnull(many);
  for (int i = 0; i < WSB_ADDRS_MAX; i++) {
    char text[32];
    snprintf(text, sizeof(text), "10.1.0.%d", i);
    add(&many[0], text);
  }
  many[1] = addrs[1];
  ck_assert_int_eq(wsb_shm_table_build(t3, &cfg, many, NULL, NULL, err, sizeof(err)), 0);
  ck_assert_uint_eq(in_use(t3), WSB_ADDRS_MAX + 1);
  free(many);
  free(t1);
  free(t2);
  free(t3);
  wsb_shm_destroy(shm);
  wsb_config_free(&cfg);
}
END_TEST

/* A list as the segment holds it: its items joined with commas. */
static const char *joined(const struct wsb_strlist *list, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < list->n; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? "," : "", list->items[i]);
  ck_assert_uint_lt(used, cap);
  return out;
}

static enum cfg_section section_named(const char *name) {
  enum cfg_section sec = CFG_SEC_WSBAL;
  while (sec < CFG_SEC_BACKEND && strcmp(wsb__cfg_section_name(sec), name) != 0)
    sec++;
  return sec;
}

/* Whether the segment's field of one setting holds the configuration's value. */
#define SAME_VAL(s, cfg, to, from)                \
  ({                                              \
    typeof((s)->to) want_ = (cfg)->from;          \
    memcmp(&want_, &(s)->to, sizeof(want_)) == 0; \
  })
#define SAME_STR(s, cfg, to, from)  (strcmp((s)->to, (cfg)->from ? (cfg)->from : "") == 0)
#define SAME_LIST(s, cfg, to, from) (strcmp((s)->to, joined(&(cfg)->from, buf, sizeof(buf))) == 0)

/*
 * Each setting of WSB_WORKER_SETTINGS, set in full.ini to something other than its default,
 * reaches the segment as the configuration holds it: a setting added to the list without its
 * key in the parser, a value in full.ini or its copy fails here.
 */
START_TEST(test_every_setting_reaches_the_segment) {
  struct wsb_config full, def;
  struct wsb_config_errors errs = {0};
  ck_assert_int_eq(wsb_config_load(&full, WSB_TEST_DATA_DIR "/full.ini", NULL, &errs), 0);
  wsb_config_defaults(&def);
  struct wsb_addrs addrs[2] = {0};
  add(&addrs[0], "10.0.0.1");
  add(&addrs[1], "10.0.0.2");
  struct wsb_shm_table *t = calloc(1, sizeof(*t)), *d = calloc(1, sizeof(*d));
  ck_assert(t && d);
  char err[256] = "", buf[WSB_SHM_LIST_MAX];
  ck_assert_int_eq(wsb_shm_table_build(t, &full, addrs, NULL, NULL, err, sizeof(err)), 0);
  ck_assert_int_eq(wsb_shm_table_build(d, &def, NULL, NULL, NULL, err, sizeof(err)), 0);
  const struct wsb_shm_settings *s = &t->settings, *ds = &d->settings;
  unsigned n = 0;
#define CHECK(copy, type, section, prefix, key, suffix)                                     \
  do {                                                                                      \
    const char *name_ = #prefix #key #suffix;                                               \
    ck_assert_msg(wsb__cfg_key_find(section_named(#section), #key) >= 0, "%s: no such key", \
                  name_);                                                                   \
    ck_assert_msg(memcmp(&s->prefix##key##suffix, &ds->prefix##key##suffix,                 \
                         sizeof(s->prefix##key##suffix)) != 0,                              \
                  "%s: the same as with the defaults", name_);                              \
    ck_assert_msg(SAME_##copy(s, &full, prefix##key##suffix, section.key##suffix),          \
                  "%s: not the configuration's value", name_);                              \
    n++;                                                                                    \
  } while (0);
  WSB_WORKER_SETTINGS(CHECK)
#undef CHECK
  ck_assert_uint_ge(n, 36);
  ck_assert_uint_eq(s->listen_ping_interval_ms, 15000);
  ck_assert_uint_eq(s->upstream_ping_interval_ms, 20000);
  ck_assert_str_eq(s->tls_cert, "/etc/wsbal/a.pem,/etc/wsbal/b.pem");
  ck_assert_str_eq(s->hash_key_name, "X-User-Id");
  ck_assert(wsb_close_codes_has(&s->failover_codes, 4000));
  ck_assert(!wsb_close_codes_has(&s->failover_codes, 1006));
  ck_assert(wsb_close_codes_has(&ds->failover_codes, 1006));
  free(t);
  free(d);
  wsb_config_free(&full);
  wsb_config_free(&def);
}
END_TEST

/* A string or a list longer than its place in the segment is refused, naming its key. */
START_TEST(test_too_long_setting_refused) {
  struct wsb_config cfg;
  wsb_config_defaults(&cfg);
  struct wsb_shm_table *t = calloc(1, sizeof(*t));
  ck_assert_ptr_nonnull(t);
  char err[256] = "", text[2 * WSB_SHM_LIST_MAX] = "";
  memset(text, 'a', WSB_SHM_HEADER_NAME_MAX);
  free(cfg.upstream.reconnect_header);
  cfg.upstream.reconnect_header = strdup(text);
  ck_assert_int_eq(wsb_shm_table_build(t, &cfg, NULL, NULL, NULL, err, sizeof(err)), -ENAMETOOLONG);
  ck_assert_str_eq(err, "[upstream] reconnect_header: longer than 127 bytes");
  text[WSB_SHM_HEADER_NAME_MAX - 1] = '\0';
  strcpy(cfg.upstream.reconnect_header, text);
  ck_assert_int_eq(wsb_shm_table_build(t, &cfg, NULL, NULL, NULL, err, sizeof(err)), 0);
  ck_assert_str_eq(t->settings.reconnect_header, text);
  for (size_t used = 0; used < WSB_SHM_LIST_MAX;)
    used += (size_t)snprintf(text + used, sizeof(text) - used, "https://h%zu.example,", used);
  wsb__cfg_strlist_split(text, &cfg.listen.allowed_origins);
  ck_assert_int_eq(wsb_shm_table_build(t, &cfg, NULL, NULL, NULL, err, sizeof(err)), -ENAMETOOLONG);
  ck_assert_str_eq(err, "[listen] allowed_origins: list longer than 1023 bytes");
  free(t);
  wsb_config_free(&cfg);
}
END_TEST

/* A configuration of literal-address sections with these names, and their one address each. */
static void named_config(struct wsb_config *cfg, struct wsb_addrs *addrs, const char *const *names,
                         size_t n) {
  wsb_config_defaults(cfg);
  cfg->backends = calloc(n, sizeof(*cfg->backends));
  ck_assert_ptr_nonnull(cfg->backends);
  cfg->nbackends = n;
  for (size_t i = 0; i < n; i++) {
    struct wsb_backend_config *b = &cfg->backends[i];
    char addr[32];
    snprintf(b->name, sizeof(b->name), "%s", names[i]);
    ck_assert_int_eq(wsb_parse_url("ws://10.0.0.1:8080", &b->url), 0);
    b->weight = 1;
    b->enabled = true;
    memset(&addrs[i], 0, sizeof(addrs[i]));
    snprintf(addr, sizeof(addr), "10.0.0.%zu", i + 1);
    add(&addrs[i], addr);
  }
}

/* Builds t from the named sections over prev; the table must build. */
static void build(struct wsb_shm_table *t, const char *const *names, size_t n,
                  const struct wsb_shm_table *prev, const struct wsb_shm *shm) {
  struct wsb_config cfg;
  struct wsb_addrs addrs[8];
  ck_assert_uint_le(n, 8);
  named_config(&cfg, addrs, names, n);
  char err[256] = "";
  ck_assert_msg(wsb_shm_table_build(t, &cfg, addrs, prev, shm, err, sizeof(err)) == 0, "%s", err);
  wsb_config_free(&cfg);
}

static int retired_slot(const struct wsb_shm_table *t, const char *name) {
  for (uint32_t s = 0; s < t->nslots; s++)
    if (t->backends[s].retired && strcmp(t->backends[s].name, name) == 0)
      return (int)s;
  return -1;
}

/*
 * Issue 12 item 6: a removed backend's slot stays held while its sessions live, however many
 * generations ago it went (the previous table alone does not know it any more), so a backend
 * added later never inherits those sessions; a name coming back gets its sessions back.
 */
START_TEST(test_removed_slot_held_across_generations) {
  struct wsb_shm *shm = wsb_shm_create(2);
  ck_assert_ptr_nonnull(shm);
  struct wsb_shm_table *t[8];
  for (int i = 0; i < 8; i++)
    ck_assert_ptr_nonnull(t[i] = malloc(sizeof(*t[i])));
  static const char *const keep_old[] = {"keep", "old"}, *const keep[] = {"keep"},
                           *const keep_new[] = {"keep", "new"},
                           *const keep_new_other[] = {"keep", "new", "other"},
                           *const keep_new_old[] = {"keep", "new", "old"};
  build(t[0], keep_old, 2, NULL, NULL);
  int old = slot_of(t[0], "old");
  ck_assert_int_ge(old, 0);
  /* Three sessions on "old", counted by two workers. */
  wsb_shm_slot_used(shm, 1);
  wsb_shm_add(&shm->workers[0].sessions[old], 2);
  wsb_shm_add(&shm->workers[1].sessions[old], 1);

  build(t[1], keep, 1, t[0], shm); /* "old" removed: its slot held, its name kept */
  ck_assert_int_eq(slot_of(t[1], "old"), -1);
  ck_assert_int_eq(retired_slot(t[1], "old"), old);
  ck_assert(!t[1]->backends[old].enabled);
  build(t[2], keep, 1, t[1], shm); /* reloaded again: prev no longer has "old" in use */
  ck_assert_int_eq(retired_slot(t[2], "old"), old);
  build(t[3], keep, 1, t[2], shm);
  build(t[4], keep_new, 2, t[3], shm); /* a backend added now takes another slot */
  int added = slot_of(t[4], "new");
  ck_assert_int_ge(added, 0);
  ck_assert_int_ne(added, old);
  ck_assert_uint_eq(wsb_shm_backend_live(shm, (uint32_t)added), 0);
  ck_assert_int_eq(retired_slot(t[4], "old"), old);

  /* The name comes back while its sessions live: it gets its slot, and them, back. */
  build(t[5], keep_new_old, 3, t[4], shm);
  ck_assert_int_eq(slot_of(t[5], "old"), old);
  ck_assert_int_eq(retired_slot(t[5], "old"), -1);

  /* Removed again; its sessions end: the slot is free two generations on, not before. */
  build(t[6], keep_new, 2, t[5], shm);
  ck_assert_int_eq(retired_slot(t[6], "old"), old);
  wsb_shm_sub(&shm->workers[0].sessions[old], 2);
  wsb_shm_sub(&shm->workers[1].sessions[old], 1);
  build(t[7], keep_new, 2, t[6], shm);
  ck_assert_int_eq(retired_slot(t[7], "old"), -1);
  build(t[1], keep_new_other, 3, t[7], shm);
  ck_assert_int_eq(slot_of(t[1], "other"), old);
  for (int i = 0; i < 8; i++)
    free(t[i]);
  wsb_shm_destroy(shm);
}
END_TEST

/* A backend replaced by another in one reload: a worker that read the older table may be placing
   a session on the removed one at this moment, so its slot goes to the new one only when no other
   slot is free. */
START_TEST(test_just_removed_slot_given_last) {
  struct wsb_shm *shm = wsb_shm_create(1);
  ck_assert_ptr_nonnull(shm);
  struct wsb_shm_table *t1 = malloc(sizeof(*t1)), *t2 = malloc(sizeof(*t2));
  ck_assert(t1 && t2);
  static const char *const a[] = {"a"}, *const b[] = {"b"};
  build(t1, a, 1, NULL, NULL);
  build(t2, b, 1, t1, shm);
  ck_assert_int_ne(slot_of(t2, "b"), slot_of(t1, "a"));
  ck_assert_int_eq(retired_slot(t2, "a"), -1); /* no session: nothing held, nothing named */

  /* With every other slot taken, the just-removed slot is used rather than failing. */
  struct wsb_config cfg;
  struct wsb_addrs *addrs = calloc(WSB_SHM_MAX_BACKENDS, sizeof(*addrs));
  ck_assert_ptr_nonnull(addrs);
  wsb_config_defaults(&cfg);
  cfg.backends = calloc(WSB_SHM_MAX_BACKENDS, sizeof(*cfg.backends));
  ck_assert_ptr_nonnull(cfg.backends);
  cfg.nbackends = WSB_SHM_MAX_BACKENDS;
  for (int i = 0; i < WSB_SHM_MAX_BACKENDS; i++) {
    snprintf(cfg.backends[i].name, sizeof(cfg.backends[i].name), "n%d", i);
    ck_assert_int_eq(wsb_parse_url("ws://10.0.0.1:8080", &cfg.backends[i].url), 0);
    cfg.backends[i].weight = 1;
    add(&addrs[i], "10.0.0.1");
  }
  char err[256] = "";
  ck_assert_int_eq(wsb_shm_table_build(t1, &cfg, addrs, t2, shm, err, sizeof(err)), 0);
  ck_assert_uint_eq(in_use(t1), WSB_SHM_MAX_BACKENDS);
  free(addrs);
  wsb_config_free(&cfg);
  free(t1);
  free(t2);
  wsb_shm_destroy(shm);
}
END_TEST

/* An empty path in the settings is unset; each set one reaches the context (its error names it). */
/* Loads text as a configuration file; every backend at 10.0.0.(i + 1). */
static void load_text(struct wsb_config *cfg, const char *text, struct wsb_addrs *addrs) {
  char path[] = "/tmp/wsbal-table-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  struct wsb_config_errors errs = {0};
  int rc = wsb_config_load(cfg, path, NULL, &errs);
  unlink(path);
  ck_assert_msg(rc == 0, "%s", errs.n > 0 ? errs.lines[0] : "");
  for (size_t i = 0; i < cfg->nbackends; i++) {
    char addr[32];
    addrs[i] = (struct wsb_addrs){0};
    snprintf(addr, sizeof(addr), "10.0.0.%zu", i + 1);
    add(&addrs[i], addr);
  }
}

/*
 * Pools: "default" in slot 0, each pool's settings [upstream]'s with its keys over them, every
 * backend pointing at its pool's slot; a reload keeps a pool's slot by name, gives a just
 * removed pool's slot to a new one only when nothing else is free, and moves a backend to
 * another pool without moving its slot (its live count stays where it is).
 */
START_TEST(test_pools) {
  struct wsb_config cfg;
  struct wsb_addrs addrs[4];
  load_text(&cfg,
            "[upstream]\nconnect_timeout = 3s\n"
            "[pool:chat]\nalgorithm = hash\nconnect_timeout = 1s\n"
            "[backend:a]\nurl = ws://h:1\n"
            "[backend:c]\nurl = ws://h:2\npool = chat\n"
            "[backend:o]\nurl = ws://h:3\npool = ocpp\n",
            addrs);
  struct wsb_shm_table *t1 = calloc(1, sizeof(*t1)), *t2 = calloc(1, sizeof(*t2));
  ck_assert(t1 && t2);
  char err[256] = "";
  ck_assert_int_eq(wsb_shm_table_build(t1, &cfg, addrs, NULL, NULL, err, sizeof(err)), 0);
  ck_assert_uint_eq(t1->npools, 3);
  ck_assert_int_eq(wsb_shm_pool_find(t1, "default"), WSB_SHM_DEFAULT_POOL);
  int chat = wsb_shm_pool_find(t1, "chat"), ocpp = wsb_shm_pool_find(t1, "ocpp");
  ck_assert(chat > 0 && ocpp > 0 && chat != ocpp);
  ck_assert_int_eq(wsb_shm_pool_find(t1, "nope"), -1);
  ck_assert_uint_eq(t1->pools[chat].settings.algorithm, WSB_ALG_HASH);
  ck_assert_uint_eq(t1->pools[chat].settings.connect_timeout_ms, 1000);
  ck_assert_uint_eq(t1->pools[ocpp].settings.algorithm, WSB_ALG_LEAST_CONN);
  ck_assert_uint_eq(t1->pools[ocpp].settings.connect_timeout_ms, 3000);
  ck_assert_uint_eq(t1->pools[0].settings.connect_timeout_ms, 3000);
  ck_assert_uint_eq(t1->settings.connect_timeout_ms, 3000);
  /* The process-wide keys are the table's in every pool. */
  ck_assert_uint_eq(t1->pools[chat].settings.handshake_timeout_ms,
                    t1->settings.handshake_timeout_ms);
  int a = slot_of(t1, "a"), c = slot_of(t1, "c"), o = slot_of(t1, "o");
  ck_assert_uint_eq(t1->backends[a].pool, 0);
  ck_assert_uint_eq(t1->backends[c].pool, (uint32_t)chat);
  ck_assert_uint_eq(t1->backends[o].pool, (uint32_t)ocpp);
  wsb_config_free(&cfg);

  /* chat goes, c moves to ocpp, a new pool comes: not into chat's slot. */
  load_text(&cfg,
            "[pool:fresh]\nalgorithm = random\n"
            "[backend:a]\nurl = ws://h:1\n"
            "[backend:c]\nurl = ws://h:2\npool = ocpp\n"
            "[backend:o]\nurl = ws://h:3\npool = ocpp\n",
            addrs);
  ck_assert_int_eq(wsb_shm_table_build(t2, &cfg, addrs, t1, NULL, err, sizeof(err)), 0);
  ck_assert_int_eq(wsb_shm_pool_find(t2, "ocpp"), ocpp);
  ck_assert_int_eq(wsb_shm_pool_find(t2, "chat"), -1);
  int fresh = wsb_shm_pool_find(t2, "fresh");
  ck_assert(fresh > 0 && fresh != chat && fresh != ocpp);
  ck_assert_int_eq(slot_of(t2, "c"), c);
  ck_assert_uint_eq(t2->backends[c].pool, (uint32_t)ocpp);
  /* A backend naming a pool the configuration has not (the admin API adds it so): a pool with
     [upstream]'s settings. */
  snprintf(cfg.backends[0].pool, sizeof(cfg.backends[0].pool), "extra");
  ck_assert_int_eq(wsb_shm_table_build(t1, &cfg, addrs, t2, NULL, err, sizeof(err)), 0);
  int extra = wsb_shm_pool_find(t1, "extra");
  ck_assert_int_gt(extra, 0);
  ck_assert_uint_eq(t1->backends[slot_of(t1, "a")].pool, (uint32_t)extra);
  ck_assert_uint_eq(t1->pools[extra].settings.algorithm, WSB_ALG_LEAST_CONN);
  ck_assert(t1->pools[0].in_use); /* "default" is there even without backends */
  wsb_config_free(&cfg);
  free(t1);
  free(t2);
}
END_TEST

START_TEST(test_tls_client_ctx_from_settings) {
  struct wsb_shm_settings st = {0};
  char err[512] = "";
  SSL_CTX *ctx = wsb_shm_tls_client_ctx(&st, err, sizeof(err));
  ck_assert_msg(ctx != NULL, "%s", err); /* "" would be a CA file that cannot be opened */
  ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
  ck_assert_ptr_null(SSL_CTX_get0_certificate(ctx));
  SSL_CTX_free(ctx);
  st.tls_verify = true;
  ctx = wsb_shm_tls_client_ctx(&st, err, sizeof(err));
  ck_assert_msg(ctx != NULL, "%s", err);
  ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
  SSL_CTX_free(ctx);
  /* A certificate without a key is not loaded (config refuses it; the mapping must not fail). */
  snprintf(st.tls_client_cert, sizeof(st.tls_client_cert), "%s", WSB_TEST_DATA_DIR "/full.ini");
  ctx = wsb_shm_tls_client_ctx(&st, err, sizeof(err));
  ck_assert_msg(ctx != NULL, "%s", err);
  ck_assert_ptr_null(SSL_CTX_get0_certificate(ctx));
  SSL_CTX_free(ctx);
  snprintf(st.tls_client_key, sizeof(st.tls_client_key), "/nonexistent/wsbal-unit.key");
  ck_assert_ptr_null(wsb_shm_tls_client_ctx(&st, err, sizeof(err)));
  ck_assert_msg(strstr(err, "key /nonexistent/wsbal-unit.key") != NULL, "%s", err);
  snprintf(st.tls_client_cert, sizeof(st.tls_client_cert), "/nonexistent/wsbal-unit.pem");
  ck_assert_ptr_null(wsb_shm_tls_client_ctx(&st, err, sizeof(err)));
  ck_assert_msg(strstr(err, "certificate /nonexistent/wsbal-unit.pem") != NULL, "%s", err);
  snprintf(st.tls_ca_file, sizeof(st.tls_ca_file), "/nonexistent/wsbal-unit-ca.pem");
  ck_assert_ptr_null(wsb_shm_tls_client_ctx(&st, err, sizeof(err)));
  ck_assert_msg(strstr(err, "CA file /nonexistent/wsbal-unit-ca.pem") != NULL, "%s", err);
}
END_TEST

int main(void) {
  Suite *s = suite_create("table");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, test_every_setting_reaches_the_segment);
  tcase_add_test(tc, test_too_long_setting_refused);
  tcase_add_test(tc, test_expand_and_follow);
  tcase_add_test(tc, test_removed_slot_held_across_generations);
  tcase_add_test(tc, test_just_removed_slot_given_last);
  tcase_add_test(tc, test_tls_client_ctx_from_settings);
  tcase_add_test(tc, test_pools);
  suite_add_tcase(s, tc);
  return wsb_run_suite(s);
}
