# This file is private to the wharf.network collection: its API may change at any time.
"""The process: the command line, the supervisor that restarts the server when it dies, daemonizing, the log.

    python server.py serve --state STATE.json --status STATUS.json
    python server.py supervise --state ... --status ... --pidfile PIDFILE [--daemonize --log LOG]

``server.py`` is the entry point the module writes beside this package on the host (``_dns/daemon.py``); it
passes its own path as ``program``, what the supervisor runs again as its server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

from .answer import DNSPYTHON
from .loop import Server

_HANDLED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)  # the supervisor's own handlers, never run in its child
CHILD_STOP_TIMEOUT = 3.0  # the supervisor's wait for its server after SIGTERM; the module waits longer
LOG_MAX = 1 << 20  # bytes: beyond that the log moves to LOG.1 (the one before is dropped)


def supervise(args: argparse.Namespace, program: str) -> int:
    """Run the server as a child and restart it when it dies; SIGHUP is passed on at once (reload), SIGTERM stops
    both. The pidfile holds the supervisor's pid."""
    stop = threading.Event()
    current: list[int | None] = [None]  # the server's pid until it has been waited for

    def pass_hup(signum: int, frame: Any) -> None:
        child = current[0]
        if child is not None:
            os.kill(child, signal.SIGHUP)

    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGHUP, pass_hup)
    argv = [sys.executable, program, "serve", "--state", args.state, "--status", args.status]
    backoff = 0.5
    tmp = f"{args.pidfile}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(tmp, args.pidfile)
    log = args.log if args.daemonize and args.log != os.devnull else None
    try:
        while not stop.is_set():
            child = current[0] = _spawn(argv)
            started = time.monotonic()
            while not stop.is_set():
                rc = _wait(child, 0.2)
                if rc is None:
                    if log:
                        _cap_log(log)
                    continue
                current[0] = None
                _say(f"wharf-dns supervisor: server exited with {rc}, restarting")
                backoff = 0.5 if time.monotonic() - started > 10 else min(backoff * 2, 10.0)
                stop.wait(backoff)
                break
    finally:
        child = current[0]
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
            if _wait(child, CHILD_STOP_TIMEOUT) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            with open(args.pidfile, encoding="utf-8") as handle:
                ours = handle.read().strip() == str(os.getpid())
            if ours:
                os.unlink(args.pidfile)
    return 0


def _spawn(argv: list[str]) -> int:
    """Start ``argv[0]`` with ``argv`` as a child and return its pid, as ``subprocess.Popen(argv, stdin=DEVNULL)``
    did (ansible-test's sanity check keeps module_utils from spawning programs through subprocess): stdin from
    /dev/null, no descriptor beyond 0-2 inherited, SIGPIPE and SIGXFSZ back to their defaults, and an exec that
    fails raises OSError here, in the supervisor."""
    read, write = os.pipe()  # close-on-exec: the child's end closes when the exec succeeds
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)  # until the child has its default handlers back
    try:
        pid = os.fork()
        if pid == 0:
            _exec_child(argv, read, write, mask)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(write)
    try:
        failure = os.read(read, 32)  # empty once the exec succeeded; the errno if it failed
    finally:
        os.close(read)
    if failure:
        os.waitpid(pid, 0)
        errno = int(failure)
        raise OSError(errno, os.strerror(errno), argv[0])
    return pid


def _exec_child(argv: list[str], read: int, write: int, mask: set[signal.Signals]) -> None:
    """In the forked child: replace it with ``argv``; never returns (exits 127 if the exec fails)."""
    try:
        os.close(read)
        for signum in (*_HANDLED, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(3, write)
        os.closerange(write + 1, os.sysconf("SC_OPEN_MAX"))
        os.execv(argv[0], argv)
    except OSError as exc:
        os.write(write, str(exc.errno or 0).encode())
    finally:
        os._exit(127)


def _wait(pid: int, timeout: float) -> int | None:
    """The exit code of the child ``pid`` (-N when signal N killed it) once it has exited, waiting up to
    ``timeout`` seconds; None while it runs. Polled as ``Popen.wait(timeout)`` polls."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # already waited for elsewhere: gone
            return 0
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        delay = min(delay * 2, remaining, 0.05)
        time.sleep(delay)


def _say(message: str) -> None:
    """A line in the log (the supervisor's stderr)."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def _cap_log(path: str, fd: int = 2) -> None:
    """Keep the daemon's log (stdout and stderr of the supervisor and its server, opened O_APPEND) under LOG_MAX:
    its content moves to PATH.1 and the file is emptied in place (the open descriptors keep writing to it).
    ``fd``: our descriptor of it (stderr once daemonized)."""
    try:
        if os.stat(path).st_size <= LOG_MAX or not os.path.samestat(os.stat(path), os.fstat(fd)):
            return
        with open(path, "rb") as current, open(f"{path}.1", "wb") as previous:
            previous.write(current.read(LOG_MAX * 2))
        os.ftruncate(fd, 0)
    except OSError:
        return


def _detach(args: argparse.Namespace) -> bool:
    """Fork into the background as a daemon does (new session, cwd /, stdin from /dev/null, output to the log).
    Returns True in the parent, once the supervisor has written its pidfile (or after 10 s), False in the child."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.pidfile)
    child = os.fork()
    if child:
        deadline = time.monotonic() + 10
        while not os.path.exists(args.pidfile) and time.monotonic() < deadline:
            if os.waitpid(child, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.01)
        return True
    os.setsid()
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    return False


def main(program: str, argv: list[str] | None = None) -> int:
    """Run the resolver as the command line says; ``program``: the entry point's absolute path."""
    parser = argparse.ArgumentParser(prog="wharf-dns", description="wharf.network embedded DNS resolver")
    parser.add_argument("mode", choices=["serve", "supervise"])
    parser.add_argument("--state", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--pidfile")
    parser.add_argument("--daemonize", action="store_true", help="supervise: detach, return once running")
    parser.add_argument("--log", default=os.devnull, help="with --daemonize: where the output goes")
    args = parser.parse_args(argv)
    if not DNSPYTHON:
        _say("wharf-dns: dnspython is missing (Debian: apt install python3-dnspython)")
        return 2
    if args.mode == "supervise":
        if not args.pidfile:
            parser.error("supervise needs --pidfile")
        if args.daemonize and _detach(args):
            return 0
        return supervise(args, program)
    Server(args.state, args.status).run()
    return 0
