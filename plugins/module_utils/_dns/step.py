# This file is private to the wharf.network collection: its API may change at any time.
"""The embedded DNS as the last step of a converge: the gateways it listens on exist by now."""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.wharf.network.plugins.module_utils._dns.daemon import DnsResult, dns_converge
from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._engine.steps import ConvergeResult
from ansible_collections.wharf.network.plugins.module_utils._model.types import Topology

# runs a command for the DNS step: argv -> (rc, stdout, stderr)
DnsRunner = Callable[[list[str]], tuple]


def dns_step(
    model: Topology, host: str, check_mode: bool, resolv_conf: str, run: DnsRunner, result: ConvergeResult
) -> None:
    """Converge the resolver and the containers' files; a failure names the step and what was applied before."""
    dns_result = DnsResult()
    try:
        dns_converge(None, host, check_mode, resolv_conf, result=dns_result, run=run, model=model)
    except (ValidationError, WharfError, OSError) as exc:
        detail = "; ".join(exc.errors) if isinstance(exc, ValidationError) else str(exc)
        result.applied += dns_result.plan.applied
        raise WharfError(f"step 'dns': {detail} (after {result.applied} changes were applied)") from None
    finally:
        result.record("dns", dns_result.plan)
    result.applied += dns_result.plan.applied
    result.dns = {
        "listen": dns_result.listen,
        "views": dns_result.views,
        "clients": dns_result.clients,
        "pid": dns_result.pid,
    }
