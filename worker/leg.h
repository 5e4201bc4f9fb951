/* A leg: one side of a session (client or backend), its socket, reading state and write queue. */
#ifndef WSB_LEG_H
#define WSB_LEG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buffer.h"
#include "frame.h"

struct wsb_session;
struct wsb_tls_leg;
struct wsb_uring_leg;

struct wsb_leg {
  uv_tcp_t tcp;
  struct wsb_tls_leg *tls;  /* NULL for plain ws */
  struct wsb_uring_leg *io; /* its I/O through the worker's io_uring (uring.c), else NULL */
  struct wsb_session *s;
  struct wsb_leg *peer;
  bool is_client;
  bool open;             /* tcp initialised and not yet closed */
  bool reading;          /* uv_read_start is in effect */
  bool paused;           /* reading stopped because the peer's queue is full */
  bool close_received;   /* a close frame came from this leg */
  bool close_sent;       /* a close frame was written to this leg */
  bool ping_outstanding; /* wsbal's keepalive ping awaits its pong */
  bool partial_out;      /* part of a message from this leg went out that cannot be repeated:
                            the session cannot move to another backend until it ends */
  bool stream_fin;       /* the frame being streamed ends its message */
  bool read_done;        /* the peer sent EOF or its connection failed: nothing more comes */
  bool lingering;        /* closed by wsbal: write side shut, the peer's bytes read and dropped */
  struct wsb_msg_state msg; /* fragmentation state of frames read from this leg */
  uint64_t stream_left;     /* payload bytes still to pass of a frame too large to hold */
  struct wsb_buf hold;      /* backend leg: fragments of an open message, passed on when it ends */
  uint8_t *pending;         /* incomplete frame read from this leg (NULL while idle) */
  uint32_t pending_len;
  uint32_t pending_cap;
  size_t queued;       /* bytes written to this leg that the kernel has not taken */
  uint64_t last_rx_ms; /* when this leg last sent us anything */
  uint64_t ping_sent_ms;
};

/* Bytes queued to a leg past which wsbal stops reading what fills that queue. */
#define LEG_QUEUE_HIGH_WATER (256 * 1024)
#define LEG_QUEUE_LOW_WATER  (64 * 1024)

/* Writing: try at once, queue only what the kernel did not take; a full queue pauses the peer.
   wsb__leg_write encrypts first on a TLS leg; wsb__leg_write_raw puts bytes on the socket as
   they are. The outcome of a queued write goes to wsb__session_written(). */
int wsb__leg_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
int wsb__leg_write_raw(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
/* A whole WebSocket frame of wsbal's own (masked towards a backend, as a client's must be). */
int wsb__leg_send_frame(struct wsb_leg *to, uint8_t opcode, const uint8_t *payload, size_t len);
/* A close frame, once per leg, and only between the frames already flowing into it. */
void wsb__leg_send_close(struct wsb_leg *to, uint16_t code, const char *reason);
/* May a frame of wsbal's own go into this leg now (between frames of the stream into it)? */
bool wsb__leg_can_inject(const struct wsb_leg *to);

/* Reading: what a leg reads goes to wsb__session_dispatch(). */
int wsb__leg_start_reading(struct wsb_leg *l);
void wsb__leg_stop_reading(struct wsb_leg *l);
/* Stops reading because the peer's queue is full; resume reads again unless the session ends. */
void wsb__leg_pause(struct wsb_leg *l);
void wsb__leg_resume(struct wsb_leg *l);
/* Bytes a client sent before its 101 wait, and reading pauses, until the relay starts. */
void wsb__leg_hold_early(struct wsb_leg *l, const uint8_t *data, size_t len);

/* Clears a backend leg's relay state before a new connection uses it. */
void wsb__leg_reset(struct wsb_leg *l);
/* Closes one leg at once, its unwritten bytes lost with it: the peer behind it is gone. */
void wsb__leg_lose(struct wsb_leg *l);
/* Closes the leg's handle (its session drops a reference when it has closed). */
void wsb__leg_close_now(struct wsb_leg *l);

static inline struct wsb_leg *wsb__leg_of(uv_handle_t *h) {
  return (struct wsb_leg *)h;
}

#endif
