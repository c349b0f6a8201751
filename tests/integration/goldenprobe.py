"""Everything a sandbox host holds, read from inside it in one process, for the golden tests.

    python goldenprobe.py [--fdb]

prints one JSON object: the network namespaces pinned in /run/netns; per namespace (the host's own as "")
what `ip -d -j link / addr / route / neigh` show (and with --fdb `bridge -j fdb` of the host); each
container's UTS hostname (read through its pin in /run/wharf/uts); every file and directory under
/run/wharf, /etc/netns and /run/netns (nsfs pins marked, not read); the nftables tables and their
listings; the host sysctls the collection sets; the processes in the host's network namespace.
Raw, as the kernel and the files give it: test_golden.py masks and normalises. One process and one `ip`
per namespace (with -batch), because 250 namespaces probed with a command each would take most of the
test's time. Standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys

CLONE_NEWUTS = 0x04000000
TREES = ("/run/wharf", "/etc/netns", "/run/netns")
SYSCTLS = ("net.ipv4.ip_forward",)
_libc = ctypes.CDLL(None, use_errno=True)


def ip_batch(namespace: str, commands: list[str]) -> list[object]:
    """Several `ip -d -j` commands in one process; their JSON documents come back in order."""
    argv = ["ip", *(["-n", namespace] if namespace else []), "-d", "-j", "-batch", "-"]
    out = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True, text=True, check=True).stdout
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while index < len(out):
        if out[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(out, index)
        documents.append(document)
    if len(documents) != len(commands):
        raise SystemExit(f"ip -batch in {namespace or 'the host'}: {len(documents)} answers to {len(commands)}")
    return documents


def kernel(namespace: str) -> dict[str, object]:
    link, addr, route, neigh = ip_batch(namespace, ["link show", "addr show", "route show", "neigh show"])
    return {"link": link, "addr": addr, "route": route, "neigh": neigh}


def hostname_of(pin: str) -> str:
    """The UTS hostname behind a pin: this process enters it and comes back (single-threaded, so allowed)."""
    home = os.open("/proc/self/ns/uts", os.O_RDONLY)
    target = os.open(pin, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWUTS) != 0:
            raise OSError(ctypes.get_errno(), f"setns {pin}")
        return os.uname().nodename
    finally:
        _libc.setns(home, CLONE_NEWUTS)
        os.close(home)
        os.close(target)


def nsfs_mounts() -> set[str]:
    """Mount points of namespace pins (file system type nsfs): files to name, not to read."""
    found = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if fields[fields.index("-") + 1] == "nsfs":
                found.add(fields[4].encode().decode("unicode_escape"))
    return found


def files() -> dict[str, dict[str, object]]:
    pins = nsfs_mounts()
    found: dict[str, dict[str, object]] = {}
    for tree in TREES:
        for directory, subdirs, names in os.walk(tree):
            subdirs.sort()
            if directory != tree:
                found[directory + "/"] = {"mode": f"{stat.S_IMODE(os.stat(directory).st_mode):04o}"}
            for name in sorted(names):
                path = os.path.join(directory, name)
                info = os.stat(path)
                entry: dict[str, object] = {"mode": f"{stat.S_IMODE(info.st_mode):04o}"}
                if path in pins:
                    entry["nsfs"] = True
                else:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        entry["content"] = handle.read()
                found[path] = entry
    return found


def nft() -> dict[str, str | None]:
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    listings: dict[str, str | None] = {"tables": tables}
    for line in tables.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            name = f"{words[1]} {words[2]}"
            argv = ["nft", "list", "table", words[1], words[2]]
            listing = subprocess.run(argv, capture_output=True, text=True, check=False)
            listings[name] = listing.stdout if listing.returncode == 0 else None
    return listings


def processes() -> list[str]:
    """Command lines of the processes in this network namespace, this probe and its callers left out."""
    own = os.readlink("/proc/self/ns/net")
    mine, pid = set(), os.getpid()
    while pid > 1:
        mine.add(pid)
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") != own:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
        found.append(" ".join(part.decode(errors="replace") for part in argv if part))
    return sorted(found)


def main() -> None:
    with_fdb = "--fdb" in sys.argv[1:]
    names = sorted(n for n in os.listdir("/run/netns") if not n.startswith("."))
    namespaces = {"": kernel("")}
    if with_fdb:
        fdb = subprocess.run(["bridge", "-j", "fdb", "show"], capture_output=True, text=True, check=True).stdout
        namespaces[""]["fdb"] = json.loads(fdb or "[]")
    for name in names:
        namespaces[name] = kernel(name)
    hostnames = {}
    if os.path.isdir("/run/wharf/uts"):
        hostnames = {n: hostname_of(f"/run/wharf/uts/{n}") for n in sorted(os.listdir("/run/wharf/uts"))}
    sysctls = {}
    for key in SYSCTLS:
        with open("/proc/sys/" + key.replace(".", "/"), encoding="utf-8") as handle:
            sysctls[key] = handle.read().strip()
    json.dump(
        {
            "netns": names,
            "namespaces": namespaces,
            "hostnames": hostnames,
            "files": files(),
            "nft": nft(),
            "sysctls": sysctls,
            "processes": processes(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
