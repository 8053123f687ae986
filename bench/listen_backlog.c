/* LD_PRELOAD shim, for bench/run only: raises the backlog a program passes
 * to listen(2) to at least SOMAXCONN (the kernel then caps it at
 * net.core.somaxconn, as it does Tern's).
 *
 * OpenSMTPD 6.8 listens with a backlog of 5 (SMTPD_BACKLOG in smtpd.h).
 * smtp-source opens one connection per message, and its sessions end and
 * reconnect in step, so at 10 or 50 sessions most SYNs find the accept
 * queue full, are dropped, and are retransmitted by the client one second
 * later: OpenSMTPD then measured 7 messages per second at any concurrency,
 * which says more about the load generator than about the server. With
 * BENCH_OS_BACKLOG=0 bench/run measures it as shipped. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

int listen(int fd, int backlog) {
  static int (*real_listen)(int, int);
  if (!real_listen) real_listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
  return real_listen(fd, backlog < SOMAXCONN ? SOMAXCONN : backlog);
}
