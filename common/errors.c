/* Names and messages for the project's error codes; -errno values fall back to libc. */
#include "errors.h"

#include <string.h>

/* libuv's UV_EOF, which workers meet on every closed connection; common/ does not include uv.h. */
#define WSB_UV_EOF (-4095)

const char *wsb_err_name(int err) {
  switch (err) {
#define WSB_XX(name, value, msg) \
  case WSB_##name:               \
    return "WSB_" #name;
    WSB_ERRNO_MAP(WSB_XX)
#undef WSB_XX
  case WSB_UV_EOF:
    return "EOF";
  }
  if (err < 0 && err > -4096) {
    const char *name = strerrorname_np(-err);
    if (name != NULL)
      return name;
  }
  return "UNKNOWN";
}

const char *wsb_strerror(int err) {
  switch (err) {
#define WSB_XX(name, value, msg) \
  case WSB_##name:               \
    return msg;
    WSB_ERRNO_MAP(WSB_XX)
#undef WSB_XX
  case WSB_UV_EOF:
    return "end of file";
  }
  if (err < 0 && err > -4096)
    return strerror(-err);
  return "unknown error";
}
