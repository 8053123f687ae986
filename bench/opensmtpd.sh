# OpenSMTPD for bench/run (sourced, not run).
#
# Debian's opensmtpd package cannot be installed beside postfix (both provide
# mail-transport-agent and conflict with it), so it is not installed: its
# .deb is fetched with `apt-get download` into build-bench/opensmtpd/ and
# unpacked there, and smtpd runs in a private mount namespace
# (unshare --mount) in which the paths compiled into it are bind mounts:
#
#   /etc/passwd, /etc/group  copies with its two users, opensmtpd and opensmtpq
#   /etc/resolv.conf         "lookup file bind" and a nameserver on loopback:
#                            its resolver (asr) asks DNS before /etc/hosts by
#                            default, and this machine's DNS server lets some
#                            queries time out, which stalled one connection
#                            in seventeen for 5 s on the reverse lookup of
#                            127.0.0.1 (Postfix asks /etc/hosts first)
#   /var/spool               scratch: its queue, /var/spool/smtpd
#   /var/lib                 scratch: its privilege-separation chroot
#   /usr/libexec             the package's own (mail.maildir)
#
# Its listen backlog of 5 is raised to SOMAXCONN by an LD_PRELOAD shim
# (bench/listen_backlog.c explains why) unless BENCH_OS_BACKLOG=0.
#
# Nothing of the machine changes. Its control socket is /run/smtpd.sock, so
# no other smtpd may run on the machine during the benchmark.
#
# Uses from bench/run: ROOT, S, PORT, RCPT, SINK_ADDR, log, port_busy, die.
# Sets OS_OK (1 when it runs), OS_NOTE (why not), OS_VERSION, OS_PID, OS_LOG,
# OS_SPOOL, OS_BACKLOG_NOTE.

OS_ADDR=127.0.0.34
OS_OK=0
OS_NOTE=
OS_VERSION=
OS_PID=
OS_LOG=
OS_SPOOL=
OS_DEB_DIR=$ROOT/build-bench/opensmtpd
OS_ROOT=$OS_DEB_DIR/root
OS_MAILDIR=$S/os/mail/bob
OS_PRELOAD=
OS_BACKLOG_NOTE="listen backlog 5, as shipped (BENCH_OS_BACKLOG=0)"
OS_UID=64001
OS_QUID=64002

# os_prepare: fetches and unpacks the package once, writes the passwd and
# group copies, and proves that smtpd starts in a namespace. Sets OS_OK=1, or
# OS_NOTE to the reason it cannot run here.
os_prepare() {
  if [ -e /run/smtpd.sock ]; then OS_NOTE="not measured: /run/smtpd.sock exists (another smtpd runs here)"; return 0; fi
  if port_busy $OS_ADDR; then OS_NOTE="not measured: $OS_ADDR:$PORT is already in use"; return 0; fi
  if [ ! -x "$OS_ROOT/usr/sbin/smtpd" ]; then
    log "OpenSMTPD: fetching Debian's opensmtpd package into $OS_DEB_DIR (unpacked, not installed)"
    rm -rf "$OS_DEB_DIR"
    mkdir -p "$OS_DEB_DIR"
    chmod 755 "$OS_DEB_DIR"   # apt-get download drops to user _apt where it can
    if ! (cd "$OS_DEB_DIR" && apt-get download -q opensmtpd >download.log 2>&1); then
      (cd "$OS_DEB_DIR" && apt-get update -q >/dev/null 2>&1 && apt-get download -q opensmtpd >download.log 2>&1) || {
        OS_NOTE="not measured: apt-get download opensmtpd failed ($(tail -1 "$OS_DEB_DIR/download.log"))"
        return 0
      }
    fi
    dpkg-deb -x "$OS_DEB_DIR"/opensmtpd_*.deb "$OS_ROOT" || { OS_NOTE="not measured: dpkg-deb could not unpack the package"; return 0; }
  fi
  local missing
  missing=$(ldd "$OS_ROOT/usr/sbin/smtpd" 2>/dev/null | awk '/not found/ {print $1}' | paste -sd' ')
  if [ -n "$missing" ]; then
    # Its libraries are ordinary Debian packages that conflict with nothing.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libevent-2.1-7 libdb5.3 >/dev/null 2>&1 || true
    missing=$(ldd "$OS_ROOT/usr/sbin/smtpd" 2>/dev/null | awk '/not found/ {print $1}' | paste -sd' ')
    [ -z "$missing" ] || { OS_NOTE="not measured: smtpd lacks the libraries $missing"; return 0; }
  fi
  OS_VERSION=$(dpkg-deb -f "$OS_DEB_DIR"/opensmtpd_*.deb Version 2>/dev/null || echo unknown)
  mkdir -p "$S/os"
  cp /etc/passwd "$S/os/passwd"
  cp /etc/group "$S/os/group"
  printf 'opensmtpd:x:%s:%s::/var/lib/opensmtpd/empty:/usr/sbin/nologin\nopensmtpq:x:%s:%s::/var/lib/opensmtpd/empty:/usr/sbin/nologin\n' \
    $OS_UID $OS_UID $OS_QUID $OS_QUID >>"$S/os/passwd"
  printf 'opensmtpd:x:%s:\nopensmtpq:x:%s:\n' $OS_UID $OS_QUID >>"$S/os/group"
  printf 'lookup file bind\nnameserver 127.0.0.1\n' >"$S/os/resolv.conf"
  if ! unshare --mount --propagation private true 2>/dev/null; then
    OS_NOTE="not measured: unshare --mount is not permitted here"
    return 0
  fi
  # One configuration for all three runs: example.test into bob's Maildir
  # as nobody (a virtual user), remote.test relayed to the sink. The receipt
  # run starts smtpd with delivery paused, so that it only accepts and
  # queues, as Tern does there.
  mkdir -p "$S/os/mail"
  chown nobody "$S/os/mail"
  cat >"$S/os/smtpd.conf" <<EOF
# Written by bench/run.
listen on $OS_ADDR port $PORT hostname os.example.test
# The latency run sends hundreds of messages over one connection; the
# default allows 100 per session (Tern and Postfix set no such limit).
smtp limit max-mails 100000
table vusers { "$RCPT" = "nobody" }
action "local" maildir "$OS_MAILDIR" virtual <vusers>
action "relay" relay host smtp://$SINK_ADDR:$PORT
match from src 127.0.0.0/8 for domain "example.test" action "local"
match from src 127.0.0.0/8 for domain "remote.test" action "relay"
EOF
  if [ "${BENCH_OS_BACKLOG:-1}" != 0 ]; then
    command -v cc >/dev/null || { OS_NOTE="not measured: no C compiler for bench/listen_backlog.c"; return 0; }
    cc -shared -fPIC -O2 -o "$S/os/listen_backlog.so" "$ROOT/bench/listen_backlog.c" \
      || { OS_NOTE="not measured: bench/listen_backlog.c did not compile"; return 0; }
    OS_PRELOAD=$S/os/listen_backlog.so
    OS_BACKLOG_NOTE="listen backlog raised from its built-in 5 to SOMAXCONN (LD_PRELOAD bench/listen_backlog.c; BENCH_OS_BACKLOG=0 for as shipped)"
  fi
  if ! "$OS_ROOT/usr/sbin/smtpd" -n -f "$S/os/smtpd.conf" >"$S/os/check.log" 2>&1; then
    OS_NOTE="not measured: smtpd -n rejects the configuration ($(tail -1 "$S/os/check.log"))"
    return 0
  fi
  OS_OK=1
}

# os_start MODE [SMTPD-ARGS...]: a fresh queue and log for MODE (receipt,
# delivery or relay), smtpd in its namespace on $OS_ADDR:$PORT. Waits (at most
# 30 s) until it listens; sets OS_PID (the parent smtpd; its children are the
# other processes), OS_LOG and OS_SPOOL.
os_start() {
  local mode=$1
  shift
  local d=$S/os/$mode
  rm -rf "$d"
  mkdir -p "$d/spool" "$d/varlib/opensmtpd/empty"
  OS_LOG=$d/smtpd.log
  OS_SPOOL=$d/spool/smtpd
  log "starting OpenSMTPD on $OS_ADDR:$PORT ($mode run${*:+, smtpd $*})"
  cat >"$d/start.sh" <<EOF
set -e
mount --bind $S/os/passwd /etc/passwd
mount --bind $S/os/group /etc/group
mount --bind $S/os/resolv.conf /etc/resolv.conf
mount --bind $d/spool /var/spool
mount --bind $d/varlib /var/lib
mount --bind $OS_ROOT/usr/libexec /usr/libexec
${OS_PRELOAD:+export LD_PRELOAD=$OS_PRELOAD}
exec $OS_ROOT/usr/sbin/smtpd -d -f $S/os/smtpd.conf "\$@"
EOF
  # The subshell execs unshare, which execs sh, which execs smtpd: OS_PID
  # is smtpd itself. Its descriptor limit is raised as Tern's is.
  (
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    exec unshare --mount --propagation private sh "$d/start.sh" "$@"
  ) >"$OS_LOG" 2>&1 &
  OS_PID=$!
  for _ in $(seq 1 300); do port_busy $OS_ADDR && break; kill -0 "$OS_PID" 2>/dev/null || break; sleep 0.1; done
  port_busy $OS_ADDR || { tail -5 "$OS_LOG" >&2; die "OpenSMTPD did not start"; }
}

# os_stop: TERM to the parent smtpd (it stops its children), KILL after 10 s.
os_stop() {
  if [ -n "$OS_PID" ] && kill -0 "$OS_PID" 2>/dev/null; then
    kill -TERM "$OS_PID"
    for _ in $(seq 1 100); do kill -0 "$OS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$OS_PID" 2>/dev/null && kill -KILL "$OS_PID"
    wait "$OS_PID" 2>/dev/null
  fi
  OS_PID=
  return 0
}

# Files in OpenSMTPD's queue (messages and envelopes, committed or still
# incoming).
os_queued() { find "$OS_SPOOL/queue" "$OS_SPOOL/incoming" -type f 2>/dev/null | wc -l; }
# Messages it committed: smtp-in logs "smtp message msgid=..." once each.
os_accepted() { grep -c " smtp message msgid=" "$OS_LOG" || true; }
# The PID of its SMTP process ("pony express"), where the sessions live.
os_pony_pid() { ps -o pid=,args= --ppid "$OS_PID" | awk '/pony express/ {print $1; exit}'; }
