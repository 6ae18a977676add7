"""``/docs``: the API reference, rendered from the OpenAPI document the gateway serves, readable
without an account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api_gateway import openapi
from api_gateway.console.pages import render

METHODS = ("get", "post", "put", "patch", "delete")
# Where the webhooks go: the URL an operator saved, not a path of ours.
CALLBACK_URL = "your repair callback URL"
WEBHOOK_CREDENTIAL = "signed with your whsec_ secret (webhook-signature)"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    anchor: str
    credential: str
    parameters: list[dict[str, Any]]
    body: str | None
    responses: list[tuple[str, str]]


def _resolved(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    found: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    if not isinstance(found, dict):
        raise ValueError(f"{ref} names no object in the OpenAPI document")
    return found


def _schema_name(node: dict[str, Any] | None) -> str | None:
    ref = (node or {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _operations(doc: dict[str, Any], items: dict[str, Any], *,
                sent_to: str | None = None) -> dict[str, list[Operation]]:
    """The operations of ``items`` (the document's paths, or its webhooks) by tag; a webhook is
    shown as sent to ``sent_to``, signed, rather than as a path of ours with a credential."""
    by_tag: dict[str, list[Operation]] = {tag["name"]: [] for tag in doc["tags"]}
    for path, item in items.items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            security = [name for entry in op.get("security", []) for name in entry]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            by_tag.setdefault(op["tags"][0], []).append(Operation(
                method=method.upper(), path=sent_to or path, summary=op.get("summary", ""),
                anchor=op["operationId"],
                credential=WEBHOOK_CREDENTIAL if sent_to else {
                    openapi.API_KEY: "API key (sk_…)", openapi.OPERATOR_TOKEN: "operator token (op_…)"}.get(
                        security[0] if security else "", "none"),
                parameters=[_resolved(doc, p) for p in [*shared, *op.get("parameters", [])]],
                body=_schema_name(body),
                responses=[(code, _resolved(doc, answer).get("description", ""))
                           for code, answer in op.get("responses", {}).items()],
            ))
    return {tag: ops for tag, ops in by_tag.items() if ops}


async def show(request: web.Request) -> web.Response:
    doc = openapi.document()
    return render(request, "docs.html", info=doc["info"], tags={t["name"]: t.get("description", "")
                                                                for t in doc["tags"]},
                  operations=_operations(doc, doc["paths"]),
                  webhooks=[op for ops in _operations(doc, doc["webhooks"], sent_to=CALLBACK_URL).values()
                            for op in ops],
                  schemas=doc["components"]["schemas"])
