# This file is private to the wharf.network collection: its API may change at any time.
"""Namespace ids as the host sees them: the host end of a veth names its peer's namespace only by this id."""

from __future__ import annotations

import os

from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets, netns_path


def ids_of(sockets: NamespaceSockets, names: list[str]) -> set[int]:
    """Host-side ids of these named namespaces (those gone already are left out). Read them before the names are
    removed: the endpoints whose peers were in them vanish with them."""
    ids: set[int] = set()
    host = sockets.get(None)
    for name in names:
        try:
            fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            nsid = host.nsid_of(fd)
        finally:
            os.close(fd)
        if nsid is not None:
            ids.add(nsid)
    return ids
