/* Session hand-over between an old and a new worker in a binary upgrade (handover.c). */
#ifndef WSB_HANDOVER_H
#define WSB_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct sockaddr_un;

struct wsb_worker;

/* The address of the hand-over socket of master's worker in slot; returns its length. The
   new master connects to it too: it says READY once each of its workers accepts there. */
socklen_t wsb_handover_socket_name(struct sockaddr_un *sa, pid_t master, unsigned slot);

/* Every worker: listens for an old worker's sessions on the Unix socket named after its
   master and slot (abstract namespace, peers of this uid only). Returns 0 or a negative errno
   (the worker runs on; it just cannot receive). */
int wsb_handover_listen(struct wsb_worker *w);

/* An old worker: hands its movable sessions to the new master's worker (its slot modulo
   nworkers), now and then as more become movable, until none is left. */
void wsb_handover_begin(struct wsb_worker *w, pid_t master, uint32_t nworkers);

/* Both sides' handles and descriptors, at the worker's exit. */
void wsb_handover_close(struct wsb_worker *w);

#endif
