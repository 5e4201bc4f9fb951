/* Runs a fuzz target without libFuzzer: over the files (or directories of them) named, else over
 * seeded random mutations. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* xorshift64: deterministic, so a failing iteration can be rerun by its number. */
static uint64_t next_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return 1;
  }
  static uint8_t buf[1 << 20];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  /* A heap copy of exactly n bytes, so ASan catches reads past the end. */
  uint8_t *copy = malloc(n ? n : 1);
  memcpy(copy, buf, n);
  LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  return 0;
}

/* Every file of a corpus directory, in name order so a run is repeatable; returns how many. */
static int replay_dir(const char *dir) {
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort);
  if (n < 0) {
    perror(dir);
    return -1;
  }
  int replayed = 0, rc = 0;
  for (int i = 0; i < n; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      rc = replay_file(path);
      replayed++;
    }
    free(names[i]);
  }
  free(names);
  return rc != 0 ? -1 : replayed;
}

int main(int argc, char **argv) {
  unsigned long iterations = 10000;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  int files = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
      iterations = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      seed = strtoull(argv[++i], NULL, 0);
    else {
      struct stat st;
      if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
        int n = replay_dir(argv[i]);
        if (n <= 0) {
          fprintf(stderr, "%s: %s\n", argv[i], n == 0 ? "no inputs" : "replay failed");
          return 1;
        }
        printf("%s: %d inputs replayed\n", argv[i], n);
        files += n;
      } else {
        if (replay_file(argv[i]) != 0)
          return 1;
        files++;
      }
    }
  }
  if (files > 0)
    return 0;

  /* Random inputs biased towards the structure parsers meet: short, with bytes the
     grammar cares about, and mutations of the previous input so deep states are reached. */
  static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x08, 0x09, 0x0a, 0x80, 0x81, 0x82,
                                        0x7e, 0x7f, 0xff, '\r', '\n', ':',  ' ',  ','};
  uint8_t prev[4096] = {0};
  size_t prev_len = 0;
  for (unsigned long it = 0; it < iterations; it++) {
    size_t len = (size_t)(next_random(&seed) % 512);
    uint8_t *buf = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
      uint64_t r = next_random(&seed);
      if (i < prev_len && (r & 3) != 0)
        buf[i] = prev[i];
      else if (r & 4)
        buf[i] = interesting[(r >> 8) % sizeof(interesting)];
      else
        buf[i] = (uint8_t)(r >> 16);
    }
    LLVMFuzzerTestOneInput(buf, len);
    prev_len = len < sizeof(prev) ? len : sizeof(prev);
    memcpy(prev, buf, prev_len);
    free(buf);
  }
  printf("%lu inputs replayed\n", iterations);
  return 0;
}
