/* Dropping root after the listening sockets are bound. */
#ifndef WSB_PRIVILEGES_H
#define WSB_PRIVILEGES_H

#include <stddef.h>

/*
 * Becomes user and group (names or numbers; group NULL = the user's primary
 * group; both NULL = stay as we are): setgroups to the user's supplementary
 * groups, setresgid, setresuid, then checks that root cannot be regained;
 * nothing when the process runs as that user and group already.
 * Returns 0, or -errno with err saying what failed.
 */
int wsb_privileges_drop(const char *user, const char *group, char *err, size_t errlen);

#endif
