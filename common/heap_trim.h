/* When to give the allocator's free heap back to the kernel: after memory was freed, not before. */
#ifndef WSB_HEAP_TRIM_H
#define WSB_HEAP_TRIM_H

#include <stdbool.h>
#include <stddef.h>

/* Free bytes that must have come back to the allocator since the last trim before another. */
#define WSB_HEAP_TRIM_SLACK (256 * 1024)

struct wsb_heap_trim {
  size_t low; /* least free heap seen since the last trim (or the start) */
  bool seen;  /* low holds a sample */
};

/*
 * One sample of the free heap the allocator holds (mallinfo2's fordblks): whether to trim now.
 * Due once it stands WSB_HEAP_TRIM_SLACK above its lowest point since the last trim: that much
 * was used and freed again, so it is resident. Free heap that only stays free (pages trimmed
 * before, or never touched) never makes it due, so a quiet process never trims.
 */
bool wsb_heap_trim_due(struct wsb_heap_trim *t, size_t free_now);

/* After a trim: free_after (the free heap then) is the new lowest point. */
void wsb_heap_trim_done(struct wsb_heap_trim *t, size_t free_after);

/* Samples the allocator and trims when due (a timer calls it; never per request). Returns
   whether it trimmed. */
bool wsb_heap_trim_tick(struct wsb_heap_trim *t);

#endif
