# This file is private to the wharf.network collection: its API may change at any time.
"""The one flow every list-taking module runs: validate → observe → plan → apply → report.

Every write happens in `Plan.apply`, called in exactly one place below and never in check
mode, so what check mode reports is what a real run then does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.wharf.network.plugins.module_utils._engine.errors import ValidationError, WharfError
from ansible_collections.wharf.network.plugins.module_utils._kernel.namespace import NamespaceSockets

COMMON_ARGUMENT_SPEC: dict[str, Any] = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "exclusive": {"type": "bool", "default": False},
}


def run_resource(module: Any, items_key: str, build: Callable[[NamespaceSockets], Any]) -> None:
    """Run one resource over the module's item list and exit the module with its result.

    `build(sockets)` returns the resource object (it parses and validates the items, raising
    ValidationError with every problem at once).
    """
    result: dict[str, Any] = {"changed": False, "changes": []}
    try:
        with NamespaceSockets() as sockets:
            resource = build(sockets)
            # in check mode nothing earlier in the play was really made: a resource then predicts
            # the changes on top of missing prerequisites instead of failing on them
            resource.check_mode = module.check_mode
            try:
                plan = resource.plan()
                result["changed"] = plan.changed
                result["changes"] = plan.summary()
                if module._diff and plan.changed:
                    result["diff"] = plan.diff()
                if not module.check_mode:
                    plan.apply()
                result[items_key] = resource.report()
            finally:
                if hasattr(resource, "close"):
                    resource.close()
    except ValidationError as exc:
        module.fail_json(
            msg="invalid input, nothing was changed: " + "; ".join(exc.errors), errors=exc.errors, changed=False
        )
    except WharfError as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:  # observing the kernel failed: still a message, not a traceback
        module.fail_json(msg=f"{items_key}: reading the kernel's state failed: {exc}", **result)
    module.exit_json(**result)
