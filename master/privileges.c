/* Giving up root for good: groups first, then the group ids, then the user ids. */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int lookup_group(const char *name, gid_t *gid) {
  struct group *g = getgrnam(name);
  if (g != NULL) {
    *gid = g->gr_gid;
    return 0;
  }
  char *end;
  unsigned long n = strtoul(name, &end, 10);
  if (*name == '\0' || *end != '\0')
    return -ENOENT;
  *gid = (gid_t)n;
  return 0;
}

int wsb_privileges_drop(const char *user, const char *group, char *err, size_t errlen) {
  if (user == NULL && group == NULL)
    return 0;
  if (user == NULL) { /* the configuration refuses it: root with another group drops nothing */
    snprintf(err, errlen, "[wsbal] group %s without [wsbal] user: not a privilege drop", group);
    return -EINVAL;
  }
  uid_t uid = getuid();
  gid_t gid = getgid();
  const char *user_name = NULL;
  if (user != NULL) {
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
      snprintf(err, errlen, "[wsbal] user %s: no such user", user);
      return -ENOENT;
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    user_name = pw->pw_name;
  }
  if (group != NULL && lookup_group(group, &gid) != 0) {
    snprintf(err, errlen, "[wsbal] group %s: no such group", group);
    return -ENOENT;
  }
  /* Started as that user already (systemd's User=wsbal): nothing to give up, and initgroups
     would fail without CAP_SETGID. */
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (getresuid(&ruid, &euid, &suid) == 0 && getresgid(&rgid, &egid, &sgid) == 0 && ruid == uid &&
      euid == uid && suid == uid && rgid == gid && egid == gid && sgid == gid)
    return 0;
  /* Supplementary groups go first: once the ids change, we could no longer set them. */
  int rc = user_name != NULL ? initgroups(user_name, gid) : setgroups(1, &gid);
  if (rc != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
    rc = -errno;
    snprintf(err, errlen, "cannot become %s:%s: %s", user ? user : "-", group ? group : "-",
             strerror(errno));
    return rc;
  }
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    snprintf(err, errlen, "root could be regained after dropping to uid %u", (unsigned)uid);
    return -EPERM;
  }
  return 0;
}
