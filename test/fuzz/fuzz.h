/* What every fuzz target shares: the libFuzzer entry point and an invariant check that aborts. */
#ifndef WSB_FUZZ_H
#define WSB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts whatever NDEBUG says, so the replay test and libFuzzer both see a broken invariant. */
#define REQUIRE(cond)                                                              \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                     \
    }                                                                              \
  } while (0)

#endif
