"""Small synchronous clients for the SendPromptly API, standard library only.

``OperatorClient`` talks to the operator API with an operator token (``op_...``); ``IngestClient``
posts signals, one or a batch, with a project's API key (``sk_...``). Both are ``ApiClient``s: one
method per operation, each answering the API's JSON document. Every POST, PUT, PATCH and DELETE
carries an ``Idempotency-Key``. A non-2xx answer raises ``ApiError`` with the RFC 9457 problem
document. ``IngestClient`` sends a request again when its outcome is unknown (``Retry``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

TIMEOUT_SECONDS = 30.0
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# What one batch request may hold; the gateway refuses more (api_gateway/ingest_batch.py MAX_ITEMS,
# api_gateway/http_input.py MAX_BATCH_BYTES).
BATCH_MAX_ITEMS = 1000
BATCH_MAX_BYTES = 1024 * 1024

Document = dict[str, Any]
Kind = Literal["receipt", "result"]
KINDS: tuple[Kind, ...] = ("receipt", "result")


def encode_json(doc: Any) -> bytes:
    """A request body as sent: compact, so that a batch's size is the sum of its items' sizes plus
    one comma between two and ``{"items":[]}`` around them (``batch_bytes``)."""
    return json.dumps(doc, separators=(",", ":")).encode()


BATCH_ENVELOPE_BYTES = len(encode_json({"items": []}))


def batch_bytes(encoded_items: Sequence[bytes]) -> int:
    """The size of ``{"items": [...]}`` holding these items, each as ``encode_json`` made it."""
    return BATCH_ENVELOPE_BYTES + sum(map(len, encoded_items)) + max(len(encoded_items) - 1, 0)


class ClientError(Exception):
    """The request failed; ``str()`` says why, for a person. ``idempotency_key`` is set when the
    outcome of a mutating request is unknown, so that a retry with it cannot apply it twice."""

    idempotency_key: str | None = None


class UnreachableError(ClientError):
    def __init__(self, message: str, *, request_sent: bool):
        super().__init__(message)
        self.request_sent = request_sent


class ApiError(ClientError):
    def __init__(self, status: int, problem: Document, *, retry_after: float | None = None):
        self.status = status
        self.problem = problem
        # The answer's Retry-After in seconds, if it had one: when a retry may succeed.
        self.retry_after = retry_after
        super().__init__(status, problem)

    def __str__(self) -> str:
        return "\n".join(describe_problem(self.problem, self.status))


def describe_problem(problem: Document, status: int | None = None) -> list[str]:
    """A problem document for a person: "title (status): detail", then one line per invalid field."""
    title = problem.get("title") or "Error"
    lines = [f"{title} ({status or problem.get('status')}): {problem.get('detail') or ''}".rstrip()]
    for error in problem.get("errors") or []:
        lines.append(f"  {error.get('field') or '(body)'}: {error.get('message')}")
    return lines


@dataclass(frozen=True)
class Answer:
    """A 2xx answer: its JSON document, and whether it is the stored answer of an earlier request
    with the same Idempotency-Key (``Idempotent-Replayed: true``)."""

    doc: Document
    replayed: bool


@dataclass(frozen=True)
class Retry:
    """How often a request whose outcome is unknown (no answer, a ``503``, or a ``409`` because the
    earlier attempt is still in flight) is sent again, always with the same Idempotency-Key, so
    that it is applied at most once. The wait before retry n is the answer's Retry-After if it
    gave one, else ``first_delay * 2**(n-1)`` with jitter, either way at most ``max_delay``."""

    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    # Told of each retry before its wait: the error, the wait in seconds, the attempt to come.
    on_retry: Callable[[ClientError, float, int], None] | None = None

    def wait(self, error: ClientError, failures: int) -> float:
        if isinstance(error, ApiError) and error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        # Jitter spreads the retries of many clients that failed at the same moment.
        jitter = random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)
        return min(self.first_delay * 2.0 ** (failures - 1) * jitter, self.max_delay)


NO_RETRY = Retry(attempts=1)
IN_FLIGHT_PROBLEM = "/idempotency-key-in-flight"


def _worth_retrying(error: ClientError) -> bool:
    # Refused connections, lost answers, Kafka or the database away (503), and a request with this
    # key still being processed (409, after an attempt whose answer was lost): the same request
    # may well succeed in a moment. Any other answer would only be repeated.
    if isinstance(error, UnreachableError):
        return True
    if not isinstance(error, ApiError):
        return False
    in_flight = error.status == 409 and str(error.problem.get("type", "")).endswith(IN_FLIGHT_PROBLEM)
    return error.status == 503 or in_flight


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would replay the request, Authorization header included, to wherever the Location
    # points; the API never redirects, so a redirect means a wrong --url and is reported instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _segment(value: str) -> str:
    # Ids come from the command line: quoted, and never empty, "." or "..", so that no id can
    # point a request at another route.
    if value in ("", ".", ".."):
        raise ClientError(f"{value!r} is not an id")
    return quote(value, safe="")


class ApiClient:
    """The wire: one credential (a bearer token or API key) against one gateway."""

    def __init__(self, base_url: str, token: str, *, timeout: float = TIMEOUT_SECONDS,
                 retry: Retry = NO_RETRY):
        # urllib would also open file: and ftp: URLs; the gateway speaks only HTTP.
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ClientError(f"{base_url!r} is not an http:// or https:// URL: give the SendPromptly "
                              "API's address, e.g. http://127.0.0.1:8080")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry = retry
        self._opener = urllib.request.build_opener(_NoRedirects)

    def _call(self, method: str, path: str, body: Document | None = None,
              idempotency_key: str | None = None) -> Document:
        data = None if body is None else encode_json(body)
        return self._exchange(method, path, data, idempotency_key).doc

    def _exchange(self, method: str, path: str, data: bytes | None,
                  idempotency_key: str | None = None) -> Answer:
        """Send the request, and again as ``self.retry`` allows while its outcome is unknown."""
        url = f"{self.base_url}/api/v1{path}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                   "User-Agent": "sendpromptly-cli"}
        if method in MUTATING_METHODS:
            # Chosen once: every attempt carries the same key.
            idempotency_key = idempotency_key or str(uuid.uuid4())
            headers["Idempotency-Key"] = idempotency_key
        if data is not None:
            headers["Content-Type"] = "application/json"
        failures = 0
        while True:
            # http or https only: __init__ refuses any other scheme.
            request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
            try:
                return self._send(request)
            except ClientError as error:
                failures += 1
                if failures >= self.retry.attempts or not _worth_retrying(error):
                    if idempotency_key is not None and _outcome_unknown(error):
                        error.idempotency_key = idempotency_key
                    raise
                wait = self.retry.wait(error, failures)
                if self.retry.on_retry is not None:
                    self.retry.on_retry(error, wait, failures + 1)
                self.retry.sleep(wait)

    def _send(self, request: urllib.request.Request) -> Answer:
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                replayed = response.headers.get("Idempotent-Replayed") == "true"
                return Answer(_document(request.full_url, response.read()), replayed)
        except urllib.error.HTTPError as exc:
            raise _api_error(request.full_url, exc) from None
        except urllib.error.URLError as exc:
            # Refused or unresolvable: nothing reached the server. Otherwise it may have been sent.
            sent = not isinstance(exc.reason, ConnectionRefusedError | socket.gaierror)
            raise UnreachableError(f"cannot reach {self.base_url}: {exc.reason}", request_sent=sent) from None
        except (http.client.HTTPException, OSError) as exc:
            # The request went out and no answer came back.
            raise UnreachableError(f"no answer from {self.base_url}: {exc or type(exc).__name__}",
                                   request_sent=True) from None


class IngestClient(ApiClient):
    """Posts signals with a project's API key (``sk_...``), retrying by default (``Retry()``).

    ``send("receipt", body, idempotency_key=...)`` posts one signal (``/api/v1/receipt`` or
    ``/result``); the key is required, because it is what makes the signal's retries, from here
    or from your own code, count once. ``send_batch("result", items)`` posts up to
    ``BATCH_MAX_ITEMS`` signals and ``BATCH_MAX_BYTES`` (``batch_bytes``), each item a body with
    its own ``idempotency_key`` (the single requests' keys: a key already sent alone is a replay);
    the answer has one result per item, in order (``outcome``: accepted, replayed or rejected).
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = TIMEOUT_SECONDS,
                 retry: Retry | None = None):
        super().__init__(base_url, api_key, timeout=timeout, retry=retry or Retry())

    def send(self, kind: Kind, body: Document, *, idempotency_key: str) -> Answer:
        return self._exchange("POST", f"/{kind}", encode_json(body), idempotency_key)

    def send_batch(self, kind: Kind, items: Sequence[Document], *,
                   idempotency_key: str | None = None) -> Answer:
        """The request's Idempotency-Key defaults to a digest of the kind and the body: sending the
        same batch again, from this process or another, gets the first answer (``replayed``; its
        accepted items were accepted by that earlier request)."""
        path = f"/{kind}s/batch"
        data = encode_json({"items": list(items)})
        return self._exchange("POST", path, data, idempotency_key or _content_key(path, data))


def _content_key(path: str, data: bytes) -> str:
    return "batch-" + hashlib.sha256(path.encode() + b"\0" + data).hexdigest()


class OperatorClient(ApiClient):
    """The operator API with an operator token (``op_...``); a mutating call without a key gets a
    fresh one. No retries: a caller told the outcome is unknown retries with ``idempotency_key``."""

    # Projects

    def create_project(self, fields: Document, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", "/projects", fields, idempotency_key)

    def list_projects(self, *, cursor: str | None = None, limit: int | None = None) -> Document:
        return self._call("GET", "/projects" + _query(cursor, limit))

    def get_project(self, project_id: str) -> Document:
        return self._call("GET", _project(project_id))

    def update_project(self, project_id: str, fields: Document, *,
                       idempotency_key: str | None = None) -> Document:
        return self._call("PATCH", _project(project_id), fields, idempotency_key)

    # API keys

    def create_key(self, project_id: str, label: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _project(project_id, "keys"), {"label": label}, idempotency_key)

    def list_keys(self, project_id: str, *, cursor: str | None = None, limit: int | None = None) -> Document:
        return self._call("GET", _project(project_id, "keys") + _query(cursor, limit))

    def revoke_key(self, project_id: str, key_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _project(project_id, "keys", key_id, "revoke"), None, idempotency_key)

    # Repair callback

    def set_callback(self, project_id: str, url: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("PUT", _project(project_id, "repair-callback"), {"url": url}, idempotency_key)

    def get_callback(self, project_id: str) -> Document:
        return self._call("GET", _project(project_id, "repair-callback"))

    def rotate_callback_secret(self, project_id: str, *, idempotency_key: str | None = None) -> Document:
        path = _project(project_id, "repair-callback", "rotate-secret")
        return self._call("POST", path, None, idempotency_key)

    def test_callback(self, project_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _project(project_id, "repair-callback", "test"), None, idempotency_key)

    # Alert destinations

    def add_destination(self, project_id: str, type_: str, target: str, *,
                        idempotency_key: str | None = None) -> Document:
        body = {"type": type_, "target": target}
        return self._call("POST", _project(project_id, "alert-destinations"), body, idempotency_key)

    def list_destinations(self, project_id: str, *, cursor: str | None = None,
                          limit: int | None = None) -> Document:
        return self._call("GET", _project(project_id, "alert-destinations") + _query(cursor, limit))

    def remove_destination(self, project_id: str, destination_id: str, *,
                           idempotency_key: str | None = None) -> Document:
        path = _project(project_id, "alert-destinations", destination_id)
        return self._call("DELETE", path, None, idempotency_key)

    def test_destination(self, project_id: str, destination_id: str, *,
                         idempotency_key: str | None = None) -> Document:
        path = _project(project_id, "alert-destinations", destination_id, "test")
        return self._call("POST", path, None, idempotency_key)

    # Audit log

    def audit_log(self, project_id: str, *, cursor: str | None = None, limit: int | None = None) -> Document:
        return self._call("GET", _project(project_id, "audit-log") + _query(cursor, limit))

    # Incidents

    def list_incidents(self, project_id: str, *, filters: dict[str, str | None] | None = None,
                       cursor: str | None = None, limit: int | None = None) -> Document:
        """``filters``: status, mode, reason, reference (None: not filtered on)."""
        return self._call("GET", _project(project_id, "incidents") + _query(cursor, limit, **(filters or {})))

    def get_incident(self, incident_id: str) -> Document:
        return self._call("GET", _incident(incident_id))

    def get_flow(self, project_id: str, reference: str, *, mode: str | None = None,
                 cycle: int | None = None) -> Document:
        """One cycle of the reference (None: the latest) in ``mode`` (None: the project's)."""
        return self._call("GET", _project(project_id, "flows", reference)
                          + _query(None, None, mode=mode, cycle=None if cycle is None else str(cycle)))

    def acknowledge_incident(self, incident_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _incident(incident_id, "acknowledge"), None, idempotency_key)

    def resolve_incident(self, incident_id: str, note: str, *,
                         idempotency_key: str | None = None) -> Document:
        return self._call("POST", _incident(incident_id, "resolve"), {"note": note}, idempotency_key)

    def reprocess_incident(self, incident_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _incident(incident_id, "reprocess"), None, idempotency_key)

    # Operators (admins only)

    def list_operators(self, *, cursor: str | None = None, limit: int | None = None) -> Document:
        return self._call("GET", "/operators" + _query(cursor, limit))

    def invite_operator(self, email: str, *, admin: bool, project_ids: list[str],
                        idempotency_key: str | None = None) -> Document:
        body = {"email": email, "admin": admin, "project_ids": project_ids}
        return self._call("POST", "/operators", body, idempotency_key)

    def remove_operator(self, operator_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _operator(operator_id, "deactivate"), None, idempotency_key)

    def add_member(self, project_id: str, operator_id: str, *,
                   idempotency_key: str | None = None) -> Document:
        return self._call("PUT", _project(project_id, "members", operator_id), None, idempotency_key)

    def remove_member(self, project_id: str, operator_id: str, *,
                      idempotency_key: str | None = None) -> Document:
        return self._call("DELETE", _project(project_id, "members", operator_id), None, idempotency_key)

    def issue_token(self, operator_id: str, *, idempotency_key: str | None = None) -> Document:
        return self._call("POST", _operator(operator_id, "tokens"), None, idempotency_key)

    def revoke_token(self, operator_id: str, token_id: str, *,
                     idempotency_key: str | None = None) -> Document:
        return self._call("POST", _operator(operator_id, "tokens", token_id, "revoke"), None, idempotency_key)


def _outcome_unknown(error: ClientError) -> bool:
    # The request may or may not have been applied (a 5xx releases the key for a retry). A 4xx is
    # a definite answer, often stored under the key: retrying with it would only repeat it.
    if isinstance(error, UnreachableError):
        return error.request_sent
    return isinstance(error, ApiError) and error.status >= 500


def _path(collection: str, *segments: str) -> str:
    return "/".join(["", collection, *(_segment(s) for s in segments)])


def _project(project_id: str, *segments: str) -> str:
    return _path("projects", project_id, *segments)


def _incident(incident_id: str, *segments: str) -> str:
    return _path("incidents", incident_id, *segments)


def _operator(operator_id: str, *segments: str) -> str:
    return _path("operators", operator_id, *segments)


def _query(cursor: str | None, limit: int | None, **filters: str | None) -> str:
    given = {"cursor": cursor, "limit": limit, **filters}
    params = {k: v for k, v in given.items() if v is not None}
    return "?" + urlencode(params) if params else ""


def _document(url: str, raw: bytes) -> Document:
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ClientError(f"{url} did not answer with a JSON object; is --url the SendPromptly API?")
    return doc


def _api_error(url: str, exc: urllib.error.HTTPError) -> ApiError:
    if 300 <= exc.code < 400:
        location = exc.headers.get("Location", "elsewhere")
        detail = f"{url} redirects to {location}; not following it with your token. Check --url."
        return ApiError(exc.code, _problem(exc.code, "Redirected", detail))
    try:
        problem = json.loads(exc.read())
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        # Not the API talking (a proxy, another server): say what answered instead.
        problem = _problem(exc.code, exc.reason or "HTTP error",
                           f"{url} answered without a problem document; is --url the SendPromptly API?")
    return ApiError(exc.code, problem, retry_after=_seconds(exc.headers.get("Retry-After")))


def _seconds(retry_after: str | None) -> float | None:
    # RFC 9110's delta-seconds, which the gateway gives; an HTTP-date (from something else in
    # front of it) is left to the client's own backoff.
    try:
        return float(max(int(retry_after), 0)) if retry_after is not None else None
    except ValueError:
        return None


def _problem(status: int, title: str, detail: str) -> Document:
    # RFC 9457's generic problem ("about:blank"), so callers always get one shape.
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
