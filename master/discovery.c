/* DNS discovery: blocking lookups at start and for new hosts, uv_getaddrinfo rounds afterwards. */
#include "discovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One background lookup; it outlives a reload, so it names its section instead of pointing. */
struct lookup {
  uv_getaddrinfo_t req;
  struct wsb_discovery *d;
  struct lookup *next;
  char name[WSB_NAME_MAX];
  char host[WSB_HOST_MAX];
  uint16_t port;
};

static void addrs_text(const struct wsb_addrs *s, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < s->n && used + 1 < cap; i++) {
    char a[INET6_ADDRSTRLEN + 16];
    if (wsb_addr_format(&s->a[i], a, sizeof(a)) != 0)
      continue;
    int n = snprintf(out + used, cap - used, "%s%s", i ? " " : "", a);
    if (n < 0 || (size_t)n >= cap - used)
      break;
    used += (size_t)n;
  }
}

static const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

static int resolve_now(const struct wsb_config *cfg, const struct wsb_backend_config *bc,
                       struct wsb_addrs *out, char *err, size_t errlen) {
  char port[8], where[600] = "";
  snprintf(port, sizeof(port), "%u", (unsigned)bc->url.port);
  if (bc->line > 0 && cfg->path != NULL)
    snprintf(where, sizeof(where), "%s:%d: ", cfg->path, bc->line);
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(bc->url.host, port, &hints, &res);
  if (rc != 0) {
    snprintf(err, errlen, "%sbackend %s: cannot resolve %s: %s", where, bc->name, bc->url.host,
             gai_strerror(rc));
    return -EHOSTUNREACH;
  }
  size_t dropped = wsb_addrs_from_addrinfo(out, res);
  freeaddrinfo(res);
  if (out->n == 0) {
    snprintf(err, errlen, "%sbackend %s: %s has no IPv4 or IPv6 address", where, bc->name,
             bc->url.host);
    return -EHOSTUNREACH;
  }
  wsb_discovery_log_addrs(bc->name, bc->url.host, out, dropped);
  return 0;
}

void wsb_discovery_log_addrs(const char *name, const char *host, const struct wsb_addrs *addrs,
                             size_t dropped) {
  if (dropped > 0)
    wsb_log_warn("backend %s: %s has more than %d addresses: %zu ignored", name, host,
                 WSB_ADDRS_MAX, dropped);
  if (!wsb_addrs_is_literal(host)) {
    char text[512];
    addrs_text(addrs, text, sizeof(text));
    wsb_log_info("backend %s: %s is %s", name, host, text);
  }
}

int wsb_discovery_resolve(const struct wsb_config *cfg, size_t i, struct wsb_addrs *out, char *err,
                          size_t errlen) {
  return resolve_now(cfg, &cfg->backends[i], out, err, errlen);
}

static struct wsb_known *find_known(const struct wsb_discovery *d, const char *name,
                                    const char *host, uint16_t port) {
  for (size_t i = 0; i < d->nknown; i++)
    if (strcmp(d->known[i].name, name) == 0 && strcmp(d->known[i].host, host) == 0 &&
        d->known[i].port == port)
      return &d->known[i];
  return NULL;
}

int wsb_discovery_lookup(const struct wsb_discovery *d, const struct wsb_config *cfg,
                         struct wsb_addrs **out, char *err, size_t errlen) {
  *out = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(**out));
  if (*out == NULL) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  for (size_t i = 0; i < cfg->nbackends; i++) {
    const struct wsb_backend_config *bc = &cfg->backends[i];
    const struct wsb_known *k = find_known(d, bc->name, bc->url.host, bc->url.port);
    int rc = k != NULL ? 0 : resolve_now(cfg, bc, &(*out)[i], err, errlen);
    if (k != NULL)
      (*out)[i] = k->addrs;
    if (rc != 0) {
      free(*out);
      *out = NULL;
      return rc;
    }
  }
  return 0;
}

int wsb_discovery_commit(struct wsb_discovery *d, const struct wsb_config *cfg,
                         const struct wsb_addrs *addrs) {
  struct wsb_known *known = calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*known));
  if (known == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < cfg->nbackends; i++) {
    snprintf(known[i].name, sizeof(known[i].name), "%s", cfg->backends[i].name);
    snprintf(known[i].host, sizeof(known[i].host), "%s", cfg->backends[i].url.host);
    known[i].port = cfg->backends[i].url.port;
    known[i].addrs = addrs[i];
  }
  free(d->known);
  d->known = known;
  d->nknown = cfg->nbackends;
  d->changed = false;
  return 0;
}

int wsb_discovery_learn(struct wsb_discovery *d, const char *name, const char *host, uint16_t port,
                        const struct wsb_addrs *addrs) {
  wsb_discovery_unlearn(d, name);
  struct wsb_known *known = realloc(d->known, (d->nknown + 1) * sizeof(*known));
  if (known == NULL)
    return -ENOMEM;
  d->known = known;
  struct wsb_known *k = &known[d->nknown++];
  snprintf(k->name, sizeof(k->name), "%s", name);
  snprintf(k->host, sizeof(k->host), "%s", host);
  k->port = port;
  k->addrs = *addrs;
  return 0;
}

void wsb_discovery_unlearn(struct wsb_discovery *d, const char *name) {
  size_t kept = 0;
  for (size_t i = 0; i < d->nknown; i++)
    if (strcmp(d->known[i].name, name) != 0)
      d->known[kept++] = d->known[i];
  d->nknown = kept;
}

static void round_done(struct wsb_discovery *d) {
  d->rounds++;
  wsb_log_debug("discovery: round %llu done (%llu lookups, %llu failed so far)",
                (unsigned long long)d->rounds, (unsigned long long)d->lookups,
                (unsigned long long)d->errors);
  if (d->closing)
    return;
  /* A failed publish leaves changed set: the next round tries again. */
  if (d->changed && d->on_change != NULL && d->on_change(d->arg) == 0)
    d->changed = false;
  if (d->again) {
    d->again = false;
    wsb_discovery_refresh(d);
  }
}

static void unlink_lookup(struct wsb_discovery *d, struct lookup *l) {
  for (struct lookup **p = &d->lookups_running; *p != NULL; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      return;
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct lookup *l = req->data;
  struct wsb_discovery *d = l->d;
  unlink_lookup(d, l);
  bool canceled = status == UV_EAI_CANCELED || status == UV_ECANCELED || d->closing;
  if (!canceled) {
    d->lookups++;
    /* The section may have gone or changed its URL in a reload since: then this answer is old. */
    struct wsb_known *k = find_known(d, l->name, l->host, l->port);
    if (status < 0) {
      d->errors++;
      wsb_log_warn("discovery: backend %s: cannot resolve %s: %s; keeping its %zu address%s",
                   l->name, l->host, uv_strerror(status), k ? k->addrs.n : 0,
                   k && k->addrs.n == 1 ? "" : "es");
    } else if (k != NULL) {
      struct wsb_addrs next;
      size_t dropped = wsb_addrs_from_addrinfo(&next, res);
      if (dropped > 0)
        wsb_log_warn("discovery: backend %s: %s has more than %d addresses: %zu ignored", l->name,
                     l->host, WSB_ADDRS_MAX, dropped);
      if (next.n > 0 && !wsb_addrs_equal(&next, &k->addrs)) {
        char diff[512], text[512];
        wsb_addrs_diff(&k->addrs, &next, diff, sizeof(diff));
        addrs_text(&next, text, sizeof(text));
        wsb_log_info("discovery: backend %s: %s is now %s (%s)", l->name, l->host, text, diff);
        k->addrs = next;
        d->changed = true;
      }
    }
  }
  if (res != NULL)
    uv_freeaddrinfo(res);
  free(l);
  if (--d->pending == 0)
    round_done(d);
}

void wsb_discovery_refresh(struct wsb_discovery *d) {
  if (d->closing || d->loop == NULL)
    return;
  if (d->pending > 0) {
    d->again = true;
    return;
  }
  d->pending = 1; /* held while starting, so an immediate failure cannot end the round early */
  for (size_t i = 0; i < d->nknown; i++) {
    const struct wsb_known *k = &d->known[i];
    if (wsb_addrs_is_literal(k->host))
      continue;
    struct lookup *l = calloc(1, sizeof(*l));
    if (l == NULL) {
      d->errors++;
      continue;
    }
    l->d = d;
    snprintf(l->name, sizeof(l->name), "%s", k->name);
    snprintf(l->host, sizeof(l->host), "%s", k->host);
    l->port = k->port;
    l->req.data = l;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)k->port);
    int rc = uv_getaddrinfo(d->loop, &l->req, on_resolved, l->host, port, &hints);
    if (rc != 0) {
      d->lookups++;
      d->errors++;
      wsb_log_warn("discovery: backend %s: cannot start resolving %s: %s", l->name, l->host,
                   uv_strerror(rc));
      free(l);
      continue;
    }
    l->next = d->lookups_running;
    d->lookups_running = l;
    d->pending++;
  }
  if (--d->pending == 0)
    round_done(d);
}

static void on_timer(uv_timer_t *t) {
  wsb_discovery_refresh(t->data);
}

void wsb_discovery_start(struct wsb_discovery *d, uv_loop_t *loop, uint64_t interval_ms) {
  if (d->closing)
    return;
  d->loop = loop;
  if (!d->timer_open) {
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->timer_open = true;
  }
  uv_timer_stop(&d->timer);
  if (interval_ms > 0)
    uv_timer_start(&d->timer, on_timer, interval_ms, interval_ms);
}

void wsb_discovery_close(struct wsb_discovery *d) {
  d->closing = true;
  for (struct lookup *l = d->lookups_running; l != NULL; l = l->next)
    uv_cancel((uv_req_t *)&l->req); /* one already running still calls back: it is dropped */
  if (d->timer_open) {
    uv_close((uv_handle_t *)&d->timer, NULL);
    d->timer_open = false;
  }
}

void wsb_discovery_free(struct wsb_discovery *d) {
  free(d->known);
  d->known = NULL;
  d->nknown = 0;
}
