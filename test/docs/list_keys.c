/* Prints every configuration key the parser accepts, one "section key" line each. */
#include <stdio.h>

#include "config_keys.h"

int main(void) {
  for (int sec = CFG_SEC_WSBAL; sec < CFG_SEC_NONE; sec++)
    for (size_t i = 0; sec != CFG_SEC_POOL && i < wsb__cfg_key_count((enum cfg_section)sec); i++)
      printf("%s %s\n", wsb__cfg_section_name((enum cfg_section)sec),
             wsb__cfg_key_name((enum cfg_section)sec, i));
  return 0;
}
