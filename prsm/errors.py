"""Every PRSM error, and the one codec that carries them across a process boundary.

Each error type has one HTTP status (mapped once, at the ingress), the offending `field` where
there is one, and may carry further figures (`InsufficientFunds` keeps `needed` and
`available`). All of them live here, so whichever process receives an error knows its type:
`to_dict` / `error_from_dict` is the codec, and pickling goes through it too (`__reduce__`), so
an error raised in one Serve replica arrives in another with its type, status, field and
figures. The HTTP body of an error is its `to_dict()`.
"""

from __future__ import annotations

import functools
from typing import ClassVar

_TYPES: dict[str, type[PRSMError]] = {}


class PRSMError(Exception):
    status_code: ClassVar[int] = 500
    # OpenAI's error `code` for this kind of error (its clients read `error.code`); None: none.
    code: ClassVar[str | None] = None
    # Further figures an error carries, by name and type; JSON shows them as decimal strings
    # (amounts of FTNS base units do not fit a JSON number).
    figures: ClassVar[dict[str, type]] = {}

    def __init__(self, message: str, field: str | None = None, **figures):
        unknown = set(figures) - set(self.figures)
        if unknown:
            raise TypeError(f"{type(self).__name__} carries no {', '.join(sorted(unknown))}")
        super().__init__(message, field)
        self.message = message
        self.field = field
        for name, kind in self.figures.items():
            setattr(self, name, kind(figures.get(name, kind())))

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ in _TYPES:
            raise TypeError(f"two PRSM errors are named {cls.__name__}")
        _TYPES[cls.__name__] = cls

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def __reduce__(self):
        return error_from_dict, (self.to_dict(),)

    def to_dict(self) -> dict:
        data = {"type": type(self).__name__, "field": self.field, "message": self.message}
        return data | {name: str(getattr(self, name)) for name in self.figures}


_TYPES[PRSMError.__name__] = PRSMError


def error_from_dict(data: dict) -> PRSMError:
    """The error `to_dict` described; an unknown type (another PRSM version) is a PRSMError."""
    cls = _TYPES.get(data.get("type", ""), PRSMError)
    figures = {name: kind(data[name]) for name, kind in cls.figures.items() if name in data}
    return cls(data.get("message", "error"), data.get("field"), **figures)


def as_prsm_error(exc: BaseException) -> PRSMError:
    """Any failure of a model call as a PRSM error: ours as they are, others as ModelCallFailed
    naming their type (a library's exception may not even unpickle in another process)."""
    if isinstance(exc, PRSMError):
        return exc
    return ModelCallFailed(f"{type(exc).__name__}: {exc}")


def unwrap(exc: BaseException) -> BaseException:
    """The original error inside Ray's wrappers (RayTaskError and friends keep it as `cause`)."""
    for _ in range(8):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc


# --- who is asking -------------------------------------------------------------------------


class Unauthorized(PRSMError):
    """No API key, or one that is unknown, expired or revoked."""

    status_code = 401
    code = "invalid_api_key"


class BadSignature(Unauthorized):
    """A peer node's request whose signature is missing, stale, forged, or by a node that is not
    a member of the network (prsm/federation/signing.py)."""

    code = "invalid_signature"


class Forbidden(PRSMError):
    """The key may not do this (a role too low, or acting for another account)."""

    status_code = 403
    code = "insufficient_permissions"


class UnknownKey(PRSMError):
    status_code = 404


# --- input and plans ------------------------------------------------------------------------


class InvalidInput(PRSMError):
    status_code = 422


class PlanRejected(PRSMError):
    """A plan over the size/depth limits, or one that is not a valid DAG."""

    status_code = 422


class PromptBlocked(PRSMError):
    """The safety screen refused the prompt."""

    status_code = 422


class SessionNotFound(PRSMError):
    status_code = 404


# --- the marketplace and model calls --------------------------------------------------------


class UnknownModel(PRSMError):
    status_code = 404


class ModelAlreadyExists(PRSMError):
    status_code = 409


class PriceChanged(PRSMError):
    """A peer node called a model at prices it no longer has: fetch its catalogue again."""

    status_code = 409


class AllCandidatesFailed(PRSMError):
    status_code = 502


class QueryRefused(InvalidInput):
    """Every sub-task of a query was refused by its tools as input they cannot read ("evaluate
    the mass of the earth"): the caller's mistake, a 422 naming the prompt, not a 502."""


class ModelCallFailed(PRSMError):
    """One model call failed (remote endpoint error, a broken card); the next candidate runs."""

    status_code = 502


class BadInstruction(ModelCallFailed):
    """The model cannot work on this input (a tool that cannot parse it, an input past a tool's
    limits, a response_format a tool cannot follow): the caller's mistake, not the model's. It
    does not count against the model's health or trip its breaker; the next candidate may run."""

    status_code = 422

    # What a library raises on a stranger's input it cannot handle (SymPy, Pint).
    LIBRARY_ERRORS = (ArithmeticError, ValueError, TypeError, NotImplementedError, RecursionError,
                      AttributeError, KeyError)  # fmt: skip

    @classmethod
    def refusing(cls, library: str):
        """Decorate a tool: `library`'s own errors on its input become BadInstruction."""

        def wrap(tool):
            @functools.wraps(tool)
            def refused(instruction: str) -> str:
                try:
                    return tool(instruction)
                except cls:
                    raise
                except cls.LIBRARY_ERRORS as exc:
                    message = f"{library} cannot do this: {type(exc).__name__}: {str(exc)[:200]}"
                    raise cls(message, "instruction") from None

            return refused

        return wrap


class ContextTooLong(BadInstruction):
    """A call's messages and budget do not fit the model's context (OpenAI's error for it)."""

    status_code = 400
    code = "context_length_exceeded"


# --- FTNS -----------------------------------------------------------------------------------


class UnknownAccount(PRSMError):
    status_code = 404


class InsufficientFunds(PRSMError):
    status_code = 402
    figures = {"needed": int, "available": int}


class IdempotencyConflict(PRSMError):
    status_code = 409


class HoldClosed(PRSMError):
    status_code = 409


class ChainError(PRSMError):
    status_code = 502


# --- content-addressed storage --------------------------------------------------------------


class InvalidCID(InvalidInput):
    status_code = 400


class NotFound(PRSMError):
    status_code = 404


class CorruptBlock(PRSMError):
    status_code = 502


class ArtifactConflict(PRSMError):
    status_code = 409


RETRY_AFTER_S = 5  # a 503's Retry-After where the error names none, and an overload's


class Overloaded(PRSMError):
    """The models a request needs have more work queued than they take: try again after
    `retry_after_s` (503 with Retry-After), rather than wait in a queue without end."""

    status_code = 503
    code = "overloaded"
    figures = {"retry_after_s": int}


class TooLarge(PRSMError):
    status_code = 413


class UnsupportedMediaType(PRSMError):
    status_code = 415


class ClusterTooSmall(PRSMError):
    """A job asks for more than the cluster has free (said at once, not retried forever)."""

    status_code = 503


class IpfsError(PRSMError):
    status_code = 502


class JobRunning(PRSMError):
    """A scheduled job asked to run while another process holds its lease (prsm/ops.py)."""

    status_code = 409


class BackupError(PRSMError):
    """A backup or restore that cannot go on (prsm/backup.py); nothing is left half-written."""

    status_code = 409


class SessionRunning(PRSMError):
    """An operation on a session that needs it finished (a rating)."""

    status_code = 409
