/* The process_* metrics of the master and its workers, read from /proc/PID/{stat,limits,fd}. */
#ifndef WSB_PROCESS_STATS_H
#define WSB_PROCESS_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One process as Prometheus client libraries describe it (process_*). */
struct wsb_process_stats {
  double cpu_seconds; /* user + system */
  double start_time;  /* seconds since the epoch */
  uint64_t resident_bytes;
  uint64_t virtual_bytes;
  uint64_t open_fds;
  uint64_t max_fds;   /* the soft limit (RLIMIT_NOFILE) */
  bool have_max_fds;  /* false when unlimited or unreadable */
  bool have_open_fds; /* false when /proc/PID/fd cannot be read */
};

/* The fields of /proc/PID/stat the metrics use, in the kernel's units. */
struct wsb_proc_stat {
  uint64_t utime, stime; /* clock ticks */
  uint64_t starttime;    /* clock ticks after boot */
  uint64_t vsize;        /* bytes */
  uint64_t rss;          /* pages */
};

/* Parses /proc/PID/stat's text (its command name may hold spaces and parentheses): 0, or
   -EINVAL when a field is missing or not a number. */
int wsb_proc_parse_stat(const char *text, struct wsb_proc_stat *out);

/* The soft limit of "Max open files" in /proc/PID/limits' text: 0, -ENOENT without that line,
   -ERANGE when it is "unlimited", -EINVAL when it is not a number. */
int wsb_proc_parse_max_fds(const char *text, uint64_t *out);

/* The boot time (seconds since the epoch) in /proc/stat's text: 0 or -ENOENT. */
int wsb_proc_parse_btime(const char *text, uint64_t *out);

/* Reads one process's figures. Returns 0, or a negative errno when its stat cannot be read
   (it exited, or /proc is not there); open and max fds may be missing alone. Counts the
   entries of /proc/PID/fd without an allocation per descriptor. */
int wsb_process_stats_read(pid_t pid, struct wsb_process_stats *out);

#endif
