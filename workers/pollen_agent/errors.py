"""The two error classes that decide whether work is retried.

A ``UserError`` ends the job with a message a clinician can act on and is
never retried. A ``RetryableError`` marks a passing fault (storage briefly
unreachable, hub restarting) that a retry can cure. Everything else is a bug.
"""


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
