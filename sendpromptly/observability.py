"""Logging set-up and the Prometheus endpoint shared by every process."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

DEAD_LETTERS = Counter("sendpromptly_dead_letters_total", "Messages sent to the dead-letter topic",
                       ["consumer", "reason"])


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def metrics_response() -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type, _, _ = CONTENT_TYPE_LATEST.partition(";")
    return response
