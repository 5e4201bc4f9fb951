/* wsbalctl sessions: every page of the admin API's session list, as one table or one object. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "ctl.h"

#define PAGE_LIMIT 1000 /* the server's own largest page */

static const struct wsb_ctl_column session_columns[] = {
    {"ID", "id", false},
    {"WORKER", "worker", true},
    {"CLIENT", "client", false},
    {"PATH", "path", false},
    {"POOL", "pool", false},
    {"ROUTE", "route", false},
    {"BACKEND", "backend", false},
    {"STARTED", "started", false},
    {"MSGS_IN", "messages_in", true},
    {"MSGS_OUT", "messages_out", true},
    {"BYTES_IN", "bytes_in", true},
    {"BYTES_OUT", "bytes_out", true},
    {"FAILOVERS", "failovers", true},
};

#define NCOLUMNS (sizeof(session_columns) / sizeof(session_columns[0]))

/*
 * Session ids already shown. Pages are asked for past the last page's last session (next_after)
 * and then nothing is shown twice; an older server pages by offset only, where a session opened
 * in a worker listed earlier pushes the rest one place on and the next page starts with the
 * previous one's last session again. An open-addressing set of ids, kept at most half full.
 */
struct id_set {
  uint64_t *slots; /* 0 = empty: the id 0 is kept in has_zero */
  size_t cap;      /* a power of two */
  size_t n;
  bool has_zero;
};

static uint64_t id_hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

static void id_put(uint64_t *slots, size_t cap, uint64_t id) {
  size_t i = id_hash(id) & (cap - 1);
  while (slots[i] != 0)
    i = (i + 1) & (cap - 1);
  slots[i] = id;
}

/* Adds id; returns 1 when it is new, 0 when it was there, -1 out of memory. */
static int id_add(struct id_set *s, uint64_t id) {
  if (id == 0) {
    bool was = s->has_zero;
    s->has_zero = true;
    return was ? 0 : 1;
  }
  if (2 * (s->n + 1) > s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 1024;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
      return -1;
    for (size_t i = 0; i < s->cap; i++)
      if (s->slots[i] != 0)
        id_put(slots, cap, s->slots[i]);
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  for (size_t i = id_hash(id) & (s->cap - 1); s->slots[i] != 0; i = (i + 1) & (s->cap - 1))
    if (s->slots[i] == id)
      return 0;
  id_put(s->slots, s->cap, id);
  s->n++;
  return 1;
}

/* What has been gathered over the pages. */
struct listing {
  bool json;
  struct wsb_ctl_table table;
  bool right[NCOLUMNS];
  struct wsb_buf objects; /* json: the sessions' objects as the server wrote them, comma-joined */
  struct id_set seen;
  uint64_t shown;
  uint64_t total; /* of the last page: every matching session now */
  bool partial;
  unsigned pages;
  bool printed; /* json: the only page went out as it came */
};

/* The page's sessions not shown yet, into l. False when it is not a session list (said). */
static bool take_page(struct listing *l, const struct wsb_json_doc *doc) {
  int list = wsb_json_member(doc, 0, "sessions");
  bool partial = false;
  if (wsb_ctl_json_type(doc, list) != WSB_JSON_ARRAY ||
      wsb_json_get_uint(doc, wsb_json_member(doc, 0, "total"), 0, UINT64_MAX, &l->total) != 0) {
    wsb_ctl_unexpected("no \"sessions\" array or \"total\"");
    return false;
  }
  if (wsb_json_get_bool(doc, wsb_json_member(doc, 0, "partial"), &partial) == 0 && partial)
    l->partial = true;
  for (int e = wsb_json_next_child(doc, list, 0); e > 0; e = wsb_json_next_child(doc, list, e)) {
    char hex[24];
    if (wsb_ctl_json_type(doc, e) != WSB_JSON_OBJECT ||
        wsb_json_get_string(doc, wsb_json_member(doc, e, "id"), hex, sizeof(hex), NULL) != 0) {
      wsb_ctl_unexpected("a session that is not an object with an \"id\"");
      return false;
    }
    int fresh = id_add(&l->seen, strtoull(hex, NULL, 16));
    if (fresh < 0) {
      fprintf(stderr, "wsbalctl: out of memory\n");
      return false;
    }
    if (fresh == 0)
      continue;
    l->shown++;
    if (!l->json) {
      wsb_ctl_table_row(&l->table, doc, e, session_columns, NCOLUMNS);
      continue;
    }
    const struct wsb_json_token *t = &doc->tokens[e];
    if ((l->objects.len > 0 && wsb_buf_append(&l->objects, ",", 1) != 0) ||
        wsb_buf_append(&l->objects, doc->text + t->start, t->end - t->start) != 0) {
      fprintf(stderr, "wsbalctl: out of memory\n");
      return false;
    }
  }
  return true;
}

/* Where the next page starts: past a session (after, a server's next_after) or, from a server
   without cursors, at an offset. */
struct page_at {
  uint64_t offset;
  char after[48]; /* "" while paging by offset */
};

/* The page's next_after, or next_offset from an older server: false after the last page (null),
   or when it does not move on. */
static bool next_page(const struct wsb_json_doc *doc, struct page_at *at) {
  int cursor = wsb_json_member(doc, 0, "next_after");
  if (cursor >= 0) {
    char next[sizeof(at->after)];
    if (wsb_json_get_string(doc, cursor, next, sizeof(next), NULL) != 0 ||
        strcmp(next, at->after) == 0)
      return false; /* null: the last page */
    memcpy(at->after, next, sizeof(next));
    return true;
  }
  uint64_t next;
  if (wsb_json_get_uint(doc, wsb_json_member(doc, 0, "next_offset"), 0, UINT64_MAX, &next) != 0 ||
      next <= at->offset)
    return false;
  at->offset = next;
  return true;
}

/* Every page gathered: the same shape as one page that held them all; next_offset or
   next_after is where the page bound stopped the walk (cut), else null. */
static void print_json(const struct listing *l, bool cut, const struct page_at *next) {
  char offset[24] = "null", after[sizeof(next->after) + 2] = "null";
  if (cut && next->after[0] != '\0')
    snprintf(after, sizeof(after), "\"%s\"", next->after); /* digits, '.' and hex: no escape */
  else if (cut)
    snprintf(offset, sizeof(offset), "%" PRIu64, next->offset);
  printf("{\"total\":%" PRIu64 ",\"partial\":%s,\"offset\":0,\"limit\":%" PRIu64
         ",\"next_offset\":%s,\"next_after\":%s,\"pages\":%u,\"sessions\":[",
         l->total, l->partial ? "true" : "false", l->shown, offset, after, l->pages);
  if (l->objects.len > 0)
    fwrite(wsb_buf_data(&l->objects), 1, l->objects.len, stdout);
  fputs("]}\n", stdout);
}

/* Notes on stderr, so stdout stays the table (the JSON says as much in its own fields). */
static void notes(const struct listing *l, bool cut) {
  if (cut)
    fprintf(stderr, "wsbalctl: stopped after %u pages, %" PRIu64 " sessions\n", l->pages, l->shown);
  if (l->total > l->shown)
    fprintf(stderr, "wsbalctl: %" PRIu64 " of %" PRIu64 " sessions shown\n", l->shown, l->total);
  if (l->partial)
    fprintf(stderr, "wsbalctl: some workers did not answer in time: the list is partial\n");
}

/* base with ?limit= and &after= or &offset= (or &... after base's own query), or false when it
   does not fit. */
static bool page_target(char *out, size_t cap, const char *base, const struct page_at *at) {
  char sep = strchr(base, '?') != NULL ? '&' : '?';
  int n =
      at->after[0] != '\0'
          ? snprintf(out, cap, "%s%climit=%d&after=%s", base, sep, PAGE_LIMIT, at->after)
          : snprintf(out, cap, "%s%climit=%d&offset=%" PRIu64, base, sep, PAGE_LIMIT, at->offset);
  return n > 0 && (size_t)n < cap;
}

/* One page: asked for, checked and taken into l. *at becomes the next page's start; *more says
   whether there is one. False when the listing cannot go on (said on stderr). */
static bool one_page(struct listing *l, const char *target, struct page_at *at, bool *more,
                     wsb_ctl_fetch_fn fetch, void *arg) {
  char page[2048];
  struct wsb_ctl_answer ans;
  *more = false;
  if (!page_target(page, sizeof(page), target, at)) {
    fprintf(stderr, "wsbalctl: an argument is too long\n");
    return false;
  }
  if (!fetch(arg, page, &ans))
    return false;
  struct wsb_ctl_reader r;
  bool ok = ans.status >= 200 && ans.status < 300;
  if (!ok) {
    if (l->json) /* an error's body goes to stdout too, as for every other command */
      wsb_ctl_print_body(&ans);
    wsb_ctl_print_error(&ans);
  } else if ((ok = wsb_ctl_read_json(&ans, &r, false))) {
    l->pages++;
    ok = take_page(l, &r.doc);
    *more = ok && next_page(&r.doc, at);
    /* The only page: its body as the server sent it, as with every other command. */
    if (ok && l->json && !*more && l->pages == 1) {
      wsb_ctl_print_body(&ans);
      l->printed = true;
    }
    wsb_ctl_reader_free(&r);
  }
  free(ans.body);
  return ok;
}

int wsb_ctl_sessions(const char *target, bool json, wsb_ctl_fetch_fn fetch, void *arg) {
  struct listing l = {.json = json};
  wsb_ctl_table_init(&l.table, NCOLUMNS, l.right);
  wsb_ctl_table_header(&l.table, session_columns, NCOLUMNS, l.right);
  struct page_at at = {0};
  bool more = true, ok = true;
  while (ok && more && l.pages < WSB_CTL_SESSION_PAGES && l.shown < WSB_CTL_SESSIONS_MAX)
    ok = one_page(&l, target, &at, &more, fetch, arg);
  int rc = ok ? WSB_CTL_EXIT_OK : WSB_CTL_EXIT_ERROR;
  if (ok && json && !l.printed)
    print_json(&l, more, &at);
  else if (ok && !json && l.shown == 0)
    printf("no live sessions\n");
  if (ok && !json && l.shown > 0)
    rc = wsb_ctl_table_finish(&l.table); /* frees it */
  else
    wsb_ctl_table_free(&l.table);
  if (ok && !json)
    notes(&l, more);
  wsb_buf_free(&l.objects);
  free(l.seen.slots);
  return rc;
}
