/* The admin API's sessions: pages of live sessions asked of each worker in turn, and commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "control.h"
#include "errors.h"
#include "frame.h"
#include "log.h"
#include "values.h"

/* Pages are bounded so that listing 100,000 sessions costs the master a page at a time: ?limit=
   above PAGE_MAX gets PAGE_MAX, and the lists being put together may hold at most LIST_BUDGET
   sessions between them (about 1.5 MiB, plus one page of JSON while it is written); a request
   past that is answered 503 at once. A worker that has not answered within STEP_TIMEOUT_MS makes
   the list partial and the next worker is asked. */
#define PAGE_MAX        1000
#define LIST_BUDGET     4000
#define STEP_TIMEOUT_MS 1000

/* The longest one session's JSON can be: every string byte escaped as \u00XX, numbers at 20
   digits, keys and punctuation well under 256 bytes. */
#define SESSION_JSON_MAX                                                                     \
  (256 +                                                                                     \
   6 * (sizeof(((struct wsb_session_info *)0)->client) +                                     \
        sizeof(((struct wsb_session_info *)0)->path) +                                       \
        sizeof(((struct wsb_session_info *)0)->route) + WSB_NAME_MAX + WSB_ROUTE_NAME_MAX) + \
   7 * 20 + 32)

/* A close or a failover of one session, sent once a lookup has found the session live, so an id
   that is not gets 404 rather than 202 for nothing. */
struct session_command {
  struct wsb_control_msg msg;
  char target[WSB_NAME_MAX + 1]; /* a failover's backend, "" for any: found again when sent,
                                    since the table may change while the lookup runs */
  char peer[WSB_ADMIN_PEER_MAX]; /* who asked, for the log of changes */
};

struct list_op {
  struct list_op *next;
  struct master *m;
  uint64_t request; /* of the step waiting for its worker's answer */
  uint64_t conn;
  bool one;        /* GET /api/v1/sessions/{id} */
  bool partial;    /* a worker did not answer, or could not */
  uint64_t id;     /* one: the session */
  int32_t slot;    /* only this backend's sessions, or -1 */
  int32_t pool;    /* only the sessions placed in this pool slot, or -1 */
  unsigned worker; /* the worker slot asked now; sessions are listed in id order, and a
                      session's id starts with the slot of the worker that opened it */
  uint64_t skip;   /* matching sessions of the workers still to ask to pass over */
  uint64_t offset;
  uint64_t limit;
  bool cursor;           /* ?after=: the page starts past a session, not at an offset */
  unsigned after_worker; /* that session's worker slot, */
  uint64_t after_id;     /* and its id */
  uint64_t total;        /* matching sessions of the workers asked so far */
  bool command;          /* one: cmd goes to the session once found */
  struct session_command cmd;
  size_t n;
  size_t cap;    /* entries reserved: limit, or 1 for one */
  size_t step_n; /* entries the worker asked now has sent so far */
  uv_timer_t timer;
  struct wsb_session_info entries[];
};

static void session_json(struct master *m, struct wsb_json *j, const struct wsb_session_info *e) {
  char id[17], ts[96];
  snprintf(id, sizeof(id), "%016llx", (unsigned long long)e->id);
  time_t secs = (time_t)(e->started_unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(e->started_unix_ms % 1000));
  wsb_json_object_begin(j);
  wsb_json_key(j, "id");
  wsb_json_cstring(j, id);
  wsb_json_key(j, "worker");
  wsb_json_uint(j, e->worker);
  wsb_json_key(j, "client");
  wsb_json_string(j, e->client, strnlen(e->client, sizeof(e->client)));
  wsb_json_key(j, "path");
  wsb_json_string(j, e->path, strnlen(e->path, sizeof(e->path)));
  wsb_json_key(j, "backend");
  if (e->backend_slot >= 0 && e->backend_slot < WSB_SHM_MAX_BACKENDS &&
      m->table->backends[e->backend_slot].in_use)
    wsb_json_cstring(j, m->table->backends[e->backend_slot].name);
  else
    wsb_json_null(j); /* moving to another backend right now, or its backend was removed */
  wsb_json_key(j, "pool");
  if (e->pool < m->table->npools && m->table->pools[e->pool].in_use)
    wsb_json_cstring(j, m->table->pools[e->pool].name);
  else
    wsb_json_null(j); /* its pool was removed by a reload since */
  wsb_json_key(j, "route");
  if (e->route[0] != '\0')
    wsb_json_string(j, e->route, strnlen(e->route, sizeof(e->route)));
  else
    wsb_json_null(j); /* moved by a binary upgrade from a build that did not say */
  wsb_json_key(j, "started");
  wsb_json_cstring(j, ts);
  wsb_json_key(j, "messages_in");
  wsb_json_uint(j, e->messages_in);
  wsb_json_key(j, "messages_out");
  wsb_json_uint(j, e->messages_out);
  wsb_json_key(j, "bytes_in");
  wsb_json_uint(j, e->bytes_in);
  wsb_json_key(j, "bytes_out");
  wsb_json_uint(j, e->bytes_out);
  wsb_json_key(j, "failovers");
  wsb_json_uint(j, e->failovers);
  wsb_json_object_end(j);
}

static void on_list_timer_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_list_timeout(uv_timer_t *t);

/* Takes op off the master's lists; it is freed once its timer has closed. */
static void list_end(struct list_op *op) {
  for (struct list_op **p = &op->m->lists; *p != NULL; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      break;
    }
  uv_close((uv_handle_t *)&op->timer, on_list_timer_closed);
}

/* A close or a failover sent to the worker that holds the session (the one whose lookup found
   it): 202, since the worker acts when it reads the command (and the session may end first). */
static void send_command(struct master *m, struct session_command *cmd, unsigned worker,
                         struct wsb_admin_reply *r) {
  struct wsb_control_msg *msg = &cmd->msg;
  const char *peer = cmd->peer;
  if (cmd->target[0] != '\0' && (msg->slot = wsb__api_find_backend(m, cmd->target)) < 0) {
    wsb_admin_error(r, 404, "no such backend");
    return;
  }
  unsigned reached = wsb_workers_send(&m->workers, (int)worker, msg);
  if (reached == 0) {
    wsb_admin_error(r, 404, "no such session: its worker is not running");
    return;
  }
  if (msg->type == WSB_CTL_KILL_SESSION)
    wsb_log_info("admin %s: session %016llx closing (code %u)", peer,
                 (unsigned long long)msg->session, (unsigned)msg->code);
  else
    wsb_log_info("admin %s: session %016llx moving%s%s", peer, (unsigned long long)msg->session,
                 msg->slot >= 0 ? " to " : "",
                 msg->slot >= 0 ? m->table->backends[msg->slot].name : "");
  wsb__api_accepted(r, msg->type == WSB_CTL_KILL_SESSION ? "closing" : "moving", reached, NULL, 0);
}

static void list_answer(struct list_op *op, struct wsb_admin_reply *r) {
  struct master *m = op->m;
  struct wsb_json j;
  if (op->one && op->n == 0) {
    wsb_admin_error(r, op->partial ? 504 : 404,
                    op->partial ? "its worker did not answer in time" : "no such session");
  } else if (op->command) {
    send_command(m, &op->cmd, op->entries[0].worker, r);
  } else if (wsb__api_json_begin_sized(&j, r, 1024 + op->n * SESSION_JSON_MAX)) {
    if (op->one) {
      session_json(m, &j, &op->entries[0]);
    } else {
      wsb_json_object_begin(&j);
      wsb_json_key(&j, "total");
      wsb_json_uint(&j, op->total);
      wsb_json_key(&j, "partial");
      wsb_json_bool(&j, op->partial);
      wsb_json_key(&j, "offset");
      wsb_json_uint(&j, op->offset);
      wsb_json_key(&j, "limit");
      wsb_json_uint(&j, op->limit);
      /* Where the next page starts, or null after the last one (or an empty page). By offset
         (a session that ends between two pages moves the later ones up one), and by cursor
         (after=: past the page's last session, whatever ends meanwhile; a full page may be
         followed by an empty one). */
      wsb_json_key(&j, "next_offset");
      if (!op->cursor && op->n > 0 && op->offset + op->n < op->total)
        wsb_json_uint(&j, op->offset + op->n);
      else
        wsb_json_null(&j);
      wsb_json_key(&j, "next_after");
      if (op->n > 0 && op->n == op->limit) {
        char cursor[40];
        const struct wsb_session_info *last = &op->entries[op->n - 1];
        snprintf(cursor, sizeof(cursor), "%u.%016llx", (unsigned)last->worker,
                 (unsigned long long)last->id);
        wsb_json_cstring(&j, cursor);
      } else {
        wsb_json_null(&j);
      }
      wsb_json_key(&j, "sessions");
      wsb_json_array_begin(&j);
      for (size_t i = 0; i < op->n; i++)
        session_json(m, &j, &op->entries[i]);
      wsb_json_array_end(&j);
      wsb_json_object_end(&j);
    }
    wsb__api_reply_json(r, 200, &j);
  }
}

static void finish_list(struct list_op *op) {
  struct wsb_admin_reply r = {0};
  list_answer(op, &r);
  list_end(op);
  wsb_admin_complete(&op->m->admin, op->conn, &r);
}

/* Asks the next running worker for its part of the page; false when none is left. */
static bool list_ask(struct list_op *op) {
  struct master *m = op->m;
  /* One session is looked for in every worker until one has it, not only in the worker its id
     names: a binary upgrade hands sessions to a worker of another slot when the worker count
     changed. */
  if (op->one && op->n > 0)
    return false;
  for (; op->worker < m->shm->nworkers; op->worker++) {
    const struct wsb_worker_proc *w = &m->workers.procs[op->worker];
    if (w->pid == 0 || w->control_fd < 0)
      continue; /* a worker not running has no sessions */
    struct wsb_control_msg msg = {
        .type = WSB_CTL_LIST_SESSIONS,
        .len = sizeof(msg),
        .request = ++m->next_request,
        .session = op->id,
        .one = op->one,
        .slot = op->slot,
        .pool = op->pool,
        .skip = op->skip < UINT32_MAX ? (uint32_t)op->skip : UINT32_MAX,
        .limit = (uint32_t)(op->cap - op->n),
    };
    /* After a cursor: the workers before its own are only counted (for total), its own lists
       past its session, the later ones from their first. */
    if (op->cursor && op->worker < op->after_worker)
      msg.limit = 0;
    else if (op->cursor && op->worker == op->after_worker) {
      msg.cursor = 1;
      msg.after = op->after_id;
    }
    if (wsb_workers_send(&m->workers, (int)op->worker, &msg) == 1) {
      op->request = msg.request;
      op->step_n = 0;
      uv_timer_start(&op->timer, on_list_timeout, STEP_TIMEOUT_MS, 0);
      return true;
    }
    op->partial = true;
  }
  return false;
}

static void list_step(struct list_op *op) {
  if (!list_ask(op))
    finish_list(op);
}

static void on_list_timeout(uv_timer_t *t) {
  struct list_op *op = t->data;
  wsb_log_warn("session list: worker %u did not answer in time", op->worker);
  op->partial = true;
  op->request = 0; /* what it still sends is dropped */
  op->worker++;
  list_step(op);
}

void wsb_api_on_chunk(void *ctx, const struct wsb_sessions_chunk *chunk) {
  struct master *m = ctx;
  struct list_op *op = m->lists;
  while (op != NULL && (op->request == 0 || op->request != chunk->request))
    op = op->next;
  if (op == NULL)
    return; /* an answer after its request timed out */
  size_t take = chunk->count < op->cap - op->n ? chunk->count : op->cap - op->n;
  memcpy(&op->entries[op->n], chunk->entries, take * sizeof(chunk->entries[0]));
  op->n += take;
  op->step_n += chunk->count;
  if (!chunk->last)
    return;
  if (chunk->error != 0) {
    wsb_log_warn("session list: worker %u could not list: %s", op->worker,
                 wsb_strerror(chunk->error));
    op->partial = true;
  } else if (op->step_n != chunk->described || op->step_n > op->cap) {
    wsb_log_error("session list: worker %u described %u sessions, %zu arrived", op->worker,
                  chunk->described, op->step_n);
    op->partial = true;
  }
  op->total += chunk->matched;
  op->skip -= op->skip < chunk->matched ? op->skip : chunk->matched;
  op->worker++;
  list_step(op);
}

void wsb__api_sessions_stop(struct master *m) {
  while (m->lists != NULL) {
    m->lists->partial = true;
    finish_list(m->lists);
  }
}

/* The largest page; a debug build takes a smaller one from WSB_TEST_SESSION_PAGE_MAX, so that a
   test pages through a few sessions (wsbalctl follows pages). */
static uint64_t page_max(void) {
#ifdef WSB_FAULT_INJECTION
  const char *t = getenv("WSB_TEST_SESSION_PAGE_MAX");
  if (t != NULL && atoi(t) > 0 && atoi(t) < PAGE_MAX)
    return (uint64_t)atoi(t);
#endif
  return PAGE_MAX;
}

static bool query_uint(const char *query, const char *key, uint64_t *v) {
  char buf[24], *end;
  int rc = wsb__api_query_value(query, key, buf, sizeof(buf), NULL);
  if (rc == -ENOENT)
    return true; /* absent: the default stays */
  errno = 0;
  *v = strtoull(buf, &end, 10);
  return rc == 0 && buf[0] >= '0' && buf[0] <= '9' && *end == '\0' && errno == 0;
}

/* ?pool=NAME: its slot in *pool (left at -1 when absent). False with a 400 (a bad escape) or a
   404 (no pool of that name) answered. */
static bool query_pool(struct master *m, const char *query, int *pool, struct wsb_admin_reply *r) {
  char name[WSB_ROUTE_NAME_MAX];
  int rc = wsb__api_query_value(query, "pool", name, sizeof(name), NULL);
  if (rc == -ENOENT)
    return true;
  if (rc == -EINVAL) {
    wsb_admin_error(r, 400, "pool= has a bad %-escape or a NUL byte");
    return false;
  }
  /* Too long for a pool name (-E2BIG) is no pool's name either. */
  if (rc != 0 || (*pool = wsb_shm_pool_find(m->table, name)) < 0) {
    wsb_admin_error(r, 404, "no such pool");
    return false;
  }
  return true;
}

/* GET /api/v1/sessions[?backend=&pool=&limit=&offset=] or one session: asks the workers in
   turn. With cmd (one session, whose query is the command's), cmd goes to the session once
   found. */
static void list_sessions(struct master *m, const struct wsb_admin_request *req, bool one,
                          uint64_t id, const struct session_command *cmd,
                          struct wsb_admin_reply *r) {
  uint64_t most = page_max(), limit = most, offset = 0;
  int slot = -1, pool = -1;
  char name[WSB_NAME_MAX + 1];
  const char *query = cmd != NULL ? "" : req->query;
  if (!query_uint(query, "limit", &limit) || !query_uint(query, "offset", &offset)) {
    wsb_admin_error(r, 400, "limit= and offset= take whole numbers");
    return;
  }
  if (wsb__api_query_get(query, "backend", name, sizeof(name)) &&
      (slot = wsb__api_find_backend(m, name)) < 0) {
    wsb_admin_error(r, 404, "no such backend");
    return;
  }
  if (!query_pool(m, query, &pool, r))
    return;
  /* ?after=WORKER.ID (a page's next_after): a cursor instead of an offset. */
  char after[40];
  unsigned after_worker = 0;
  unsigned long long after_id = 0;
  int n = 0;
  bool cursor = wsb__api_query_get(query, "after", after, sizeof(after));
  if (cursor && (sscanf(after, "%u.%16llx%n", &after_worker, &after_id, &n) != 2 ||
                 after[n] != '\0' || strchr(after, '-') != NULL)) {
    wsb_admin_error(r, 400, "after= takes a page's next_after (WORKER.ID)");
    return;
  }
  if (cursor && offset != 0) {
    wsb_admin_error(r, 400, "after= and offset= exclude each other");
    return;
  }
  limit = limit < most ? limit : most;
  size_t cap = one ? 1 : (size_t)limit, held = 0;
  for (const struct list_op *o = m->lists; o != NULL; o = o->next)
    held += o->cap > 0 ? o->cap : 1;
  if (held + (cap > 0 ? cap : 1) > LIST_BUDGET) {
    wsb_admin_error(r, 503, "too many session lists at once: try again");
    return;
  }
  struct list_op *op = malloc(sizeof(*op) + cap * sizeof(op->entries[0]));
  if (op == NULL) {
    wsb_admin_error(r, 500, "out of memory");
    return;
  }
  *op = (struct list_op){.m = m,
                         .conn = req->conn,
                         .one = one,
                         .id = id,
                         .slot = slot,
                         .pool = pool,
                         .skip = one ? 0 : offset,
                         .offset = one ? 0 : offset,
                         .limit = limit,
                         .cursor = cursor && !one,
                         .after_worker = after_worker,
                         .after_id = after_id,
                         .cap = cap,
                         .command = cmd != NULL};
  if (cmd != NULL)
    op->cmd = *cmd;
  op->next = m->lists;
  m->lists = op;
  uv_timer_init(&m->loop, &op->timer);
  op->timer.data = op;
  if (list_ask(op)) {
    r->status = 0; /* answered once the last worker has, each within STEP_TIMEOUT_MS */
    return;
  }
  list_answer(op, r); /* no worker to ask: answered now, not deferred */
  list_end(op);
}

/* DELETE's ?code= (1000 when absent) and ?reason= (percent-decoded) into msg. False once a 400
   is answered: a code SPEC.md does not list, or a reason that would not fit a close frame. */
static bool read_close(const struct wsb_admin_request *req, struct wsb_control_msg *msg,
                       struct wsb_admin_reply *r) {
  char code[8];
  size_t len = 0;
  int rc = wsb__api_query_value(req->query, "code", code, sizeof(code), &len);
  msg->code = WSB_CLOSE_NORMAL;
  if (rc != -ENOENT && (rc != 0 || wsb_close_code_from_text(code, len, &msg->code) != 0)) {
    wsb_admin_error(r, 400, "code= takes 1000-1003, 1007-1009, 1011-1014 or 3000-4999");
    return false;
  }
  /* Room for one byte more than a reason may have, so a long one is told apart from a bad one. */
  char reason[WSB_CLOSE_REASON_MAX + 2];
  rc = wsb__api_query_value(req->query, "reason", reason, sizeof(reason), &len);
  if (rc == -ENOENT)
    return true;
  if (rc == 0)
    rc = wsb_close_reason_check(reason, len);
  if (rc != 0) {
    wsb_admin_error(r, 400,
                    rc == -E2BIG      ? "reason= is at most 123 bytes once decoded"
                    : rc == WSB_EUTF8 ? "reason= must be UTF-8"
                                      : "reason= has a bad %-escape or a NUL byte");
    return false;
  }
  _Static_assert(sizeof(msg->reason) > WSB_CLOSE_REASON_MAX, "a reason fits the command");
  memcpy(msg->reason, reason, len + 1);
  return true;
}

/* The session {id} names: 16 hex digits, the worker's slot in the top 12 bits. False with a
   404 answered. */
static bool session_id(struct api_call *c, uint64_t *id) {
  *id = 0;
  for (int i = 0; i < 16; i++) {
    int d = wsb_hex_digit((unsigned char)c->arg[i]);
    if (d < 0) {
      wsb_admin_error(c->r, 404, "no such session: ids are 16 hex digits");
      return false;
    }
    *id = *id << 4 | (uint64_t)d;
  }
  if (c->arg[16] != '\0') {
    wsb_admin_error(c->r, 404, "no such session: ids are 16 hex digits");
    return false;
  }
  return true;
}

void wsb__api_sessions_list(struct api_call *c) {
  list_sessions(c->m, c->req, false, 0, NULL, c->r);
}

void wsb__api_session_get(struct api_call *c) {
  uint64_t id;
  if (session_id(c, &id))
    list_sessions(c->m, c->req, true, id, NULL, c->r);
}

/* A command about the session {id}, from the admin client of c. */
static void command_init(struct api_call *c, struct session_command *cmd, uint32_t type) {
  *cmd = (struct session_command){.msg = {.type = type, .len = sizeof(cmd->msg), .slot = -1}};
  snprintf(cmd->peer, sizeof(cmd->peer), "%s", c->req->peer);
}

void wsb__api_session_close(struct api_call *c) {
  struct session_command cmd;
  command_init(c, &cmd, WSB_CTL_KILL_SESSION);
  if (session_id(c, &cmd.msg.session) && read_close(c->req, &cmd.msg, c->r))
    list_sessions(c->m, c->req, true, cmd.msg.session, &cmd, c->r);
}

/* The target may be given as ?backend=NAME or {"backend": NAME}. */
void wsb__api_session_failover(struct api_call *c) {
  struct session_command cmd;
  command_init(c, &cmd, WSB_CTL_FAILOVER_SESSION);
  if (!session_id(c, &cmd.msg.session))
    return;
  char *target = cmd.target;
  bool named = wsb__api_query_get(c->req->query, "backend", target, sizeof(cmd.target));
  if (c->req->body_len > 0) {
    static const char *const known[] = {"backend", NULL};
    struct wsb_json_token tokens[API_BODY_TOKENS];
    struct wsb_json_doc doc;
    if (!wsb__api_parse_body(c->req, &doc, tokens, known, c->r))
      return;
    int rc = wsb_json_get_string(&doc, wsb_json_member(&doc, 0, "backend"), target,
                                 sizeof(cmd.target), NULL);
    if (!wsb__api_field_ok(rc, "backend", "a backend name", true, c->r))
      return;
    named = named || rc == 0;
  }
  /* An unknown backend is told at once; the lookup of the session comes after. */
  if (named && wsb__api_find_backend(c->m, target) < 0) {
    wsb_admin_error(c->r, 404, "no such backend");
    return;
  }
  list_sessions(c->m, c->req, true, cmd.msg.session, &cmd, c->r);
}
