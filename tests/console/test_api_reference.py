"""The API reference at ``/docs``, readable without an account and made from the OpenAPI document
the gateway serves: every operation, the callbacks we send to a customer's receiver (their headers,
answers and body fields) and every schema — in a real browser against the real gateway."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Locator, expect

from harness.stack import Stack

pytestmark = pytest.mark.e2e

METHODS = ("get", "put", "post", "delete", "patch")


def _operation_ids(items: dict[str, Any]) -> list[str]:
    return [op["operationId"] for item in items.values() for method, op in item.items() if method in METHODS]


async def _has_cells(where: Locator, names: list[str]) -> None:
    for name in names:
        await expect(where.get_by_role("cell", name=name, exact=True)).to_have_count(1)


async def test_a_visitor_reads_every_operation_and_the_callbacks_we_send(console_factory,
                                                                       stack: Stack) -> None:
    console = await console_factory()
    served = await console.page.request.get(stack.base_url + "/api/v1/openapi.json")
    doc = await served.json()
    assert await console.visit("/docs", "docs") == 200
    page = console.page

    for operation_id in _operation_ids(doc["paths"]):
        await expect(page.locator(f"article#{operation_id}")).to_have_count(1)

    callbacks = page.locator("section[aria-labelledby=webhooks]")
    await expect(callbacks.locator("article")).to_have_count(len(_operation_ids(doc["webhooks"])))
    repair = callbacks.locator("article#repairRequested")
    await expect(repair.locator("h3")).to_have_text("POST your repair callback URL")
    await expect(repair).to_contain_text("signed with your whsec_ secret")
    await _has_cells(repair, ["webhook-id", "webhook-timestamp", "webhook-signature"])
    for answer in ("2XX", "408", "429", "5XX", "default"):
        await expect(repair.locator(".responses strong", has_text=answer)).to_have_count(1)

    for schema in ("RepairCallbackBody", "TestCallbackBody"):
        fields = list(doc["components"]["schemas"][schema]["properties"])
        await _has_cells(page.locator(f"article#schema-{schema}"), fields)
