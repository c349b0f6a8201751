# This file is private to the wharf.network collection: its API may change at any time.
"""The names the embedded DNS serves: what a hostname, an alias, a search domain may be.

The resolver loads every name of the topology at once and refuses its state file as a whole when one name is no
DNS name, which would fail a run after the containers' files had changed; these checks catch such a name while
the topology is parsed, before any change. Kept together so that "a name the resolver can serve" has one meaning.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ansible_collections.wharf.network.plugins.module_utils._model.fields import Fields, show

if TYPE_CHECKING:
    from ansible_collections.wharf.network.plugins.module_utils._model.containers import ContainerSpec

MAX_HOSTNAME = 64  # HOST_NAME_MAX
HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_DNS_NAME_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")


def dns_name_problem(text: str) -> str | None:
    """Why ``text`` (a final dot allowed) is no DNS name a resolver can serve, or None."""
    name = text[:-1] if text.endswith(".") else text
    if not name:
        return "it is empty"
    if len(name) > 253:
        return f"it is {len(name)} characters, a DNS name has at most 253"
    labels = name.split(".")
    if not all(labels):
        return "it has an empty label (a leading dot or '..')"
    longest = max(labels, key=len)
    if len(longest) > 63:
        return f"its label {longest[:20]}... is {len(longest)} characters, a DNS label has at most 63"
    return None


def read_dns_name(fields: Fields, path: str, value: object, what: str) -> str | None:
    """``value`` when it is a DNS name (``what`` names its role in the message: alias, search domain...)."""
    text = fields.string(path, value)
    if text is None:
        return None
    if not _DNS_NAME_RE.fullmatch(text):
        fields.error(f"{path} {show(text)} is not a valid {what}")
        return None
    problem = dns_name_problem(text)
    if problem is not None:
        fields.error(f"{path} {show(text)} is not a valid {what}: {problem}")
        return None
    return text


def check_dns_names(fields: Fields, containers: dict[str, ContainerSpec]) -> None:
    """Every name the resolver will serve must be a DNS name it can load (labels of at most 63 characters,
    none empty, at most 253 in all), ``NAME.NETWORK`` included: otherwise the state file would be written and
    then refused as a whole by the resolver, after the containers' files changed."""
    for container in containers.values():
        own = [(container.path, container.name)]
        hostname = container.hostname
        valid_hostname = hostname is not None and len(hostname) <= MAX_HOSTNAME and HOSTNAME_RE.fullmatch(hostname)
        if valid_hostname and hostname != container.name:
            own.append((f"{container.path}.hostname", hostname))
        for path, name in own:
            problem = dns_name_problem(name)
            if problem is not None:
                fields.error(f"{path} {show(name)} cannot be served by the embedded DNS: {problem}")
        for endpoint in container.endpoints:
            names = [name for _path, name in own] + list(endpoint.aliases)
            for name in dict.fromkeys(n.rstrip(".") for n in names):
                if dns_name_problem(name) is not None:
                    continue  # reported above
                qualified = f"{name}.{endpoint.network}"
                problem = dns_name_problem(qualified)
                if problem is not None:
                    fields.error(
                        f"{endpoint.path}: {show(qualified)} (NAME.NETWORK, served by the embedded DNS) {problem}"
                    )
