/* Placeholder until the module is written. */
int main(void) { return 77; }
