/* Gives the free heap back to the kernel once a burst has freed it (see heap_trim.h). */
#include "heap_trim.h"

#include <malloc.h>
#include <time.h>

#include "log.h"

/*
 * Why: glibc returns freed memory to the kernel only from the top of the heap, and only past a
 * threshold that it raises to twice the largest block it ever freed from an mmap (the master's
 * 1.1 MB table copies at each reload: 2.3 MB). Free pages below live allocations, or under that
 * threshold, stay resident for good: the soak saw a worker's heap reach 8.8 MB with 1.7 MB in
 * use after a burst of reconnects, and the master's creep to 5.9 MB with 1.5 MB in use over
 * reloads and API lists. malloc_trim(0) gives back every whole free page (madvise), but it walks
 * every free chunk (about 1 ms for the master's 5.7 MB heap on a loaded 2-core machine): so only
 * from a timer, and only when this much was freed since the last time.
 */
bool wsb_heap_trim_due(struct wsb_heap_trim *t, size_t free_now) {
  if (!t->seen || free_now < t->low) {
    t->low = free_now;
    t->seen = true;
  }
  return free_now - t->low >= WSB_HEAP_TRIM_SLACK;
}

void wsb_heap_trim_done(struct wsb_heap_trim *t, size_t free_after) {
  t->low = free_after;
  t->seen = true;
}

bool wsb_heap_trim_tick(struct wsb_heap_trim *t) {
  struct mallinfo2 before = mallinfo2();
  if (!wsb_heap_trim_due(t, before.fordblks))
    return false;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  malloc_trim(0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  struct mallinfo2 after = mallinfo2();
  wsb_heap_trim_done(t, after.fordblks);
  wsb_log_debug("heap trimmed in %ld us: %zu KiB in use, %zu KiB free, heap %zu -> %zu KiB",
                (long)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000),
                after.uordblks / 1024, after.fordblks / 1024, before.arena / 1024,
                after.arena / 1024);
  return true;
}
