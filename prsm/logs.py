"""PRSM's logs: one JSON object per line on stderr, with the request id that follows a query
across every hop.

The request id is Serve's: its proxy takes the client's `x-request-id` or makes one, puts it in
the request's headers and sends it back as the response's `x-request-id`. The ingress sets
`REQUEST_ID` from that header (prsm/api/auth.py); NWTN hands it to the router and the model
replicas with each sub-task (`ModelCall.request_id`, since calls of many queries travel there
in one batch), and each hop logs it. Ray writes a replica's stderr to the node's log folder
(`<session>/logs/worker-*.err`), so `grep <request id>` over it finds every hop of a query.

Fields: `ts`, `level`, `component` (the deployment), `message`, `request_id`, and what applies
of `session_id`, `key_id` (a key's public id, never the key), `model_id`, `status`, `ms`. Never
a prompt, an answer, a key or an account's balance.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("prsm_request_id", default="")
LOGGER = "prsm"
_SAFE_ID = re.compile(r"[^A-Za-z0-9._:-]")
MAX_ID_CHARS = 64


def clean_request_id(value: str) -> str:
    """A client may send its own `x-request-id`: in PRSM's logs it is cut to 64 characters of
    letters, digits and `._:-`, so a crafted id cannot forge or break log lines."""
    return _SAFE_ID.sub("", value)[:MAX_ID_CHARS]


class JsonLines(logging.Formatter):
    def __init__(self, component: str):
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "component": self.component,
            "message": record.getMessage(),
        }
        fields = getattr(record, "prsm", None) or {}
        if "request_id" not in fields and REQUEST_ID.get():
            line["request_id"] = REQUEST_ID.get()
        line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)[-4000:]
        return json.dumps(line, default=str)


def configure(component: str, level: str = "INFO") -> logging.Logger:
    """PRSM's logger in this process: JSON lines on stderr, tagged with `component`. Once per
    process (a second call changes the component and level only)."""
    logger = logging.getLogger(LOGGER)
    handler = next((h for h in logger.handlers if isinstance(h.formatter, JsonLines)), None)
    if handler is None:
        # The process's own stderr: a Serve replica replaces `sys.stderr` with a stream into its
        # buffered logger; Ray writes the real one to the node's log folder line by line.
        handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
        logger.addHandler(handler)
    handler.setFormatter(JsonLines(component))
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def event(message: str, level: int = logging.INFO, **fields: object) -> None:
    """One log line with these fields (None values left out)."""
    logger = logging.getLogger(LOGGER)
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"prsm": {k: v for k, v in fields.items() if v is not None}})
