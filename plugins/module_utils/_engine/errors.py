# This file is private to the wharf.network collection: its API may change at any time.
"""Errors the engine raises, worded for the person who wrote the playbook.

Every message names the object (kind and name) and, where there is one, the field, so a
failed task tells the user what to fix without a traceback.
"""

from __future__ import annotations

import errno

_ERRNO_WORDS = {
    errno.EEXIST: "already exists",
    errno.ENOENT: "does not exist",
    errno.ENODEV: "no such device",
    errno.EINVAL: "invalid value",
    errno.EPERM: "operation not permitted (are you root?)",
    errno.EACCES: "permission denied",
    errno.EBUSY: "device or resource busy",
    errno.ERANGE: "value out of range",
    errno.EOPNOTSUPP: "operation not supported by this kernel",
    errno.ENETUNREACH: "network unreachable (is the gateway on a connected subnet?)",
    errno.EHOSTUNREACH: "no route to host (is the gateway on a connected subnet of this interface?)",
    errno.ENOSPC: "no space left (kernel table full)",
}


class WharfError(Exception):
    """An error that can be shown to the user as it is."""


class ValidationError(WharfError):
    """One or more input problems found before anything on the host was changed."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def kernel_error(subject: str, action: str, exc: BaseException, field: str | None = None) -> WharfError:
    """Turn an OSError (the rtnetlink client's NetlinkError is one, with the kernel's errno) into a WharfError
    naming the object.

    `subject` reads like `veth 'web1-eth0'`; `action` like `create` or `set mtu`.
    """
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    words = _ERRNO_WORDS.get(code) if isinstance(code, int) else None
    if words is None:
        words = str(exc) or exc.__class__.__name__
    where = f" (field {field})" if field else ""
    return WharfError(f"{subject}: {action} failed{where}: {words}")
