"""What a channel module declares about its kind of alert destination (``KIND``): the name stored
and spoken by the API, how the console names it, what its target must be (a declared type for the
API's schema, and the check made when a destination is saved), what a live project needs of it, and
how to open the channel that sends to it. ``channels/__init__.py`` lists the kinds; everything else
(the API's bodies and OpenAPI document, the console, the CLI, the alerts sink) reads that list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from channels.transport import Channel
from common.config import Settings


@dataclass(frozen=True)
class TargetRules:
    """What the project asks of a target when a destination is saved."""

    live: bool
    allow_private: bool


@dataclass(frozen=True)
class Kind:
    # The destination's ``type``: stored, and in the API.
    name: str
    # How the console names the kind ("Slack webhook") and its target ("Slack webhook URL").
    label: str
    target_label: str
    # The target's declared type (``Annotated[str, Meta(...)]``): the API body's ``target``.
    target: Any
    # The target as saved, or ``common.targets.TargetError`` saying what is wrong with it.
    check_target: Callable[[str, TargetRules], Awaitable[str]]
    # Why a saved target cannot serve a live project (e.g. a plain-http webhook); None when it can.
    live_fault: Callable[[str], str | None]
    # The channel, given the settings and the shared SSRF-checked HTTP session.
    open: Callable[[Settings, aiohttp.ClientSession], Channel]
