"""Starting the load generator for bench/delivery.py and bench/relay.py."""
import subprocess
import threading
import time


class TimedRun:
    """Starts COMMAND (its output appended to LOGFILE) and notes, to the
    millisecond whatever the caller's polling interval, when it exits:
    t0 is the start (time.monotonic()), exited_s the seconds until it exited
    (None while it runs), returncode its exit status."""

    def __init__(self, cmd, logfile):
        with open(logfile, "ab") as log:
            self.t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.exited_s = None
        self._waiter = threading.Thread(target=self._reap, daemon=True)
        self._waiter.start()

    def _reap(self):
        self.proc.wait()
        self.exited_s = time.monotonic() - self.t0

    @property
    def returncode(self):
        return self.proc.returncode

    def finish(self, deadline):
        """Waits for the exit until `deadline` (time.monotonic()), kills it
        if it is still running then, and returns its exit status."""
        self._waiter.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._waiter.is_alive():
            self.proc.kill()
            self._waiter.join()
        return self.proc.returncode
