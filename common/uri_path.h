/* The request target's path made canonical before it is matched and forwarded (RFC 3986 5.2.4). */
#ifndef WSB_URI_PATH_H
#define WSB_URI_PATH_H

#include <sys/types.h>

#include "http.h"

/*
 * Checks the path of an origin-form request target ("/a/b?q": it starts with '/'; the query,
 * from the first '?', is never looked at nor changed). Returns 0 when the path is already
 * canonical, 1 when it holds dot segments to remove, or WSB_EPATH when it must be refused:
 * a '#' anywhere in the target, a backslash, an encoded '/', '\' or NUL (%2f, %5c, %00), a '%'
 * without two hex digits, a dot segment followed by ';' parameters ("..;"), or a ".." that
 * would climb above the root. A dot segment is ".", "..", or either spelled with %2e/%2E.
 */
int wsb_uri_path_check(struct wsb_slice target);

/*
 * Writes target with its dot segments removed (RFC 3986 5.2.4: "/a/./b/../c" is "/a/c", a
 * trailing "/." or "/.." leaves a trailing '/') to out, which must hold target.len bytes: the
 * result is never longer. Every other byte, percent-encodings included, is copied as it is.
 * Returns the length written, or WSB_EPATH as wsb_uri_path_check() does.
 */
ssize_t wsb_uri_path_normalize(struct wsb_slice target, char *out);

#endif
