/* The sd_notify protocol: one datagram to $NOTIFY_SOCKET per state change; silent without it. */
#ifndef WSB_NOTIFY_H
#define WSB_NOTIFY_H

/*
 * Sends "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...", or several of
 * them separated by newlines. Returns 0, 0 when not run by systemd, or
 * -errno when the socket is there but the message could not be sent.
 */
int wsb_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
