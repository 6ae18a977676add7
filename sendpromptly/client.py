"""A small synchronous client for the operator API (DESIGN.md §5), standard library only.

One method per operation; each answers the API's JSON document as a dict. Every POST, PUT, PATCH
and DELETE carries an ``Idempotency-Key`` (a fresh one unless the caller passes one to retry
safely). A non-2xx answer raises ``ApiError`` with the RFC 9457 problem document.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote, urlencode

TIMEOUT_SECONDS = 30.0
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Document = dict[str, Any]


class ClientError(Exception):
    """The request failed; ``str()`` says why, for a person. ``idempotency_key`` is set when the
    outcome of a mutating request is unknown, so that a retry with it cannot apply it twice."""

    idempotency_key: str | None = None


class UnreachableError(ClientError):
    def __init__(self, message: str, *, request_sent: bool):
        super().__init__(message)
        self.request_sent = request_sent


class ApiError(ClientError):
    def __init__(self, status: int, problem: Document):
        self.status = status
        self.problem = problem
        super().__init__(status, problem)

    def __str__(self) -> str:
        title = self.problem.get("title") or "Error"
        lines = [f"{title} ({self.status}): {self.problem.get('detail') or ''}".rstrip()]
        for error in self.problem.get("errors") or []:
            lines.append(f"  {error.get('field') or '(body)'}: {error.get('message')}")
        return "\n".join(lines)


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


class OperatorClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = TIMEOUT_SECONDS):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

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

    # The wire

    def _call(self, method: str, path: str, body: Document | None = None,
              idempotency_key: str | None = None) -> Document:
        url = f"{self.base_url}/api/v1{path}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                   "User-Agent": "sendpromptly-cli"}
        if method in MUTATING_METHODS:
            idempotency_key = idempotency_key or str(uuid.uuid4())
            headers["Idempotency-Key"] = idempotency_key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return self._send(request)
        except ClientError as error:
            if idempotency_key is not None and _outcome_unknown(error):
                error.idempotency_key = idempotency_key
            raise

    def _send(self, request: urllib.request.Request) -> Document:
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return _document(request.full_url, response.read())
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
    return ApiError(exc.code, problem)


def _problem(status: int, title: str, detail: str) -> Document:
    # RFC 9457's generic problem ("about:blank"), so callers always get one shape.
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}
