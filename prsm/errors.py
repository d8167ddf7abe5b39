"""Specific PRSM errors; the ingress maps each to one HTTP status, the CLI to one exit message.

Each error carries the offending `field` (where there is one) so a client can point at it.
They keep their arguments in `args` so they survive pickling across Ray processes.
"""

from __future__ import annotations


class PRSMError(Exception):
    status_code = 500

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, "field": self.field, "message": self.message}


class InvalidInput(PRSMError):
    status_code = 422


class PlanRejected(PRSMError):
    """A plan over the size/depth limits, or one that is not a valid DAG."""

    status_code = 422


class PromptBlocked(PRSMError):
    """The safety screen refused the prompt."""

    status_code = 422


class UnknownModel(PRSMError):
    status_code = 404


class ModelAlreadyExists(PRSMError):
    status_code = 409


class SessionNotFound(PRSMError):
    status_code = 404


class AllCandidatesFailed(PRSMError):
    status_code = 502


class ModelCallFailed(PRSMError):
    """One model call failed (bad tool input, remote endpoint error); the next candidate runs."""

    status_code = 502


def unwrap(exc: BaseException) -> BaseException:
    """The original error inside Ray's wrappers (RayTaskError and friends keep it as `cause`)."""
    for _ in range(8):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc


def error_dict(exc: BaseException) -> dict:
    """An error as data, to cross a process boundary inside a batch result."""
    if isinstance(exc, PRSMError):
        return exc.to_dict()
    return {"type": "ModelCallFailed", "field": None, "message": f"{type(exc).__name__}: {exc}"}


def error_from_dict(data: dict) -> PRSMError:
    cls = {c.__name__: c for c in PRSMError.__subclasses__()}.get(data.get("type"), ModelCallFailed)
    return cls(data.get("message", "model call failed"), data.get("field"))
