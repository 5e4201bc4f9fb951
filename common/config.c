/* Being written: see the module header. */
typedef int wsb_placeholder_t;
