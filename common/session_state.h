/* A live session written down: the versioned, size-checked message a worker hands to another. */
#ifndef WSB_SESSION_STATE_H
#define WSB_SESSION_STATE_H

/*
 * Binary upgrade (SPEC.md "Binary upgrade without dropping sessions"): how the pieces meet.
 *
 * Listeners. The old master execs the program file at its own path (resolved once at start, as
 * nginx keeps argv[0]) with the same arguments and environment plus WSBAL_UPGRADE, which names
 * the inherited descriptors: the ready pipe, every listening socket with its address and worker
 * slot, and the admin listener. The new master takes an inherited socket for each address and
 * slot its own configuration still has, binds the rest, and closes the ones it does not want.
 * Passing them (not binding again with SO_REUSEPORT) keeps the connections waiting in their
 * accept queues and works after the old master dropped the privileges a low port needs.
 *
 * Ready or refusal. The new master writes one line into the ready pipe: "READY <pid>" once its
 * configuration loaded, its segment is mapped and every new worker reported ready, or
 * "REFUSE <why>" (bad configuration, a state version it does not read). End of file with no line
 * (a crash) or no line within 30 s (the old master then kills it) is a refusal too. On any
 * refusal the old master logs why and stays exactly as it was: it never stopped accepting.
 *
 * The segment. The new master maps a new segment of its own build's layout, filled from its
 * configuration; the old one is not handed over, because a new build may change its layout and
 * the old workers keep writing their counters into it until they exit. Least-connection counts
 * carry over with the sessions: a moved session takes its backend's count in the new segment
 * (as any new session does) and gives it back in the old one when the old worker forgets it.
 * Between the two, a session briefly counts in neither or both; selection tolerates that as it
 * tolerates workers' counts read at different instants.
 *
 * Workers meet. Each new worker listens on a Unix socket of its own, named after the new
 * master's pid and its slot in the abstract namespace, and accepts only peers with its own uid
 * (SO_PEERCRED). The READY line gives the old master the pid; it tells each old worker to stop
 * accepting and to hand its sessions to new worker (old slot mod new workers).
 *
 * When a session moves. In the relay state only, both legs plain TCP (a TLS leg's state lives in
 * OpenSSL and stays: those sessions drain), not in a failover, no close frame seen either way,
 * neither leg inside a frame (a frame streamed in part, stream_left != 0), and the message fits
 * WSB_STATE_MAX_BYTES. Between frames of a fragmented message is fine: the fragmentation state
 * travels. A session that cannot move yet is retried as frames end; one still unmovable after
 * shutdown_timeout ends as in a graceful stop.
 *
 * Compression. permessage-deflate travels as its negotiated parameters only (format 2), never as
 * a zlib stream: a zlib stream's window and dictionary are process memory no message can carry
 * portably. So a compressed session moves only with no_context_takeover both ways (what
 * compression_context_takeover = off negotiates, or what a client asked for itself), where every
 * message is compressed and inflated on its own, and only between compressed messages: a client
 * message compressed in several fragments holds a stream until its last one, which is "inside a
 * frame" here. With context takeover in either direction the session keeps a stream for its whole
 * life: it never moves and drains as a TLS one does. The encoder and the decoder both refuse such
 * a state (WSB_ESTATE), so no build can take one up as if it had no stream.
 *
 * After a move. The new worker answers each message with one byte: taken, or refused (another
 * format version, no room): refused sessions stay with the old worker. On "taken" the old worker
 * forgets the session without a close frame, a shutdown or an access-log line (its descriptors
 * close in this process only; the connections live on in the new one), gives back its backend's
 * count and frees it; the new worker writes the one access-log line, with the whole life, when
 * the session ends. A crash of the new worker loses only the session in flight: the old worker
 * keeps each session until its "taken" byte has come.
 *
 * The message. A 16-byte header (magic "WSBS", version, flags = 0, total length, reserved = 0)
 * then the fields below in a fixed order, little-endian, byte strings as a 32-bit length and the
 * bytes. A new field means a new version, appended after the last one. Times are Unix
 * milliseconds, since the two processes' loop clocks differ.
 *
 * Versions. Format 1 (the first release with binary upgrade) ends with the legs; format 2 adds
 * the permessage-deflate parameters (a flags byte: on, server and client no_context_takeover;
 * then server_max_window_bits) and the route's name. A build writes only its own version and
 * reads WSB_STATE_VERSION_MIN to WSB_STATE_VERSION: a format-1 message is read as it was meant,
 * compression off (a format-1 writer never moved a compressed session) and no route (the access
 * log line then has no route field, as before). The alternative, refusing it, would refuse every
 * binary upgrade from the release that writes format 1 (the new master checks the old one's
 * format before it says READY), leaving a restart that drops every session as the only way in;
 * reading it costs one version test in the walk. A version outside that range (a newer build
 * handing back to an older one, a rollback) is refused whole (WSB_ESTATE_VERSION): the new
 * master refuses the upgrade and the old one keeps serving.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pmd.h"

#define WSB_STATE_MAGIC       0x53425357u /* "WSBS" as it is on the wire */
#define WSB_STATE_VERSION     2
#define WSB_STATE_VERSION_MIN 1 /* the oldest format this build still reads */
#define WSB_STATE_HEADER_LEN  16
#define WSB_STATE_MAX_BYTES   (32u * 1024 * 1024) /* a whole message, header included */
#define WSB_STATE_NAME_MAX    127                 /* backend and pool names */
#define WSB_STATE_PROTO_MAX   1024                /* the subprotocol */
#define WSB_STATE_USED_MAX    8                   /* backends the access log names */
#define WSB_STATE_ROUTE_MAX   63                  /* a route name (route.h), 0 for none */

/* Bytes inside a message (decoding points into the input; nothing is copied). */
struct wsb_state_bytes {
  const uint8_t *p;
  uint32_t len;
};

enum { WSB_STATE_CLIENT, WSB_STATE_BACKEND, WSB_STATE_LEGS };

/* One leg between frames. */
struct wsb_state_leg {
  struct wsb_state_bytes pending; /* read but not forwarded: the start of the next frame */
  struct wsb_state_bytes queued;  /* to be written to this leg: the kernel has not taken it */
  struct wsb_state_bytes hold;    /* backend leg: fragments of an open message held back */
  uint64_t msg_len;               /* payload of the open fragmented message read so far */
  uint8_t open_opcode;            /* 0, or 1/2 while a fragmented message is open */
  bool partial_out;               /* part of an open message from this leg went out */
  bool ping_outstanding;          /* wsbal's keepalive ping awaits its pong */
  uint64_t last_rx_ms;            /* Unix ms: this leg last sent something */
  uint64_t ping_sent_ms;          /* Unix ms, when ping_outstanding */
};

struct wsb_state {
  uint64_t id;
  struct wsb_state_bytes pool;     /* names: slots differ between two segments */
  struct wsb_state_bytes backend;  /* the backend now serving it */
  struct wsb_state_bytes protocol; /* the subprotocol (len 0: none) */
  uint8_t nused;
  struct wsb_state_bytes used[WSB_STATE_USED_MAX]; /* backends used, in order, for the log */
  struct wsb_state_bytes head; /* the client's request head: a failover upgrades with it */
  uint32_t path_off, path_len, host_off, ua_off;
  uint16_t host_len, ua_len, path_strip;
  uint64_t started_ms, backend_since_ms, last_data_ms; /* Unix ms */
  uint64_t messages[2], bytes[2];                      /* client to backend, backend to client */
  uint32_t failovers;
  uint32_t connect_ms;
  bool admitted, backend_proven, backend_heard;
  /* Addresses: family 0 (unknown), 2 (IPv4, first 4 bytes) or 10 (IPv6). */
  uint8_t client_family, peer_family, local_family;
  uint16_t peer_port, local_port;
  uint8_t client_addr[16], peer_addr[16], local_addr[16];
  /* The failover window: client frames the backend has not answered yet. */
  struct wsb_state_bytes replay;
  uint32_t replay_open; /* bytes at its end of a client message not yet whole */
  uint32_t replay_seen; /* bytes at its front a lost backend had been sent */
  struct wsb_state_leg legs[WSB_STATE_LEGS];
  /* Format 2. */
  struct wsb_pmd_params pmd;    /* permessage-deflate with the client: on needs both no_takeover */
  struct wsb_state_bytes route; /* the route the upgrade took, for the access log (len 0: none) */
  uint16_t version;             /* decoding: the message's format; encoding always writes the
                                   current one */
};

/* Bytes the message for st takes, or 0 when it would pass WSB_STATE_MAX_BYTES. */
size_t wsb_session_state_size(const struct wsb_state *st);

/* Writes the message into out. Returns its length, or -E2BIG when it does not fit in cap or
   passes WSB_STATE_MAX_BYTES, or WSB_ESTATE when st breaks a rule the decoder checks. */
ssize_t wsb_session_state_encode(const struct wsb_state *st, uint8_t *out, size_t cap);

/* The total length a message's header announces: WSB_PARTIAL with fewer than
   WSB_STATE_HEADER_LEN bytes, WSB_ESTATE for a bad header, WSB_ESTATE_VERSION (a version outside
   WSB_STATE_VERSION_MIN..WSB_STATE_VERSION), -E2BIG. */
ssize_t wsb_session_state_peek(const uint8_t *buf, size_t len);

/* Reads one message from buf: st's byte strings point into buf; fields the message's version
   lacks are zero. Returns the bytes it took, WSB_PARTIAL while the message is not whole, or
   WSB_ESTATE, WSB_ESTATE_VERSION, -E2BIG (st is then unusable). */
ssize_t wsb_session_state_decode(struct wsb_state *st, const uint8_t *buf, size_t len);

#endif
