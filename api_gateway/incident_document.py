"""An incident's wire form, for the operator API and the flow answer of ingest.

Its own module because both ``ingest`` and ``operator_api.incidents`` answer with it, and the
latter already builds on the former.
"""

from __future__ import annotations

from typing import Any

from store.callback_deliveries import Attempt
from store.incidents import Incident, Replay
from store.notifications import Attempt as Send
from store.notifications import Sent


def _present(doc: dict[str, Any]) -> dict[str, Any]:
    # Optional members (acknowledged_at, resolved_at, resolution, outcome) are left out until
    # they have a value, as in the flow document.
    return {name: value for name, value in doc.items() if value is not None}


def attempt_document(attempt: Attempt) -> dict[str, Any]:
    # An attempt under way has neither outcome nor finished_at; an interrupted one has both, with
    # an error saying that the sink stopped before recording an answer.
    doc: dict[str, Any] = {"attempt": attempt.number, "attempted_at": attempt.attempted_at,
                           "finished_at": attempt.finished_at}
    if attempt.outcome is not None:
        doc |= {"http_status": attempt.outcome.http_status, "latency_ms": attempt.outcome.latency_ms,
                "error": attempt.outcome.error}
    return _present(doc)


def replay_document(replay: Replay) -> dict[str, Any]:
    return {
        **_present({
            "replay_id": replay.replay_id, "requested_by": replay.requested_by,
            "requested_at": replay.requested_at, "attempts": replay.attempts, "outcome": replay.outcome,
            "delivery_status": replay.delivery_status, "next_attempt_at": replay.next_attempt_at,
        }),
        "callback_attempts": [attempt_document(attempt) for attempt in replay.callback_attempts],
    }


def send_document(send: Send) -> dict[str, Any]:
    # A send under way has no finished_at; one that failed has an error.
    outcome = None if send.finished_at is None else "failed" if send.error else "sent"
    return _present({"attempt": send.number, "attempted_at": send.attempted_at,
                     "finished_at": send.finished_at, "outcome": outcome, "error": send.error})


def alert_document(sent: Sent) -> dict[str, Any]:
    return {
        **_present({
            "destination_id": sent.destination_id, "destination_type": sent.destination_type,
            "event": sent.event_type, "replay_id": sent.replay_id, "status": sent.status,
            "attempts": sent.attempts, "last_error": sent.last_error, "created_at": sent.created_at,
        }),
        "sends": [send_document(send) for send in sent.sends],
    }


def incident_document(incident: Incident) -> dict[str, Any]:
    return {
        **_present({
            "id": incident.id, "project_id": incident.project_id, "reference": incident.reference,
            "mode": incident.mode, "reason": incident.reason, "status": incident.status,
            "acknowledged_at": incident.acknowledged_at, "opened_at": incident.opened_at,
            "deadline": incident.deadline, "resolved_at": incident.resolved_at,
            "resolution": incident.resolution, "detail": incident.detail,
        }),
        "replays": [replay_document(replay) for replay in incident.replays],
        "alerts": [alert_document(sent) for sent in incident.alerts],
    }
