/* wsbal-load's readings of other processes (CPU time, PSS) and of the machine, from /proc. */
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "errors.h"

int wsb_load_watch_parse(const char *arg, struct wsb_load_watch_group *g) {
  const char *colon = strchr(arg, ':');
  if (colon == NULL || colon == arg || (size_t)(colon - arg) >= sizeof(g->label))
    return WSB_EVALUE;
  for (const char *q = arg; q < colon; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
          *q == '_' || *q == '-'))
      return WSB_EVALUE;
  memset(g, 0, sizeof(*g));
  memcpy(g->label, arg, (size_t)(colon - arg));
  const char *p = colon + 1;
  while (*p != '\0') {
    char *end;
    errno = 0;
    long pid = strtol(p, &end, 10);
    if (end == p || errno != 0 || pid <= 0 || pid > 0x3fffffff || g->npids == WSB_LOAD_WATCH_PIDS)
      return WSB_EVALUE;
    g->pids[g->npids++] = (int)pid;
    if (*end == ',')
      end++;
    else if (*end != '\0')
      return WSB_EVALUE;
    p = end;
  }
  return g->npids > 0 ? 0 : WSB_EVALUE;
}

static size_t read_small_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return n;
}

/*
 * utime and stime are fields 14 and 15 of /proc/PID/stat. The command name
 * (field 2) may hold spaces and parentheses, so counting starts after its
 * last ')'. They cover every thread of the process.
 */
static int read_cpu_ticks(int pid, uint64_t *ticks) {
  char path[64];
  char buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  if (read_small_file(path, buf, sizeof(buf)) == 0)
    return -ENOENT;
  const char *p = strrchr(buf, ')');
  if (p == NULL)
    return -EINVAL;
  p++;
  uint64_t utime = 0, stime = 0;
  /* After ')' come field 3 (state) onwards; utime is the 12th of those. */
  for (int field = 3; field <= 15; field++) {
    while (*p == ' ')
      p++;
    if (*p == '\0')
      return -EINVAL;
    if (field == 14)
      utime = strtoull(p, NULL, 10);
    if (field == 15)
      stime = strtoull(p, NULL, 10);
    while (*p != ' ' && *p != '\0')
      p++;
  }
  *ticks = utime + stime;
  return 0;
}

static int64_t read_pss_kb(int pid) {
  char path[64];
  char line[256];
  snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  int64_t kb = -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "Pss:", 4) == 0) {
      kb = strtoll(line + 4, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

static void read_machine(double out[8], double tck) {
  char buf[512];
  memset(out, 0, 8 * sizeof(out[0]));
  if (read_small_file("/proc/stat", buf, sizeof(buf)) == 0 || strncmp(buf, "cpu ", 4) != 0)
    return;
  char *p = buf + 4;
  for (int i = 0; i < 8; i++) {
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
      return;
    out[i] = (double)v / tck;
    p = end;
  }
}

void wsb_load_watch_take(const struct wsb_load_watch_group *groups, int ngroups,
                         struct wsb_load_watch_sample *s, uint64_t now_ns) {
  double tck = (double)sysconf(_SC_CLK_TCK);
  memset(s, 0, sizeof(*s));
  s->t_ns = now_ns;
  for (int g = 0; g < ngroups; g++) {
    uint64_t ticks = 0;
    int64_t pss = 0;
    for (int i = 0; i < groups[g].npids; i++) {
      uint64_t t;
      if (read_cpu_ticks(groups[g].pids[i], &t) != 0)
        continue;
      ticks += t;
      s->alive[g]++;
      int64_t kb = read_pss_kb(groups[g].pids[i]);
      if (kb < 0 || pss < 0)
        pss = -1;
      else
        pss += kb;
    }
    s->cpu_s[g] = (double)ticks / tck;
    s->pss_kb[g] = pss;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  s->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  read_machine(s->machine, tck);
}
