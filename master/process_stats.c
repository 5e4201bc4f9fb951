/* The process_* metrics of the master and its workers, read from /proc/PID/{stat,limits,fd}. */
#include "process_stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One unsigned decimal field at *p, which then points past it and the blanks after it. */
static int field(const char **p, uint64_t *out) {
  const char *s = *p;
  if (*s < '0' || *s > '9')
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
    return -EINVAL;
  while (*end == ' ')
    end++;
  *out = v;
  *p = end;
  return 0;
}

/* Skips one field of any content (the state letter, a signed number). */
static int skip(const char **p) {
  const char *s = *p;
  if (*s == '\0' || *s == ' ' || *s == '\n')
    return -EINVAL;
  while (*s != '\0' && *s != ' ' && *s != '\n')
    s++;
  while (*s == ' ')
    s++;
  *p = s;
  return 0;
}

int wsb_proc_parse_stat(const char *text, struct wsb_proc_stat *out) {
  /* "pid (comm) state ...": comm is whatever the process named itself, ")" and spaces
     included, so the fields start after the last ")". */
  const char *p = strrchr(text, ')');
  if (p == NULL || p[1] != ' ')
    return -EINVAL;
  p += 2;
  /* Fields 3 (state) to 24 (rss), as proc(5) numbers them. */
  uint64_t v[25] = {0};
  for (int f = 3; f <= 24; f++) {
    int rc = f == 3 || f == 5 || f == 6 || f == 7 || f == 8 || (f >= 16 && f <= 19)
                 ? skip(&p) /* state, pids and signed numbers: not used */
                 : field(&p, &v[f]);
    if (rc != 0)
      return rc;
  }
  *out = (struct wsb_proc_stat){
      .utime = v[14], .stime = v[15], .starttime = v[22], .vsize = v[23], .rss = v[24]};
  return 0;
}

/* The line of text that starts with prefix, or NULL. */
static const char *line_starting(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *l = text; l != NULL && *l != '\0';) {
    if (strncmp(l, prefix, n) == 0)
      return l + n;
    l = strchr(l, '\n');
    if (l != NULL)
      l++;
  }
  return NULL;
}

int wsb_proc_parse_max_fds(const char *text, uint64_t *out) {
  const char *p = line_starting(text, "Max open files");
  if (p == NULL)
    return -ENOENT;
  while (*p == ' ')
    p++;
  if (strncmp(p, "unlimited", 9) == 0)
    return -ERANGE;
  return field(&p, out);
}

int wsb_proc_parse_btime(const char *text, uint64_t *out) {
  const char *p = line_starting(text, "btime ");
  return p != NULL && field(&p, out) == 0 ? 0 : -ENOENT;
}

/* Reads a small /proc file whole into buf (NUL-terminated); returns its length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t len = 0;
  ssize_t n;
  while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int rc = -errno;
      close(fd);
      return rc;
    }
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/* The boot time, read once: it does not change while the system runs. /proc/stat holds a
   line per CPU and interrupt counts before it, so it is read a line at a time. */
static uint64_t boot_time(void) {
  static uint64_t btime;
  if (btime != 0)
    return btime;
  FILE *f = fopen("/proc/stat", "re");
  if (f == NULL)
    return 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0 && wsb_proc_parse_btime(line, &btime) != 0)
    ;
  free(line);
  fclose(f);
  return btime;
}

/* The open descriptors of /proc/PID/fd: its size where the kernel gives the count there (Linux
   6.2 and later: 20,000 descriptors cost one stat, not 50 ms of listing), else its entries, "."
   and ".." aside, listed through the stream's one buffer. */
static bool count_fds(const char *dir, uint64_t *out) {
  struct stat st;
  if (stat(dir, &st) == 0 && st.st_size > 0) {
    *out = (uint64_t)st.st_size;
    return true;
  }
  DIR *d = opendir(dir);
  if (d == NULL)
    return false;
  uint64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  *out = n;
  return true;
}

int wsb_process_stats_read(pid_t pid, struct wsb_process_stats *out) {
  char path[64], buf[4096];
  struct wsb_proc_stat st;
  *out = (struct wsb_process_stats){0};
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  ssize_t n = read_small(path, buf, sizeof(buf));
  if (n < 0)
    return (int)n;
  if (wsb_proc_parse_stat(buf, &st) != 0)
    return -EINVAL;
  long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0)
    return -EINVAL;
  out->cpu_seconds = (double)(st.utime + st.stime) / (double)ticks;
  out->start_time = (double)boot_time() + (double)st.starttime / (double)ticks;
  out->virtual_bytes = st.vsize;
  out->resident_bytes = st.rss * (uint64_t)page;
  snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
  out->have_max_fds =
      read_small(path, buf, sizeof(buf)) > 0 && wsb_proc_parse_max_fds(buf, &out->max_fds) == 0;
  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  out->have_open_fds = count_fds(path, &out->open_fds);
  return 0;
}
