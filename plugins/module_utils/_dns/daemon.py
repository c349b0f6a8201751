# This file is private to the wharf.network collection: its API may change at any time.
"""Run this host's resolver: its program, state file and process, under systemd or as a supervised daemon.

What ``container_dns`` converges, in one plan (so check mode reports exactly what a run does):

- the program: the package ``_dns/server/`` copied from the collection to ``STATE_DIR/server/`` beside its entry
  point ``STATE_DIR/server.py`` (the module reads its own copy through the module loader, which works inside
  Ansible's zip), run with the module's own interpreter;
- the state: ``STATE_DIR/state.json`` (``_dns.state.resolver_state``), written atomically;
- the process: where systemd is PID 1, a unit ``wharf-dns.service`` (Restart=always, ExecReload=SIGHUP); elsewhere
  a supervisor (``server.py supervise``: restarts the server if it dies, passes SIGHUP on) with a pidfile. A new
  state means a reload (SIGHUP: no restart, no query dropped), a new program or interpreter a restart, a dead
  resolver a start, no network needing one a stop. Nothing changed → nothing sent.

After a start, reload or restart the module waits for the resolver's status file to name the digest of the state
it just wrote; a resolver that does not come up or reports the state as broken fails the task with its message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pkgutil
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._dns.files import (
    container_files,
    plan_container_files,
    read_file,
    write_atomically,
)
from ansible_collections.wharf.network.plugins.module_utils._dns.server import FILES as SERVER_FILES
from ansible_collections.wharf.network.plugins.module_utils._dns.server import program as _server_program
from ansible_collections.wharf.network.plugins.module_utils._dns.state import (
    HostResolvConf,
    parse_resolv_conf,
    resolver_state,
)
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.plan import Plan
from ansible_collections.wharf.network.plugins.module_utils._kernel.files import state_path
from ansible_collections.wharf.network.plugins.module_utils._model.topology import (
    Topology,
    TopologyError,
    parse_topology,
)

STATE_DIR = state_path("dns")
UNIT_NAME = "wharf-dns.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 8.0  # longer than the supervisor waits for its server (server/program.py CHILD_STOP_TIMEOUT)


@dataclass(frozen=True)
class Paths:
    """Where the resolver's files live (a test or a lab may move them)."""

    state_dir: str = STATE_DIR

    @property
    def program(self) -> str:
        return os.path.join(self.state_dir, "server.py")

    @property
    def program_dir(self) -> str:
        """The program's package, beside its entry point ``program``."""
        return os.path.join(self.state_dir, "server")

    @property
    def state(self) -> str:
        return os.path.join(self.state_dir, "state.json")

    @property
    def status(self) -> str:
        return os.path.join(self.state_dir, "status.json")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.state_dir, "resolver.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.state_dir, "resolver.log")


# The program's entry point on the host, what the command lines and the unit run. Its package is beside it in
# server/, imported as `server`: the script's directory is put first on sys.path (Python does so for a script
# anyway, unless -P or PYTHONSAFEPATH says otherwise), and no bytecode is written there (the directory holds
# what the module wrote, nothing else; a rewritten file never meets a stale .pyc).
ENTRY_POINT = '''\
# written by wharf.network (container_dns): the embedded DNS resolver, its parts in server/ beside this file
"""wharf.network's embedded DNS resolver (see server/__init__.py).

    python server.py serve --state STATE.json --status STATUS.json
    python server.py supervise --state ... --status ... --pidfile PIDFILE [--daemonize --log LOG]
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server.program import main

raise SystemExit(main(os.path.abspath(__file__)))
'''


def program_files() -> dict[str, str]:
    """The resolver program as the host gets it, path relative to the state directory → text: the entry point
    ``server.py`` and the package ``_dns/server/`` as ``server/``, read from the collection (plain files or
    Ansible's module zip alike)."""
    # the program's main module is imported above so that Ansible ships the whole program in the module's zip (it
    # imports every other part of it); the files are read back from its package as text to copy them to the host
    package = _server_program.__package__
    files = {"server.py": ENTRY_POINT}
    for name in SERVER_FILES:
        data = pkgutil.get_data(package, name)
        if data is None:
            raise WharfError(f"cannot read the resolver program _dns/server/{name} from the collection")
        files[f"server/{name}"] = data.decode("utf-8")
    return files


def program_digest(files: dict[str, str]) -> str:
    """One digest of the whole program: its file names and their content."""
    return digest("".join(f"{name}\0{text}\0" for name, text in sorted(files.items())))


def write_program(paths: Paths, files: dict[str, str]) -> None:
    """Write the program: each file atomically, the package first and the entry point last; whatever else is in
    the package directory (a file an older version had) goes."""
    for name, text in sorted(files.items(), key=lambda item: item[0] == "server.py"):
        write_atomically(os.path.join(paths.state_dir, name), text, 0o755 if name == "server.py" else 0o644)
    ours = {name.partition("/")[2] for name in files if name.startswith("server/")}
    for name in sorted(set(os.listdir(paths.program_dir)) - ours):
        path = os.path.join(paths.program_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            _unlink(path)


def remove_program(paths: Paths) -> None:
    """Remove the entry point and the package beside it (both may already be gone)."""
    _unlink(paths.program)
    shutil.rmtree(paths.program_dir, ignore_errors=True)


def render_state(state: dict[str, Any]) -> str:
    """The state file's text: stable (sorted keys) so that the same topology gives the same bytes."""
    return json.dumps(state, sort_keys=True, indent=1) + "\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_unit(python: str, paths: Paths) -> str:
    """The systemd unit: systemd supervises the server itself (no supervisor process), SIGHUP reloads. The module
    starts it without enabling it: the topology's namespaces live under /run and the role rebuilds them after a
    reboot, so the resolver starts with them, never alone at boot."""
    command = shlex.join([python, paths.program, "serve", "--state", paths.state, "--status", paths.status])
    return (
        "# written by wharf.network (container_dns)\n"
        "[Unit]\n"
        "Description=wharf.network embedded DNS resolver for containers\n"
        "After=network.target\n"
        # the state lives under /run: after a reboot (no containers either) nothing starts until the role runs
        f"ConditionPathExists={paths.state}\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={command}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        "Restart=always\n"
        "RestartSec=1\n"
        # hardening: the resolver reads its state, writes its status next to it, enters each container's network
        # namespace to open its sockets there (setns: CAP_SYS_ADMIN, network namespaces only), binds port 53
        # (FREEBIND needs no capability; a receive buffer beyond rmem_max is silently capped) and sends UDP/TCP
        "NoNewPrivileges=yes\n"
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SYS_ADMIN\n"
        "ProtectSystem=strict\n"
        f"ReadWritePaths={paths.state_dir}\n"
        "ProtectHome=read-only\n"  # the interpreter may live in a virtualenv under /home or /root
        "PrivateTmp=yes\n"
        "PrivateDevices=yes\n"
        "ProtectKernelTunables=yes\n"
        "ProtectKernelModules=yes\n"
        "ProtectControlGroups=yes\n"
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"
        "RestrictNamespaces=net\n"
        "RestrictRealtime=yes\n"
        "LockPersonality=yes\n"
        "SystemCallArchitectures=native\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def systemd_is_init() -> bool:
    """sd_booted(): systemd is PID 1 when /run/systemd/system exists."""
    return os.path.isdir("/run/systemd/system")


def dnspython_missing() -> str | None:
    """None when this interpreter has dnspython 2.x; otherwise what to do about it."""
    try:
        import dns.version
    except ImportError:
        return (
            f"the resolver needs dnspython for {sys.executable}: on Debian/Ubuntu `apt install python3-dnspython`, "
            "elsewhere `pip install dnspython` (2.3 or later)"
        )
    if dns.version.MAJOR < 2 or (dns.version.MAJOR == 2 and dns.version.MINOR < 3):
        return f"the resolver needs dnspython 2.3 or later, {sys.executable} has {dns.version.version}"
    return None


@dataclass
class Resolver:
    """What is running now: the supervisor's (or unit's) pid, its command line, the state it loaded."""

    pid: int | None
    argv: list[str]
    loaded: str | None
    error: str | None
    listen: list[str] = field(default_factory=list)


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


# run(argv) -> (rc, stdout, stderr): AnsibleModule.run_command in the module, a stand-in in scripts and tests
Run = Callable[[list[str]], tuple[int, str, str]]


def observe(paths: Paths, systemd: bool, run: Run) -> Resolver:
    """The running resolver, if any: under systemd the unit's main pid, otherwise the pidfile's (checked to be
    our supervisor: a recycled pid of another program does not count)."""
    pid = None
    if systemd:
        out = run(["systemctl", "show", "--property=MainPID", "--value", UNIT_NAME])[1].strip()
        pid = int(out) if out.isdigit() and int(out) > 0 else None
    else:
        text = read_file(paths.pidfile)
        if text and text.strip().isdigit():
            pid = int(text.strip())
    argv = _cmdline(pid) if pid else []
    if pid and paths.program not in argv:
        pid, argv = None, []
    status = _read_status(paths)
    listen = status.get("listen")
    return Resolver(
        pid, argv, status.get("loaded"), status.get("error"), sorted(listen) if isinstance(listen, list) else []
    )


def _read_status(paths: Paths) -> dict[str, Any]:
    text = read_file(paths.status)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class DnsResult:
    """What a converge did (or would do)."""

    plan: Plan = field(default_factory=Plan)
    listen: list[str] = field(default_factory=list)
    views: int = 0
    clients: int = 0
    pid: int | None = None


class ResolverControl:
    """Start, reload, restart and stop the resolver, and wait until it runs the state just written."""

    def __init__(self, paths: Paths, systemd: bool, run: Run, python: str = sys.executable):
        self.paths = paths
        self.systemd = systemd
        self.run = run
        self.python = python
        self.pid: int | None = None

    def command(self, argv: list[str]) -> None:
        rc, out, err = self.run(argv)
        if rc != 0:
            raise WharfError(f"{' '.join(argv)} failed ({rc}): {err.strip() or out.strip()}")

    def systemctl(self, *args: str) -> None:
        self.command(["systemctl", *args])

    def start(self, want: str) -> None:
        if self.systemd:
            # started, not enabled: the containers (namespaces under /run) do not outlive a reboot either
            self.systemctl("daemon-reload")
            self.systemctl("start", UNIT_NAME)
            self.wait_loaded(want)
            return
        os.makedirs(self.paths.state_dir, mode=0o755, exist_ok=True)
        # the program daemonizes itself (fork, setsid, output to the log) and returns once its pidfile is written
        argv = [self.python, self.paths.program, "supervise", "--state", self.paths.state, "--status"]
        argv += [self.paths.status, "--pidfile", self.paths.pidfile, "--daemonize", "--log", self.paths.log]
        self.command(argv)
        text = (read_file(self.paths.pidfile) or "").strip()
        self.pid = int(text) if text.isdigit() else None
        self.wait_loaded(want)

    def reload(self, pid: int, want: str) -> None:
        since = time.time()
        if self.systemd:
            self.systemctl("reload", UNIT_NAME)
        else:
            os.kill(pid, signal.SIGHUP)
        self.pid = pid
        self.wait_loaded(want, since)

    def stop(self, pid: int | None) -> None:
        if self.systemd:
            self.systemctl("stop", UNIT_NAME)
            return
        if pid is None:
            return
        group = False  # the supervisor leads its own process group (setsid): its server is in it too
        with contextlib.suppress(OSError):
            group = os.getpgid(pid) == pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.02)
        if group:
            # whatever is left of the group (a server that outlived a killed supervisor would keep UDP :53 with
            # SO_REUSEADDR, answering from an old state): SIGKILL it; nothing left is ESRCH
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        elif _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def wait_loaded(self, want: str, since: float = 0.0) -> None:
        """Until the status file names ``want`` (the state's digest): the resolver answers from it. ``since``: a
        status written before then (wall clock) is the one before the reload, not its outcome."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            status = _read_status(self.paths)
            written = status.get("time")
            if since and not (isinstance(written, (int, float)) and written >= since):
                time.sleep(0.02)
                continue
            if status.get("loaded") == want and _alive(status.get("pid")):
                if status.get("error"):
                    raise WharfError(f"the resolver runs but reports: {status['error']}")
                return
            if status.get("error") and status.get("loaded") != want and _alive(status.get("pid")):
                raise WharfError(f"the resolver did not load the new state: {status['error']}")
            if self.pid is not None and not self.systemd and not _alive(self.pid):
                break
            time.sleep(0.02)
        tail = (read_file(self.paths.log) or "")[-1500:]
        raise WharfError(f"the resolver did not come up within {READY_TIMEOUT:g} s; its log ends: {tail}")


def _run(argv: list[str]) -> tuple[int, str, str]:
    raise WharfError(f"no way to run {argv[0]} was given")  # the module passes AnsibleModule.run_command


def _unlink(path: str) -> None:
    """Remove a file that may already be gone (the supervisor removes its own pidfile when it stops)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _rmdir(path: str) -> None:
    """Remove the state directory once empty (the supervisor may still be removing its pidfile)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _alive(pid: object) -> bool:
    return isinstance(pid, int) and _state_of(pid) not in ("Z", None)


def _state_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def dns_converge(
    topology: Any,
    host: str,
    check_mode: bool,
    resolv_conf: str = "/etc/resolv.conf",
    paths: Paths | None = None,
    netns_etc: str | None = None,
    result: DnsResult | None = None,
    run: Run | None = None,
    model: Topology | None = None,
) -> DnsResult:
    """Plan (and unless ``check_mode`` apply) the resolver and the per-container files of ``host``.

    Raises ValidationError before anything changes when the topology is invalid, a managed file would replace
    one wharf.network did not write, or dnspython is missing while a resolver is needed."""
    if model is None:  # `converge` passes the model it parsed already
        try:
            model = parse_topology(topology)
        except TopologyError as exc:
            raise ValidationError(list(exc.errors)) from None
    paths = paths or Paths()
    run = run or _run
    result = result if result is not None else DnsResult()
    host_resolv = parse_resolv_conf(read_file(resolv_conf) or "") if resolv_conf else HostResolvConf()
    state = resolver_state(model, host, host_resolv)
    result.listen, result.views, result.clients = state["listen"], len(state["views"]), len(state["clients"])
    plan = result.plan
    files_kwargs = {"root": netns_etc} if netns_etc else {}
    # like the namespaces themselves: a container the topology no longer declares keeps its files unless pruned
    declared = set(model.containers)
    errors = plan_container_files(
        container_files(model, host, host_resolv),
        plan,
        removable=lambda name: model.prune or model.state == "absent" or name in declared,
        **files_kwargs,
    )
    needed = bool(state["listen"]) and model.state == "present"
    if needed and (missing := dnspython_missing()):
        errors.append(missing)
    if errors:
        raise ValidationError(errors)

    systemd = systemd_is_init()
    running = observe(paths, systemd, run)
    control = ResolverControl(paths, systemd, run)
    if not needed:
        if running.pid is not None or (systemd and os.path.exists(UNIT_PATH)):
            plan.add("resolver", "wharf-dns", "delete", {"pid": running.pid}, None, lambda: control.stop(running.pid))
        for path in (
            paths.state,
            paths.program,
            paths.status,
            paths.pidfile,
            paths.log,
            UNIT_PATH if systemd else None,
        ):
            if path == paths.program:  # the program is its entry point and the package beside it, in one change
                if os.path.exists(path) or os.path.isdir(paths.program_dir):
                    plan.add("file", path, "delete", {"exists": True}, None, lambda: remove_program(paths))
            elif path and os.path.exists(path):
                plan.add("file", path, "delete", {"exists": True}, None, lambda p=path: _unlink(p))
        if systemd and os.path.exists(UNIT_PATH):
            plan.add("systemd", "units", "reload", None, None, lambda: control.systemctl("daemon-reload"))
        if os.path.isdir(paths.state_dir):
            plan.add("directory", paths.state_dir, "delete", {"exists": True}, None, lambda: _rmdir(paths.state_dir))
        if not check_mode:
            plan.apply()
        return result

    state_text = render_state(state)
    want = digest(state_text)
    program = program_files()
    old_state = read_file(paths.state)
    # one change for the whole program, named by its entry point (what the command lines run)
    program_changed = any(read_file(os.path.join(paths.state_dir, name)) != text for name, text in program.items())
    if program_changed:
        plan.add(
            "file",
            paths.program,
            "write",
            None,
            {"sha256": program_digest(program)[:16]},
            lambda: write_program(paths, program),
        )
    if old_state != state_text:
        before = None if old_state is None else {"content": old_state}
        plan.add(
            "file",
            paths.state,
            "write",
            before,
            {"content": state_text},
            lambda: write_atomically(paths.state, state_text),
        )
    unit_changed = False
    if systemd:
        unit = render_unit(sys.executable, paths)
        if read_file(UNIT_PATH) != unit:
            unit_changed = True
            plan.add("file", UNIT_PATH, "write", None, {"content": unit}, lambda: write_atomically(UNIT_PATH, unit))

    interpreter_changed = bool(running.argv) and running.argv[0] != sys.executable
    if running.pid is None:
        plan.add("resolver", "wharf-dns", "create", None, {"listen": state["listen"]}, lambda: control.start(want))
    elif program_changed or unit_changed or interpreter_changed:
        why = "program" if program_changed else "unit" if unit_changed else "interpreter"

        def restart() -> None:
            control.stop(running.pid)
            control.start(want)

        plan.add("resolver", "wharf-dns", "restart", {"pid": running.pid}, {"why": why}, restart)
    elif running.loaded != want or running.error or running.listen != sorted(state["listen"]):
        # also when it runs the right state but reports an error (an address it could not bind): the reload binds
        # again, and the task fails if the error persists, rather than report nothing to do without DNS
        pid = running.pid
        before = {"loaded": (running.loaded or "")[:16], "listen": running.listen}
        if running.error:
            before["error"] = running.error
        plan.add(
            "resolver",
            "wharf-dns",
            "reload",
            before,
            {"loaded": want[:16], "listen": sorted(state["listen"])},
            lambda: control.reload(pid, want),
        )
    if not check_mode:
        plan.apply()
    result.pid = control.pid or running.pid
    return result
