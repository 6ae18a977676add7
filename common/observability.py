"""Logging set-up and the Prometheus endpoint shared by every process.

Logs are text lines, or with ``SENDPROMPTLY_LOG_FORMAT=json`` one JSON object per line carrying the
context a line was logged in: the request id, the project and the flow's reference where known
(``log_context``). Only those ids and the message go out, never a header, body or key: the
messages themselves never hold keys, secrets or payloads.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from common.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a JSON line may carry besides time, level, logger and message.
CONTEXT_FIELDS = ("request_id", "project_id", "reference")

_context: ContextVar[dict[str, str] | None] = ContextVar("sendpromptly_log_context", default=None)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every line logged inside carries ``fields`` (those that are not None) in JSON logs."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: str | None) -> None:
    """Add ``fields`` to the ``log_context`` open in the current task (e.g. the project, once a
    request's credentials are known), until it closes; nothing when none is open."""
    current = _context.get()
    if current is not None:
        _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(_context.get() or {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(settings: Settings) -> dict[str, Any] | None:
    """The ``logging.config.dictConfig`` for JSON logs, or None for the text lines."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": settings.log_level, "handlers": ["default"]},
    }


def configure_logging(settings: Settings) -> None:
    config = logging_config(settings)
    if config is None:
        logging.basicConfig(level=settings.log_level, format=TEXT_FORMAT)
    else:
        logging.config.dictConfig(config)


def metrics_response() -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type, _, _ = CONTENT_TYPE_LATEST.partition(";")
    return response
