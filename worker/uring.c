/* Socket I/O of plain WebSocket sessions through one io_uring per worker, driven by its libuv
   loop. */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "leg.h"
#include "log.h"
#include "proxy_header.h"
#include "session.h"
#include "worker.h"

/*
 * The legs of established plain WebSocket sessions read through one multishot
 * receive each into the worker's provided-buffer ring, and their writes are
 * queued and submitted together. The ring runs its completion work only when
 * this process asks (IORING_SETUP_DEFER_TASKRUN), so the worker waits in the
 * ring, not in epoll_wait: wsb_uring_run is its loop. It waits in one
 * io_uring_enter that also submits the sends queued so far, for a completion or
 * libuv's next timer; libuv's epoll descriptor is one more poll on the ring, and
 * a libuv pass (uv_run UV_RUN_NOWAIT: timers, its sockets, prepare, check,
 * close callbacks) runs when that poll fires or a timer is due. An arriving
 * packet interrupts nothing (without deferred completions, each receive's task
 * work broke epoll_wait with EINTR) and waits for no eventfd (whose signal of
 * deferred work comes a grace period late, 15-25 ms, on this kernel). A plain
 * WebSocket session's sockets read and write here from accept and connect on, so
 * its handshake too, and the ring closes them; TLS, plain HTTP, PROXY headers and
 * lingering stay on libuv streams.
 */

#define SQ_ENTRIES 256
#define CQ_ENTRIES 4096
#define NBUFS      16 /* a power of two */
#define BUF_SIZE   (16 * 1024)
#define BGID       1
#define ROUNDS     8    /* passes of one wake before the loop gets its turn again */
#define SPARE_SIZE 4096 /* send buffers of this size are kept for the next sends */
#define SPARES     64
#define PROBE_SIZE (64 * 1024) /* more than the probe socket's send buffer: a short send */

/* The tag of an operation's user data: what completed (a quick send's only when it fell short). */
enum { OP_RECV = 0, OP_SEND = 1, OP_LOOP = 2, OP_QUICK_SEND = 3, OP_TAG = 3 };

struct wsb_uring {
  struct io_uring ring;
  uv_prepare_t prepare; /* submits what a libuv pass queued before its epoll_wait */
  bool loop_armed;      /* a poll of libuv's epoll descriptor is on the ring */
  bool loop_ready;      /* it fired: libuv has events (or timers) to run */
  struct io_uring_buf_ring *br;
  uint8_t *bufs;
  struct wsb_uring_leg *dirty; /* legs with something for the next submission */
  unsigned nlegs;              /* leg states allocated, released ones with operations included */
  /* Emptied send buffers for any leg's next sends: no allocation per send, and none held by
     an idle session. */
  uint8_t *spare[SPARES];
  unsigned nspare;
  struct leg_bufs *spare_bufs[SPARES]; /* the same for the buffers' bookkeeping */
  unsigned nspare_bufs;
  /* Sends that post no completion when they send everything (see send_next): the legs of those
     submitted since the last settle_quick, and whether this kernel does that safely. */
  struct wsb_uring_leg **quick;
  unsigned nquick, quick_cap;
  bool quick_ok;
  bool in_pass; /* inside wsb_uring_run's own libuv pass: its next wait submits */
};

/* What a leg has while bytes are on their way through it: taken when the first is queued or
   held, given back once all three are empty, so an idle session's legs keep none (120 bytes
   of state a leg made memory per idle session 2.12 KiB, over issue 16's 2 KiB). */
struct leg_bufs {
  struct wsb_buf held; /* bytes read while not reading, delivered when reading resumes */
  struct wsb_buf out;  /* written this iteration, not yet submitted */
  struct wsb_buf fly;  /* being sent */
};

/* Kept to 40 bytes, one 48-byte heap block, for each leg of every session. */
struct wsb_uring_leg {
  struct wsb_uring *u;
  struct wsb_leg *leg; /* NULL once released: freed when its last operation ends */
  struct wsb_uring_leg *next_dirty;
  struct leg_bufs *b; /* NULL while nothing is held, queued or sent */
  int fd;
  int16_t held_end; /* end of stream read while not reading (0: none; a libuv error code) */
  uint8_t ops;      /* operations in flight (the multishot receive counts once; at most 2) */
  bool want_read : 1, recv_armed : 1, cancel_queued : 1, sending : 1, listed : 1;
  bool ended : 1;    /* the end of the stream (or an error) went to the session: no more receives */
  bool handback : 1; /* goes back to libuv once its last receive is handled (wsb_uring_quiesce) */
  bool close_fd : 1; /* released for its connection's end: the ring closes the socket */
};
_Static_assert(sizeof(struct wsb_uring_leg) <= 40, "a leg's ring state fits a 48-byte heap block");

static size_t held_len(const struct wsb_uring_leg *io) {
  return io->b != NULL ? io->b->held.len : 0;
}

/* Read while the leg did not read, bytes or the stream's end, and not given to the session yet. */
static bool holds(const struct wsb_uring_leg *io) {
  return held_len(io) > 0 || io->held_end != 0;
}

/* Bytes queued or being sent. */
static size_t queued_len(const struct wsb_uring_leg *io) {
  return io->b != NULL ? io->b->out.len + io->b->fly.len : 0;
}

/* The leg's buffers, taken (an empty spare or new) if it has none; NULL without memory. */
static struct leg_bufs *bufs_take(struct wsb_uring_leg *io) {
  struct wsb_uring *u = io->u;
  if (io->b == NULL)
    io->b = u->nspare_bufs > 0 ? u->spare_bufs[--u->nspare_bufs] : calloc(1, sizeof(*io->b));
  return io->b;
}

/* An empty send buffer starts as a spare (of the size that is kept), reused or new. */
static void buf_take(struct wsb_uring *u, struct wsb_buf *b) {
  if (b->p != NULL)
    return;
  uint8_t *p = u->nspare > 0 ? u->spare[--u->nspare] : malloc(SPARE_SIZE);
  if (p != NULL)
    *b = (struct wsb_buf){.p = p, .cap = SPARE_SIZE};
}

/* Empties a send buffer, keeping its memory as a spare if it has the spares' size. */
static void buf_give(struct wsb_uring *u, struct wsb_buf *b) {
  if (b->p != NULL && b->cap == SPARE_SIZE && u->nspare < SPARES)
    u->spare[u->nspare++] = b->p;
  else
    free(b->p);
  *b = (struct wsb_buf){0};
}

/* Empties the leg's buffers, whatever they hold, and keeps their bookkeeping as a spare. */
static void bufs_give(struct wsb_uring_leg *io) {
  struct wsb_uring *u = io->u;
  struct leg_bufs *b = io->b;
  if (b == NULL)
    return;
  io->b = NULL;
  wsb_buf_free(&b->held);
  buf_give(u, &b->out);
  buf_give(u, &b->fly);
  if (u->nspare_bufs < SPARES)
    u->spare_bufs[u->nspare_bufs++] = b;
  else
    free(b);
}

/* Gives the leg's buffers back once nothing is held, queued or being sent. */
static void bufs_settle(struct wsb_uring_leg *io) {
  if (io->b != NULL && !io->sending && held_len(io) == 0 && queued_len(io) == 0)
    bufs_give(io);
}

static void mark_dirty(struct wsb_uring_leg *io) {
  if (io->listed)
    return;
  io->listed = true;
  io->next_dirty = io->u->dirty;
  io->u->dirty = io;
}

static struct io_uring_sqe *get_sqe(struct wsb_uring *u) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (sqe == NULL) {
    io_uring_submit(&u->ring); /* a full queue goes now; the rest follows */
    sqe = io_uring_get_sqe(&u->ring);
  }
  return sqe;
}

static void arm_recv(struct wsb_uring_leg *io) {
  struct io_uring_sqe *sqe = get_sqe(io->u);
  if (sqe == NULL)
    return; /* cannot happen after a submit; the next resume tries again */
  io_uring_prep_recv_multishot(sqe, io->fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = BGID;
  io_uring_sqe_set_data(sqe, (void *)((uintptr_t)io | OP_RECV));
  io->recv_armed = true;
  io->ops++;
}

static void cancel_recv(struct wsb_uring_leg *io) {
  if (!io->recv_armed || io->cancel_queued)
    return;
  struct io_uring_sqe *sqe = get_sqe(io->u);
  if (sqe == NULL)
    return;
  io_uring_prep_cancel(sqe, (void *)((uintptr_t)io | OP_RECV), 0);
  /* Its own completion says nothing we need: none is posted unless it failed (then ignored). */
  io_uring_sqe_set_data(sqe, NULL);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io->cancel_queued = true;
}

/* The ring closes the socket of a leg released to be closed, after cancelling its receive (the
   same batch); a send still on its way keeps the socket until it ends, as close() would. */
static void close_socket(struct wsb_uring_leg *io) {
  if (!io->close_fd)
    return;
  io->close_fd = false;
  struct io_uring_sqe *sqe = get_sqe(io->u);
  if (sqe == NULL) {
    close(io->fd);
    return;
  }
  io_uring_prep_close(sqe, io->fd);
  io_uring_sqe_set_data(sqe, NULL); /* a close of a socket does not fail in a way we could help */
}

/* Notes a quick send to be settled after the system call that submits it; false without memory
   (the send then posts its completion as usual). */
static bool quick_add(struct wsb_uring *u, struct wsb_uring_leg *io) {
  if (u->nquick == u->quick_cap) {
    unsigned cap = u->quick_cap != 0 ? 2 * u->quick_cap : 64;
    struct wsb_uring_leg **q = realloc(u->quick, cap * sizeof(*q));
    if (q == NULL)
      return false;
    u->quick = q;
    u->quick_cap = cap;
  }
  u->quick[u->nquick++] = io;
  return true;
}

/*
 * Sends the leg's next bytes. A send of fresh bytes is quick: MSG_DONTWAIT makes it never wait
 * for room in the kernel (it fails with EAGAIN instead), MSG_WAITALL makes a short send a
 * failure that reports how much went, and a send that failed in no way posts no completion
 * (IOSQE_CQE_SKIP_SUCCESS). So it has ended, all sent or with a completion saying otherwise,
 * once the system call that submitted it returns, and the wait in that same system call is not
 * cut short by the echo's own completion: one io_uring_enter a wake instead of two or three.
 * The rest of a short send waits for room as before (and posts its completion): a full socket
 * is never polled in a loop.
 */
static void send_next(struct wsb_uring_leg *io) {
  struct wsb_uring *u = io->u;
  struct leg_bufs *b = io->b;
  if (io->sending || b == NULL)
    return;
  bool fresh = b->fly.len == 0;
  if (fresh) {
    if (b->out.len == 0)
      return;
    struct wsb_buf t = b->fly;
    b->fly = b->out;
    b->out = t;
  }
  struct io_uring_sqe *sqe = get_sqe(u);
  if (sqe == NULL)
    return;
  bool quick = fresh && u->quick_ok && quick_add(u, io);
  int flags = MSG_NOSIGNAL | (quick ? MSG_DONTWAIT | MSG_WAITALL : 0);
  io_uring_prep_send(sqe, io->fd, wsb_buf_data(&b->fly), b->fly.len, flags);
  io_uring_sqe_set_data(sqe, (void *)((uintptr_t)io | (quick ? OP_QUICK_SEND : OP_SEND)));
  if (quick)
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io->sending = true;
  io->ops++;
}

static void leg_io_free(struct wsb_uring_leg *io) {
  io->u->nlegs--;
  bufs_give(io);
  free(io);
}

/* Keeps bytes that arrived while the leg did not read, at most what one receive brings. */
static void hold(struct wsb_uring_leg *io, const uint8_t *data, size_t len) {
  if (bufs_take(io) == NULL || wsb_buf_append(&io->b->held, data, len) != 0)
    io->held_end = UV_ENOMEM;
}

/*
 * Gives bytes read to the session where a libuv read would have put them. Relaying reads into
 * the loop's buffer, so the ring's is passed as it is; a handshake reads into its head buffer,
 * so they are copied there, as much as it has room for each time, as successive reads would
 * bring them (the head may end inside them, and the rest then goes where the next state reads).
 * What comes after the leg stopped reading is held; after it was released, dropped with it.
 */
static void deliver(struct wsb_uring_leg *io, const uint8_t *data, size_t len) {
  while (len > 0 && io->leg != NULL) {
    struct wsb_leg *l = io->leg;
    if (!io->want_read) {
      hold(io, data, len);
      return;
    }
    uv_buf_t buf;
    wsb__session_read_buf(l, &buf);
    if (buf.base == (char *)l->s->w->read_buffer) {
      buf = wsb_write_buf(data, len);
      wsb__session_dispatch(l, (ssize_t)len, &buf);
      return;
    }
    if (buf.len == 0) { /* a full head buffer: what libuv reports for a read into no room */
      io->ended = true;
      wsb__session_dispatch(l, UV_ENOBUFS, &buf);
      return;
    }
    size_t n = len < buf.len ? len : buf.len;
    memcpy(buf.base, data, n);
    wsb__session_dispatch(l, (ssize_t)n, &buf);
    data += n;
    len -= n;
  }
}

/* Gives what was read while the leg did not read to the session, as a libuv read would. */
static void deliver_held(struct wsb_uring_leg *io) {
  while (io->leg != NULL && io->want_read && holds(io)) {
    if (held_len(io) > 0) {
      struct wsb_buf b = io->b->held;
      io->b->held = (struct wsb_buf){0};
      bufs_settle(io); /* before the session runs: it may release the leg */
      deliver(io, wsb_buf_data(&b), b.len);
      wsb_buf_free(&b);
    } else {
      int end = io->held_end;
      io->held_end = 0;
      io->ended = true;
      uv_buf_t none = uv_buf_init(NULL, 0);
      wsb__session_dispatch(io->leg, end, &none);
    }
  }
}

/* The leg reads and writes through its libuv stream again (reading there if it read here). */
static int to_libuv(struct wsb_leg *l) {
  bool reading = l->reading;
  wsb_uring_release(l);
  l->reading = false;
  return reading ? wsb__leg_start_reading(l) : 0;
}

/* Puts everything queued on the ring: held bytes delivered, receives armed, sends. */
static void flush_dirty(struct wsb_uring *u) {
  while (u->dirty != NULL) {
    struct wsb_uring_leg *io = u->dirty;
    u->dirty = io->next_dirty;
    io->listed = false;
    if (io->leg == NULL) {
      cancel_recv(io);
      close_socket(io);
      if (io->ops == 0)
        leg_io_free(io);
      continue;
    }
    deliver_held(io);
    if (io->leg == NULL) {
      mark_dirty(io); /* released while delivering: the next round cancels and frees */
      continue;
    }
    if (io->handback && !io->recv_armed && !holds(io)) {
      to_libuv(io->leg);
      continue;
    }
    if (io->want_read && !io->recv_armed && io->held_end == 0 && !io->ended && !io->handback)
      arm_recv(io);
    else if (!io->want_read)
      cancel_recv(io);
    send_next(io);
  }
}

static void on_recv(struct wsb_uring *u, struct wsb_uring_leg *io, const struct io_uring_cqe *c) {
  bool more = (c->flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    io->recv_armed = io->cancel_queued = false;
    io->ops--;
  }
  uint8_t *data = NULL;
  unsigned bid = 0;
  if (c->flags & IORING_CQE_F_BUFFER) {
    bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
    data = u->bufs + (size_t)bid * BUF_SIZE;
  }
  struct wsb_leg *l = io->leg;
  int res = c->res;
  if (res == -ENOBUFS || res == -ECANCELED)
    res = 0x7fffffff; /* nothing read: re-armed below if still wanted */
  else if (res == 0)
    res = UV_EOF;
  if (l != NULL && res != 0x7fffffff) {
    if (io->want_read && !holds(io) && res > 0) {
      deliver(io, data, (size_t)res);
    } else if (io->want_read && !holds(io)) {
      io->ended = true;
      uv_buf_t none = uv_buf_init(NULL, 0);
      wsb__session_dispatch(l, res, &none);
    } else if (res > 0) {
      hold(io, data, (size_t)res); /* stopped while this was on its way */
    } else {
      io->held_end = (int16_t)res;
    }
  }
  if (data != NULL) {
    io_uring_buf_ring_add(u->br, data, BUF_SIZE, (unsigned short)bid, io_uring_buf_ring_mask(NBUFS),
                          0);
    io_uring_buf_ring_advance(u->br, 1);
  }
  if (!more || (io->want_read && holds(io)))
    mark_dirty(io); /* re-armed, delivered or freed at the next flush */
}

/* A quick send that fell short (it posted a completion): no longer one to settle. */
static void quick_drop(struct wsb_uring *u, struct wsb_uring_leg *io) {
  for (unsigned i = 0; i < u->nquick; i++)
    if (u->quick[i] == io) {
      u->quick[i] = u->quick[--u->nquick];
      break;
    }
}

static void on_send(struct wsb_uring_leg *io, int res) {
  io->sending = false;
  io->ops--;
  struct wsb_leg *l = io->leg;
  if (l == NULL) {
    if (io->ops == 0)
      mark_dirty(io);
    return;
  }
  if (res == -EAGAIN || res == -EINTR)
    res = 0;
  struct leg_bufs *b = io->b; /* a send was in flight: the leg has its buffers */
  if (res < 0) {
    l->queued -= queued_len(io);
    buf_give(io->u, &b->fly);
    buf_give(io->u, &b->out);
    bufs_settle(io);
    wsb__session_written(l, res);
    return;
  }
  if ((size_t)res >= b->fly.len)
    buf_give(io->u, &b->fly);
  else
    wsb_buf_consume(&b->fly, (size_t)res);
  l->queued -= (size_t)res;
  if (queued_len(io) > 0)
    mark_dirty(io);
  bufs_settle(io);
  wsb__session_written(l, 0);
}

/* Handles every completion there is; returns how many. */
static unsigned reap(struct wsb_uring *u) {
  unsigned n = 0;
  /* Only what is posted (io_uring_peek_cqe would enter the kernel for deferred work, and under
     steady load never stop): the rounds of run() decide when to ask for more. */
  while (io_uring_cq_ready(&u->ring) > 0) {
    struct io_uring_cqe cqe = {0}, *c;
    unsigned head;
    io_uring_for_each_cqe(&u->ring, head, c) {
      cqe = *c;
      break;
    }
    io_uring_cq_advance(&u->ring, 1);
    n++;
    uintptr_t d = (uintptr_t)cqe.user_data;
    if (d == 0)
      continue;
    if ((d & OP_TAG) == OP_LOOP) {
      u->loop_ready = true;
      u->loop_armed = false;
      continue;
    }
    struct wsb_uring_leg *io = (struct wsb_uring_leg *)(d & ~(uintptr_t)OP_TAG);
    if ((d & OP_TAG) == OP_RECV) {
      on_recv(u, io, &cqe);
    } else {
      if ((d & OP_TAG) == OP_QUICK_SEND)
        quick_drop(u, io);
      on_send(io, cqe.res);
    }
  }
  return n;
}

/* Completion work the kernel holds for us (deferred receives) or CQEs it could not post. */
static bool kernel_work(struct wsb_uring *u) {
  return (IO_URING_READ_ONCE(*u->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) !=
         0;
}

/* Quick sends without a completion sent everything, once no submission is left in the queue
   (each one was issued, and with MSG_DONTWAIT ended, inside the system call that took it) and
   every completion was handled (reap: those that fell short left the list). A completion the
   kernel could not post yet (overflow) may be one of theirs: settled after the next wait. */
static void settle_quick(struct wsb_uring *u) {
  if (u->nquick == 0 || io_uring_sq_ready(&u->ring) > 0 ||
      (IO_URING_READ_ONCE(*u->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0)
    return;
  unsigned n = u->nquick;
  u->nquick = 0; /* on_send queues no send, so none is added meanwhile */
  for (unsigned i = 0; i < n; i++) {
    struct wsb_uring_leg *io = u->quick[i];
    on_send(io, (int)io->b->fly.len);
  }
}

/* Whether a quick send not settled yet has a session waiting for its end (a paused reader to
   resume, a close after the last bytes): it then may not be slept on, since its success posts
   no completion to wake the worker. */
static bool quick_awaited(const struct wsb_uring *u) {
  for (unsigned i = 0; i < u->nquick; i++) {
    const struct wsb_uring_leg *io = u->quick[i];
    if (io->leg != NULL && wsb__session_awaits_written(io->leg))
      return true;
  }
  return false;
}

/* Completions handled, quick sends settled, then what they queued is put on the ring. */
static void process(struct wsb_uring *u) {
  reap(u);
  settle_quick(u);
  flush_dirty(u);
}

/* Handles the completions posted, then submits what that queued (the sends of the echoes just
   read go out now, not a wait later), running the kernel's deferred completions in the same
   system call when there are any; again while that brought more, a few rounds. What is left is
   submitted by the next wait, which also runs the deferred work before it sleeps. */
static void run(struct wsb_uring *u) {
  for (int round = 0; round < ROUNDS; round++) {
    process(u);
    bool deferred = kernel_work(u);
    if (io_uring_sq_ready(&u->ring) == 0 && !deferred)
      return;
    if (deferred)
      io_uring_submit_and_get_events(&u->ring);
    else
      io_uring_submit(&u->ring);
  }
  process(u);
}

static void on_prepare(uv_prepare_t *h) {
  struct wsb_uring *u = h->data;
  if (u->in_pass)
    return; /* libuv polls without waiting; the ring's wait right after submits */
  if (u->dirty != NULL || kernel_work(u))
    run(u);
}

/* The worker's one system call a wake: submits everything queued (the sends of the last
   completions among it), runs the kernel's deferred completions and, when none is posted yet,
   sleeps until one is or libuv's next timer (timeout in ms, -1: none). Quick sends post
   nothing, so the echo just sent does not end the wait it shares a call with. */
static int wait_once(struct wsb_uring *u, int timeout) {
  /* A completion is there already (e.g. of a send in an early submission), or a quick send's
     end is awaited: submitted without sleeping, settled right after. */
  if (io_uring_cq_ready(&u->ring) > 0 || quick_awaited(u))
    return io_uring_submit_and_get_events(&u->ring);
  if (timeout < 0)
    return io_uring_submit_and_wait(&u->ring, 1);
  struct io_uring_cqe *c;
  struct __kernel_timespec ts = {.tv_sec = timeout / 1000,
                                 .tv_nsec = (long long)(timeout % 1000) * 1000000};
  return io_uring_submit_and_wait_timeout(&u->ring, &c, 1, &ts, NULL);
}

int wsb_uring_run(struct wsb_worker *w) {
  struct wsb_uring *u = w->uring;
  uv_loop_t *loop = &w->loop;
  if (u == NULL)
    return UV_ENOTSUP;
  u->loop_ready = true;
  for (;;) {
    if (u->loop_ready || uv_backend_timeout(loop) == 0) {
      u->loop_ready = false;
      u->in_pass = true;
      uv_run(loop, UV_RUN_NOWAIT);
      u->in_pass = false;
      if (!uv_loop_alive(loop))
        return 0;
    }
    if (!u->loop_armed) {
      /* One-shot, armed again after each pass: arming checks the descriptor, so events libuv
         left (level-triggered sockets it did not drain) fire it at once. */
      struct io_uring_sqe *sqe = get_sqe(u);
      if (sqe != NULL) {
        io_uring_prep_poll_add(sqe, uv_backend_fd(loop), POLLIN);
        io_uring_sqe_set_data(sqe, (void *)((uintptr_t)u | OP_LOOP));
        u->loop_armed = true;
      }
    }
    flush_dirty(u);
    int rc = wait_once(u, uv_backend_timeout(loop));
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) {
      /* Never seen; a wait that fails at once must not turn into a busy loop: libuv's own
         blocking wait instead (its sockets, signals and timers go on). */
      wsb_log_error("io_uring wait: %s", strerror(-rc));
      uv_run(loop, UV_RUN_ONCE);
      u->loop_ready = true;
    }
    process(u);
    uv_update_time(loop);
  }
}

/* Whether the ring has one posted completion now, without entering the kernel: its result. */
static bool posted(struct io_uring *ring, int *res) {
  struct io_uring_cqe *c;
  unsigned head;
  if (io_uring_cq_ready(ring) != 1)
    return false;
  io_uring_for_each_cqe(ring, head, c) {
    *res = c->res;
  }
  io_uring_cq_advance(ring, 1);
  return true;
}

/* Submits one quick send (as send_next does) of len bytes from p on fd; 0 or negative. */
static int probe_send(struct io_uring *ring, int fd, const uint8_t *p, size_t len) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
  if (sqe == NULL)
    return -EBUSY;
  io_uring_prep_send(sqe, fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | MSG_WAITALL);
  io_uring_sqe_set_data(sqe, NULL); /* a late completion is ignored by reap */
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  int rc = io_uring_submit(ring);
  return rc == 1 ? 0 : rc < 0 ? rc : -EIO;
}

/* Bytes waiting on a non-blocking socket, read and dropped. */
static size_t drain(int fd, uint8_t *scratch, size_t cap) {
  size_t total = 0;
  ssize_t n;
  while ((n = recv(fd, scratch, cap, MSG_DONTWAIT)) > 0)
    total += (size_t)n;
  return total;
}

/*
 * Quick sends are safe only where the kernel behaves as send_next counts on, so it is tried
 * on a socket pair before any leg relies on it: a send into a small socket buffer falls short
 * and posts at once how much went (not a bare EAGAIN: the bytes would go twice), a send into
 * the full buffer fails at once with EAGAIN (not a wait for room: the buffer would be reused
 * under it), and a send with room posts nothing and has sent everything when the submitting
 * system call returns. Anything else leaves every send posting its completion, as before.
 */
static bool quick_sends_work(struct io_uring *ring) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
    return false;
  uint8_t *p = calloc(1, PROBE_SIZE);
  int small = 4096, res = 0, sent = 0;
  bool ok = false, submitted = false;
  if (p != NULL && setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0) {
    submitted = true;
    ok = probe_send(ring, sv[0], p, PROBE_SIZE) == 0 && posted(ring, &sent) && sent > 0 &&
         sent < PROBE_SIZE && probe_send(ring, sv[0], p, PROBE_SIZE) == 0 && posted(ring, &res) &&
         res == -EAGAIN && drain(sv[1], p, PROBE_SIZE) == (size_t)sent &&
         probe_send(ring, sv[0], p, 64) == 0 && io_uring_cq_ready(ring) == 0 &&
         drain(sv[1], p, PROBE_SIZE) == 64;
  }
  close(sv[0]);
  close(sv[1]);
  /* Where the kernel did otherwise, a send may still hold the buffer (waiting for room that
     never comes): kept for good rather than freed under it. */
  if (ok || !submitted)
    free(p);
  return ok;
}

static int ring_setup(struct wsb_uring *u) {
  /* Completion work runs only when this process asks (no task work interrupting epoll_wait,
     which cost 40% of the waits an EINTR), and the kernel flags when there is some. */
  struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                                       IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
                              .cq_entries = CQ_ENTRIES};
  int rc = io_uring_queue_init_params(SQ_ENTRIES, &u->ring, &p);
  if (rc < 0)
    return rc;
  size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
  u->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  u->bufs = malloc((size_t)NBUFS * BUF_SIZE);
  if (u->br == MAP_FAILED || u->bufs == NULL) {
    rc = -ENOMEM;
  } else {
    io_uring_buf_ring_init(u->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uintptr_t)u->br, .ring_entries = NBUFS, .bgid = BGID};
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
  }
  if (rc < 0) {
    if (u->br != MAP_FAILED)
      munmap(u->br, ring_bytes);
    free(u->bufs);
    io_uring_queue_exit(&u->ring);
    return rc;
  }
  for (unsigned i = 0; i < NBUFS; i++)
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                          io_uring_buf_ring_mask(NBUFS), (int)i);
  io_uring_buf_ring_advance(u->br, NBUFS);
  u->quick_ok = (p.features & IORING_FEAT_CQE_SKIP) != 0 && quick_sends_work(&u->ring);
  return 0;
}

int wsb_uring_start(struct wsb_worker *w) {
  const char *mode = getenv("WSBAL_IO");
  bool forced = mode != NULL && strcmp(mode, "uring") == 0;
  if (mode != NULL && strcmp(mode, "epoll") == 0)
    return 0;
  if (mode != NULL && !forced && strcmp(mode, "auto") != 0 && *mode != '\0')
    wsb_log_warn("WSBAL_IO=%s is none of auto, epoll, uring: taken as auto", mode);
  struct wsb_uring *u = calloc(1, sizeof(*u));
  int rc = u == NULL ? -ENOMEM : ring_setup(u);
  if (rc < 0) {
    /* Old kernels (ENOSYS), io_uring_disabled or seccomp (EPERM), locked memory (ENOMEM). */
    if (forced)
      wsb_log_warn("WSBAL_IO=uring: io_uring unavailable (%s): relaying through epoll",
                   strerror(-rc));
    else
      wsb_log_info("io_uring unavailable (%s): relaying through epoll", strerror(-rc));
    free(u);
    return 0;
  }
  uv_prepare_init(&w->loop, &u->prepare);
  u->prepare.data = u;
  uv_prepare_start(&u->prepare, on_prepare);
  w->uring = u;
  wsb_log_debug("relaying through io_uring%s",
                u->quick_ok ? "" : " (sends post every completion: quick sends unsafe here)");
  return 0;
}

void wsb_uring_close(struct wsb_worker *w) {
  if (w->uring == NULL)
    return;
  uv_close((uv_handle_t *)&w->uring->prepare, NULL);
}

void wsb_uring_free(struct wsb_worker *w) {
  struct wsb_uring *u = w->uring;
  if (u == NULL)
    return;
  /* Released legs whose cancelled receives have not ended yet: every session is gone, so what
     still completes touches nothing but them. Bounded: a cancel ends at once. */
  for (int i = 0; i < 100 && u->nlegs > 0; i++) {
    run(u);
    struct io_uring_cqe *c;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
    if (u->nlegs > 0)
      io_uring_wait_cqe_timeout(&u->ring, &c, &ts);
  }
  io_uring_queue_exit(&u->ring);
  while (u->nspare > 0)
    free(u->spare[--u->nspare]);
  while (u->nspare_bufs > 0)
    free(u->spare_bufs[--u->nspare_bufs]);
  free(u->quick);
  munmap(u->br, NBUFS * sizeof(struct io_uring_buf));
  free(u->bufs);
  free(u);
  w->uring = NULL;
}

static int adopt(struct wsb_leg *l, bool in_libuv_epoll) {
  struct wsb_uring *u = l->s->w->uring;
  if (u == NULL || l->io != NULL || l->tls != NULL || !l->open || l->lingering || l->queued != 0 ||
      wsb__proxy_header_waiting(l))
    return UV_ENOTSUP;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&l->tcp, &fd) != 0)
    return UV_EBADF;
  struct wsb_uring_leg *io = calloc(1, sizeof(*io));
  if (io == NULL)
    return UV_ENOMEM;
  io->u = u;
  u->nlegs++;
  io->leg = l;
  io->fd = fd;
  l->io = io;
  if (l->reading) {
    uv_read_stop((uv_stream_t *)&l->tcp);
    io->want_read = true;
    mark_dirty(io);
  }
  /* libuv leaves a stopped descriptor in its epoll set until epoll reports it; the ring's reads
     drain the socket before libuv's next epoll_wait, so it never would, and every packet would
     wake a libuv pass that finds nothing. libuv adds it again if the leg goes back to it. */
  if (in_libuv_epoll)
    epoll_ctl(uv_backend_fd(&l->s->w->loop), EPOLL_CTL_DEL, fd, &(struct epoll_event){0});
  return 0;
}

int wsb_uring_adopt(struct wsb_leg *l) {
  return adopt(l, true);
}

int wsb_uring_adopt_new(struct wsb_leg *l) {
  return adopt(l, false);
}

void wsb_uring_release(struct wsb_leg *l) {
  struct wsb_uring_leg *io = l->io;
  if (io == NULL)
    return;
  l->io = NULL;
  io->leg = NULL;
  io->want_read = false;
  l->queued -= queued_len(io); /* lost with the connection, as libuv's would be */
  if (io->b != NULL)
    buf_give(io->u, &io->b->out); /* what is being sent is given back when its send ends */
  bufs_settle(io);
  mark_dirty(io);
}

bool wsb_uring_close_socket(struct wsb_leg *l) {
  struct wsb_uring_leg *io = l->io;
  if (io == NULL)
    return false;
  io->close_fd = true;
  wsb_uring_release(l);
  /* libuv's handle no longer has the descriptor, so uv_close neither removes it from libuv's
     epoll set (it never entered it, or wsb_uring_adopt removed it) nor closes it: the 2 system
     calls it would make are saved, and the close goes with the ring's next submission. libuv's
     stream close skips a descriptor of -1 (its watcher is not started while the ring has it). */
  l->tcp.io_watcher.fd = -1;
  return true;
}

void wsb_uring_read_start(struct wsb_leg *l) {
  struct wsb_uring_leg *io = l->io;
  io->want_read = true;
  if (!io->recv_armed || holds(io))
    mark_dirty(io);
}

void wsb_uring_read_stop(struct wsb_leg *l) {
  struct wsb_uring_leg *io = l->io;
  io->want_read = false;
  mark_dirty(io);
}

int wsb_uring_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  struct wsb_uring_leg *io = l->io;
  struct leg_bufs *b = bufs_take(io);
  if (b == NULL)
    return UV_ENOMEM;
  buf_take(io->u, &b->out);
  size_t added = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    if (wsb_buf_append(&b->out, bufs[i].base, bufs[i].len) != 0) {
      wsb_buf_drop_tail(&b->out, added); /* nothing partial stays queued */
      bufs_settle(io);
      return UV_ENOMEM;
    }
    added += bufs[i].len;
  }
  mark_dirty(io);
  return 0;
}

int wsb_uring_quiesce(struct wsb_leg *l) {
  struct wsb_uring_leg *io = l->io;
  if (io == NULL)
    return 0;
  struct wsb_uring *u = io->u;
  uintptr_t recv = (uintptr_t)io | OP_RECV;
  if (io->recv_armed) {
    struct io_uring_sync_cancel_reg reg = {.addr = recv, .timeout = {.tv_sec = -1, .tv_nsec = -1}};
    int rc = io_uring_register_sync_cancel(&u->ring, &reg);
    if (rc < 0 && rc != -ENOENT && rc != -EALREADY)
      return rc;
  }
  /* Deferred completions are posted first, so the scan below sees every receive's bytes. */
  io_uring_get_events(&u->ring);
  /* Bytes the receive took that the loop has not handled yet are in no state message. */
  bool unread = holds(io) || queued_len(io) > 0;
  unsigned head;
  struct io_uring_cqe *c;
  io_uring_for_each_cqe(&u->ring, head, c) {
    if ((uintptr_t)io_uring_cqe_get_data(c) == recv && c->res > 0)
      unread = true;
  }
  if (unread) {
    io->handback = true; /* what it read is handled first, then libuv reads */
    mark_dirty(io);
    return UV_EAGAIN;
  }
  return to_libuv(l);
}
