/* wsbal-echo's internal interfaces: the server context, its connections and the frame echo engine.
 */
#ifndef WSB_ECHO_H
#define WSB_ECHO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "frame.h"
#include "http.h"
#include "list.h"
#include "utf8.h"

/*
 * The per-loop read buffer. Echoed frames are laid out in place, and a piece
 * that starts a read (a payload continuing from the previous read, or a
 * control frame completed from the saved partial bytes) puts its header in the
 * headroom before the read data; the tailroom holds a close frame appended
 * after the last input byte.
 */
#define WSB_ECHO_READ_SIZE 65536
#define WSB_ECHO_HEADROOM  256
#define WSB_ECHO_TAILROOM  128

#define WSB_ECHO_HEAD_MAX             16384 /* larger request heads get 431 */
#define WSB_ECHO_HANDSHAKE_TIMEOUT_MS 10000
#define WSB_ECHO_LINGER_MS            5000 /* after our last frame, wait this long for the peer's EOF */
#define WSB_ECHO_HIGH_WATER           (1u << 20) /* queued output that pauses reading */
#define WSB_ECHO_LOW_WATER            (256u << 10)
#define WSB_ECHO_MAX_MESSAGE          (16u << 20)
#define WSB_ECHO_ID_MAX               128

/* One direction of the echo: the client's frames as they arrive. Starts zeroed. */
struct wsb_echo_ws {
  struct wsb_msg_state msg;
  struct wsb_utf8 utf8; /* over the whole text message being echoed */
  uint64_t remaining;   /* payload bytes of the current data frame still to arrive */
  uint64_t pos;         /* payload bytes of it already seen: the masking phase */
  uint8_t mask[4];
  uint8_t opcode;      /* WSB_OP_TEXT or WSB_OP_BINARY: the message being echoed */
  bool fin;            /* the current data frame ends its message */
  bool out_open;       /* a fragment of this message went out without FIN */
  uint16_t close_code; /* the code of the close frame that ended the echo, for the log */
  uint8_t partial_len;
  /* An incomplete header, or a control frame whose payload is still arriving. */
  uint8_t partial[WSB_FRAME_HEADER_MAX + WSB_CONTROL_PAYLOAD_MAX];
};

/* The echoed bytes of one read: a contiguous region of the read buffer; start == NULL when empty.
 */
struct wsb_echo_out {
  uint8_t *start;
  uint8_t *end;
};

#define WSB_ECHO_CLOSED 1 /* wsb_echo_ws_feed: the output ends with a close frame; stop echoing */

/*
 * Consumes len client bytes at buf: unmasks them in place and writes the
 * frames to send back (echoes, pongs, a close) into out, which lies inside
 * [buf - WSB_ECHO_HEADROOM, buf + len + WSB_ECHO_TAILROOM), so those bytes
 * must be writable. Data payloads go out as they arrive, one fragment per
 * read at most, so a message never has to be held whole. Returns 0 to go on
 * or WSB_ECHO_CLOSED once a close frame was produced (an answer to the
 * client's close, or 1002/1007/1009 for a bad frame); later bytes are ignored.
 */
int wsb_echo_ws_feed(struct wsb_echo_ws *ws, uint8_t *buf, size_t len, uint64_t max_message,
                     struct wsb_echo_out *out);

struct wsb_echo_conn;

/* The whole program's state; one per process, reached from the loop's data pointer. */
struct wsb_echo_server {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint;
  uv_signal_t sigterm;
  struct wsb_list conns; /* every connection not yet freed */
  uint64_t sessions;     /* live WebSocket sessions, as /metric reports them */
  uint64_t max_message;
  char id[WSB_ECHO_ID_MAX + 1];
  struct wsb_http_head head; /* for request heads that arrive in one read */
  uint8_t rbuf[WSB_ECHO_HEADROOM + WSB_ECHO_READ_SIZE + WSB_ECHO_TAILROOM];
};

/* Accepts one pending connection on the listener and starts reading its request. */
void wsb_echo_conn_accept(struct wsb_echo_server *srv);

/* Closes every connection at once (on SIGINT/SIGTERM); memory goes in their close callbacks. */
void wsb_echo_conn_close_all(struct wsb_echo_server *srv);

#endif
