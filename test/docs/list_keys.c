/* Prints every configuration key the parser accepts, one "section key" line each. */
#include <stdio.h>

/*
 * The key table is private to common/config_keys.c and has no enumerator yet, so this file
 * includes it whole and reads the table itself. Once common/config_keys.h lists the keys
 * (wsb__cfg_key_count/wsb__cfg_key_name), include that header instead and call those two.
 */
#include "config_keys.c"

int main(void) {
  for (int sec = CFG_SEC_WSBAL; sec <= CFG_SEC_BACKEND; sec++)
    for (size_t i = 0; i < sections[sec].n; i++)
      printf("%s %s\n", cfg_section_name((enum cfg_section)sec), sections[sec].keys[i].name);
  return 0;
}
