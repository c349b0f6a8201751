# This file is private to the wharf.network collection: its API may change at any time.
"""What every resource shares: its item list parsed and validated up front, the run's sockets, and
the flags that shape the plan."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._kernel import namespace as nl


class Resource:
    """Base of the per-kind resources; a subclass sets `parse` and implements `plan()` and `report()`."""

    # check mode: missing prerequisites (a namespace, a bridge, an interface) are assumed made by an
    # earlier task of the same run, and the resource predicts what it would do on top of them
    check_mode = False
    parse: Callable[[list[dict[str, Any]], str | None], list[Any]]

    def __init__(
        self,
        sockets: nl.NamespaceSockets,
        items: list[dict[str, Any]],
        state: str,
        exclusive: bool,
        default_namespace: str | None = None,
    ):
        self.sockets = sockets
        self.specs = type(self).parse(items, default_namespace)
        self.state = state
        self.exclusive = exclusive

    def _deleter(self, namespace: str | None, link: Any) -> Callable[[], None]:
        """The apply step deleting `link` by index. Already gone (with its peer, or its namespace) is what was
        wanted, as CNI's DEL treats it."""

        def delete() -> None:
            try:
                self.sockets.get(namespace).del_link(link.index)
            except OSError as exc:
                if exc.errno != errno.ENODEV:
                    raise

        return delete


class NamespacedSpec:
    """A spec naming an interface in a namespace."""

    name: str
    namespace: str | None

    @property
    def label(self) -> str:
        return f"{nl.ns_label(self.namespace)}/{self.name}"
