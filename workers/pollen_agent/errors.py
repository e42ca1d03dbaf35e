"""The two error classes that decide whether work is retried.

A ``UserError`` ends the job with a message a clinician can act on and is
never retried. A ``RetryableError`` marks a passing fault (storage briefly
unreachable, hub restarting) that a retry can cure. Everything else is a bug.
"""

from __future__ import annotations

from typing import TypeVar

from pollen_contracts.contract import Contract, ContractError

C = TypeVar("C", bound=Contract)


class AgentError(Exception):
    code = "agent_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class UserError(AgentError):
    code = "invalid_input"


class RetryableError(AgentError):
    code = "temporarily_unavailable"


def read_contract(
    kind: type[C], raw: object, *, what: str, tasks: tuple[str, ...] | None = None
) -> C:
    """Rebuild a message from the hub as its contract type, or end the work saying why.

    A spec this agent cannot read (a newer contract, an unknown task, a wrong field) is a
    version mismatch between hub and agent: retrying cannot cure it, site IT can. ``tasks``
    names the tasks this kind of work runs here; a spec of another task is refused the same way
    (the hub refuses such work first; this guards against a hub of another version).
    """
    try:
        message = kind.from_dict(raw)
    except ContractError as exc:
        raise UserError(
            f"The hub sent a {what} this site agent cannot read ({exc}). Ask your site IT to "
            "update the site agent to the hub's version.",
            code="contract_mismatch",
        ) from None
    task = getattr(message, "task", None)
    if tasks is not None and task is not None and task not in tasks:
        raise UserError(
            f"This site agent cannot run a {what} for a {task} model yet. Ask your site IT to "
            "update the site agent to the hub's version.",
            code="task_not_supported",
        )
    return message
