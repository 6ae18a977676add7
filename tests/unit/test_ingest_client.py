"""``IngestClient`` against a stub gateway on loopback: a request whose outcome is unknown is sent
again with the same Idempotency-Key, after the Retry-After it was given, a bounded number of
times; a definite answer is never repeated."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.processes import free_port
from sendpromptly.client import ApiError, ClientError, IngestClient, Retry, UnreachableError

PROBLEMS = "https://sendpromptly.dev/problems/"
Reply = tuple[int, dict[str, str], object]  # status, headers, JSON body


class Stub:
    """Answers each request with the next of ``answers`` (status, headers, body), the last one for
    ever; keeps every request's path, Idempotency-Key and body."""

    def __init__(self, answers: list[Reply]):
        self.answers = answers
        self.requests: list[tuple[str, str | None, object]] = []


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    made = Stub([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            made.requests.append((self.path, self.headers.get("Idempotency-Key"), body))
            status, headers, answer = made.answers[min(len(made.requests), len(made.answers)) - 1]
            raw = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def unavailable(retry_after: str) -> Reply:
    return 503, {"Retry-After": retry_after}, {"type": PROBLEMS + "kafka-unavailable", "status": 503,
                                               "title": "Service Unavailable", "detail": "Kafka is away"}


def client(url: str, waits: list[float], attempts: int = 4) -> IngestClient:
    return IngestClient(url, "sk_test", retry=Retry(attempts=attempts, sleep=waits.append))


ITEMS = [{"idempotency_key": "k1", "reference": "r", "status": "succeeded"}]


def test_a_503_is_retried_with_the_same_key_after_its_retry_after(stub: tuple[Stub, str]) -> None:
    server, url = stub
    ok = {"items": [{"index": 0, "idempotency_key": "k1", "outcome": "accepted"}]}
    server.answers = [unavailable("5"), unavailable("2"), (200, {"Idempotent-Replayed": "true"}, ok)]
    waits: list[float] = []

    answer = client(url, waits).send_batch("result", ITEMS)

    assert (answer.doc, answer.replayed) == (ok, True)
    assert waits == [5.0, 2.0]
    paths, keys, bodies = zip(*server.requests, strict=True)
    assert set(paths) == {"/api/v1/results/batch"} and all(body == {"items": ITEMS} for body in bodies)
    assert len(set(keys)) == 1 and keys[0].startswith("batch-"), "one key, derived from the content"
    # The same batch from another client (another run) carries the same key.
    client(url, waits).send_batch("result", ITEMS)
    assert server.requests[-1][1] == keys[0]


def test_retries_are_bounded_and_the_last_error_carries_the_key(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.answers = [unavailable("1")]
    waits: list[float] = []

    with pytest.raises(ApiError) as failed:
        client(url, waits, attempts=3).send("receipt", {"reference": "r"}, idempotency_key="single-1")

    assert len(server.requests) == 3 and waits == [1.0, 1.0]
    assert {(path, key) for path, key, _ in server.requests} == {("/api/v1/receipt", "single-1")}
    assert failed.value.status == 503 and failed.value.idempotency_key == "single-1"


def test_a_long_retry_after_is_capped_and_a_missing_one_backs_off(stub: tuple[Stub, str]) -> None:
    server, url = stub
    in_flight: Reply = (409, {}, {"type": PROBLEMS + "idempotency-key-in-flight", "status": 409,
                           "title": "Signal in progress", "detail": "still being processed"})
    server.answers = [unavailable("3600"), in_flight, in_flight, (202, {}, {"status": "accepted"})]
    waits: list[float] = []

    client(url, waits).send("receipt", {"reference": "r"}, idempotency_key="k")

    assert waits[0] == Retry().max_delay
    assert 0.5 <= waits[1] <= 1.0 and 1.0 <= waits[2] <= 2.0, "doubling, with jitter"


@pytest.mark.parametrize("status", [400, 401, 409, 422, 500])
def test_a_definite_answer_is_not_retried(stub: tuple[Stub, str], status: int) -> None:
    server, url = stub
    server.answers = [(status, {}, {"type": PROBLEMS + "x", "status": status, "title": "No"})]
    with pytest.raises(ApiError):
        client(url, []).send_batch("receipt", ITEMS)
    assert len(server.requests) == 1


def test_a_url_that_is_not_http_is_refused_before_anything_is_opened() -> None:
    with pytest.raises(ClientError, match="'file:///etc/passwd' is not an http:// or https:// URL"):
        IngestClient("file:///etc/passwd", "sk_test")


def test_an_unreachable_gateway_is_retried_then_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []
    with pytest.raises(UnreachableError, match=f"cannot reach {url}"):
        client(url, waits, attempts=2).send("result", {"reference": "r"}, idempotency_key="k")
    assert len(waits) == 1
