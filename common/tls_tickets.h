/* TLS session ticket keys: the current one and the previous one, and how a rotation moves them. */
#ifndef WSB_TLS_TICKETS_H
#define WSB_TLS_TICKETS_H

#include <stdbool.h>
#include <stdint.h>

#define WSB_TICKET_NAME_LEN 16
#define WSB_TICKET_KEY_LEN  80 /* name (16), AES-256 key (32), HMAC-SHA256 key (32) */

/*
 * The keys every worker uses. current encrypts new tickets and decrypts; previous only decrypts,
 * so a ticket issued just before a rotation still resumes for one more interval, and one from
 * two rotations ago never does (its key is gone: forward secrecy for old sessions).
 */
struct wsb_ticket_keys {
  uint8_t current[WSB_TICKET_KEY_LEN];
  uint8_t previous[WSB_TICKET_KEY_LEN];
  bool has_previous;
};

/* What a ticket's key name finds. */
enum wsb_ticket_match {
  WSB_TICKET_UNKNOWN, /* no key: a full handshake */
  WSB_TICKET_CURRENT, /* resumes */
  WSB_TICKET_PREVIOUS /* resumes, and the client gets a new ticket under the current key */
};

/* The first keys: fresh becomes current, there is no previous. */
void wsb_ticket_keys_init(struct wsb_ticket_keys *k, const uint8_t fresh[WSB_TICKET_KEY_LEN]);

/* A rotation: current becomes previous (the old previous is forgotten), fresh becomes current. */
void wsb_ticket_keys_rotate(struct wsb_ticket_keys *k, const uint8_t fresh[WSB_TICKET_KEY_LEN]);

/* Which key has this name; *key (may be NULL) gets that key's 80 bytes. */
enum wsb_ticket_match wsb_ticket_keys_find(const struct wsb_ticket_keys *k,
                                           const uint8_t name[WSB_TICKET_NAME_LEN],
                                           const uint8_t **key);

#endif
