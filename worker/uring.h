/* Socket I/O of plain WebSocket sessions through one io_uring per worker, driven by its libuv
   loop: from accept or connect on where the handshake allows, else from relay start. */
#ifndef WSB_URING_H
#define WSB_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct wsb_worker;
struct wsb_leg;
struct wsb_uring_leg;

#ifdef WSB_HAVE_URING
/* Sets the worker's ring up unless WSBAL_IO=epoll or the kernel refuses (then the legs stay on
   libuv streams); logs which. Returns 0 either way: the ring is an optimisation. */
int wsb_uring_start(struct wsb_worker *w);
/* Runs the worker's loop until it ends, waiting in the ring: 0, or UV_ENOTSUP when there is no
   ring (the caller runs libuv's loop as usual). */
int wsb_uring_run(struct wsb_worker *w);
/* Closes the ring's handles; the ring itself goes with wsb_uring_free once the loop ended. */
void wsb_uring_close(struct wsb_worker *w);
void wsb_uring_free(struct wsb_worker *w);
/* Moves a leg's reads and writes to the ring (nothing queued on its stream): 0 or negative. */
int wsb_uring_adopt(struct wsb_leg *l);
/* The same for a connection libuv has not read or written yet (just accepted or connecting):
   it was never in libuv's epoll set, so nothing is removed from it. */
int wsb_uring_adopt_new(struct wsb_leg *l);
/* The leg's socket closes or goes back to libuv: its reads are cancelled, unsent bytes lost. */
void wsb_uring_release(struct wsb_leg *l);
/* Releases a leg whose connection ends: the ring closes its socket, and its libuv handle is left
   without one, to be closed as usual (uv_close). False (nothing done) for a leg not on the ring. */
bool wsb_uring_close_socket(struct wsb_leg *l);
/* Hands a leg back to libuv for good, reading there if it read (a binary upgrade passes its
   socket on): UV_EAGAIN while bytes the ring read are not handled yet. */
int wsb_uring_quiesce(struct wsb_leg *l);
void wsb_uring_read_start(struct wsb_leg *l);
void wsb_uring_read_stop(struct wsb_leg *l);
/* Queues bytes, sent with the others of this loop iteration in one submission. */
int wsb_uring_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs);
#else
static inline int wsb_uring_start(struct wsb_worker *w) {
  (void)w;
  return 0;
}
static inline int wsb_uring_run(struct wsb_worker *w) {
  (void)w;
  return UV_ENOTSUP;
}
static inline void wsb_uring_close(struct wsb_worker *w) {
  (void)w;
}
static inline void wsb_uring_free(struct wsb_worker *w) {
  (void)w;
}
static inline int wsb_uring_adopt(struct wsb_leg *l) {
  (void)l;
  return -1;
}
static inline int wsb_uring_adopt_new(struct wsb_leg *l) {
  (void)l;
  return -1;
}
static inline void wsb_uring_release(struct wsb_leg *l) {
  (void)l;
}
static inline bool wsb_uring_close_socket(struct wsb_leg *l) {
  (void)l;
  return false;
}
static inline int wsb_uring_quiesce(struct wsb_leg *l) {
  (void)l;
  return 0;
}
static inline void wsb_uring_read_start(struct wsb_leg *l) {
  (void)l;
}
static inline void wsb_uring_read_stop(struct wsb_leg *l) {
  (void)l;
}
static inline int wsb_uring_write(struct wsb_leg *l, const uv_buf_t *bufs, unsigned nbufs) {
  (void)l, (void)bufs, (void)nbufs;
  return -1;
}
#endif

#endif
