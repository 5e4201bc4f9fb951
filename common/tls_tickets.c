/* TLS session ticket keys: the current one and the previous one, and how a rotation moves them. */
#include "tls_tickets.h"

#include <string.h>

void wsb_ticket_keys_init(struct wsb_ticket_keys *k, const uint8_t fresh[WSB_TICKET_KEY_LEN]) {
  memset(k, 0, sizeof(*k));
  memcpy(k->current, fresh, WSB_TICKET_KEY_LEN);
}

void wsb_ticket_keys_rotate(struct wsb_ticket_keys *k, const uint8_t fresh[WSB_TICKET_KEY_LEN]) {
  memcpy(k->previous, k->current, WSB_TICKET_KEY_LEN);
  k->has_previous = true;
  memcpy(k->current, fresh, WSB_TICKET_KEY_LEN);
}

enum wsb_ticket_match wsb_ticket_keys_find(const struct wsb_ticket_keys *k,
                                           const uint8_t name[WSB_TICKET_NAME_LEN],
                                           const uint8_t **key) {
  const uint8_t *found = NULL;
  enum wsb_ticket_match m = WSB_TICKET_UNKNOWN;
  if (memcmp(name, k->current, WSB_TICKET_NAME_LEN) == 0) {
    found = k->current;
    m = WSB_TICKET_CURRENT;
  } else if (k->has_previous && memcmp(name, k->previous, WSB_TICKET_NAME_LEN) == 0) {
    found = k->previous;
    m = WSB_TICKET_PREVIOUS;
  }
  if (key != NULL)
    *key = found;
  return m;
}
