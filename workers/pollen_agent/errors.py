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


def read_contract(kind: type[C], raw: object, *, what: str) -> C:
    """Rebuild a message from the hub as its contract type, or end the work saying why.

    A spec this agent cannot read (a newer contract, an unknown task, a wrong field) is a
    version mismatch between hub and agent: retrying cannot cure it, site IT can.
    """
    try:
        return kind.from_dict(raw)
    except ContractError as exc:
        raise UserError(
            f"The hub sent a {what} this site agent cannot read ({exc}). Ask your site IT to "
            "update the site agent to the hub's version.",
            code="contract_mismatch",
        ) from None
