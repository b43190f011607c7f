"""Log hygiene: every record carries the request id, and no record carries a token.

``install()`` wraps the logging record factory, so it covers every handler (uvicorn's,
pytest's, an operator's) without configuring any: secrets are cut out of the message,
its arguments and the formatted traceback before a handler sees the record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import traceback
from datetime import UTC, datetime
from typing import Any

#: the id of the request being served, for log lines and the `X-Request-Id` header
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("aicn_request_id", default="-")

_SECRETS = re.compile(
    r"(aicn_[A-Za-z0-9_-]{8,})"  # our tokens, wherever they appear
    r"|((?:bearer|token)[\"']?\s*[:=]?\s*[\"']?)[A-Za-z0-9._~+/=-]{16,}",  # Bearer <x>, token=<x>, "token": "<x>"
    re.IGNORECASE,
)
REDACTED = "[REDACTED]"
_installed = False
#: an `X-Request-Id` a caller (a proxy, another service) sends is kept when it looks like an id
_CALLER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(offered: str | None, fallback: str) -> str:
    """The caller's request id when it is a plain token of at most 64 characters, else ``fallback``."""
    return offered if offered is not None and _CALLER_ID.fullmatch(offered) else fallback


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        if record.exc_info and record.exc_info[0] is not None:
            document["exception"] = record.exc_text or redact(self.formatException(record.exc_info))
        return json.dumps(document, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str, log_format: str) -> None:
    """The process's logging: ``text`` lines or ``json`` objects, each with the request id."""
    install()  # before any handler formats `request_id`
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx tells every outgoing request at INFO (each peer probe, each replica health check):
    # those lines are for debugging, not for an operator's log
    logging.getLogger("httpx").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda match: (match.group(2) or "") + REDACTED, text)


def _redacted_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(redact(value) if isinstance(value, str) else value for value in args)
    if isinstance(args, dict):
        return {key: redact(value) if isinstance(value, str) else value for key, value in args.items()}
    return args


def install() -> None:
    """Idempotent: wrap the current record factory once per process."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the caller's bug; leave it to the handler
            return record
        cleaned = redact(message)
        if cleaned != message:
            # redact the parts, keeping the arguments' shape: formatters such as uvicorn's
            # access formatter unpack them; collapse into one string only when that is not enough
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            record.args = _redacted_args(record.args)
            try:
                still = redact(record.getMessage()) != record.getMessage()
            except Exception:
                still = True
            if still:
                record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
