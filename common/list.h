/* An intrusive doubly linked list: the node lives inside its owner, found back by container_of. */
#ifndef WSB_LIST_H
#define WSB_LIST_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Sessions, replay windows, TLS legs waiting for a drain and the echo server's
 * connections are each on a list they join and leave in O(1), without an
 * allocation: the owner embeds a node and the list links the nodes. A node
 * that is on no list has both links NULL; a zeroed list is empty.
 */
struct wsb_list_node {
  struct wsb_list_node *prev;
  struct wsb_list_node *next;
};

struct wsb_list {
  struct wsb_list_node *first;
  struct wsb_list_node *last;
};

/* The struct of type that holds ptr as its member. */
#define wsb_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline bool wsb_list_empty(const struct wsb_list *l) {
  return l->first == NULL;
}

/* Links n between prev and next, neighbours on l (NULL: that end of l). */
static inline void wsb__list_link(struct wsb_list *l, struct wsb_list_node *prev,
                                  struct wsb_list_node *n, struct wsb_list_node *next) {
  n->prev = prev;
  n->next = next;
  if (prev != NULL)
    prev->next = n;
  else
    l->first = n;
  if (next != NULL)
    next->prev = n;
  else
    l->last = n;
}

static inline void wsb_list_insert_head(struct wsb_list *l, struct wsb_list_node *n) {
  wsb__list_link(l, NULL, n, l->first);
}

static inline void wsb_list_insert_tail(struct wsb_list *l, struct wsb_list_node *n) {
  wsb__list_link(l, l->last, n, NULL);
}

/* n must be on l; afterwards both its links are NULL. */
static inline void wsb_list_remove(struct wsb_list *l, struct wsb_list_node *n) {
  if (n->prev != NULL)
    n->prev->next = n->next;
  else
    l->first = n->next;
  if (n->next != NULL)
    n->next->prev = n->prev;
  else
    l->last = n->prev;
  n->prev = n->next = NULL;
}

/* The owner of l's first node, of type holding the node as member; NULL when l is empty. */
#define WSB_LIST_FIRST(l, type, member) \
  ((l)->first != NULL ? wsb_container_of((l)->first, type, member) : NULL)

/*
 * Sets var (a pointer to the owners' type, declared by the caller) to each
 * owner on l, first to last. The body may remove, even free, the current
 * owner: the next node is read before the body runs, so that one must
 * stay on l until the body ends.
 */
#define WSB_LIST_EACH(var, l, member)                                            \
  for (struct wsb_list_node *var##_node_ = (l)->first, *var##_next_ = NULL;      \
       var##_node_ != NULL &&                                                    \
       (var##_next_ = var##_node_->next,                                         \
       (var) = wsb_container_of(var##_node_, __typeof__(*(var)), member), true); \
       var##_node_ = var##_next_)

#endif
