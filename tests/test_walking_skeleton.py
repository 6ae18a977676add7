"""The whole path once: HTTP → Kafka → agents → read model → HTTP, on real services."""

from __future__ import annotations

import pytest

from tests.support.api import Api, eventually, flow_is

pytestmark = pytest.mark.e2e


async def test_receipt_alone_reads_pending(api: Api) -> None:
    status, accepted = await api.receipt("inv_pending")
    assert status == 202
    assert (accepted["status"], accepted["kind"]) == ("accepted", "receipt")
    assert accepted["reference"] == "inv_pending"

    _, flow = await eventually(lambda: api.flow("inv_pending"), flow_is("pending"))
    assert flow["event_type"] == "invoice.paid" and flow["effect_type"] == "grant_access"
    assert flow["mode"] == "test"
    assert "applied_at" not in flow


async def test_receipt_then_result_reads_applied(api: Api) -> None:
    assert (await api.receipt("inv_applied"))[0] == 202
    await eventually(lambda: api.flow("inv_applied"), flow_is("pending"))
    assert (await api.result("inv_applied", "succeeded"))[0] == 202

    _, flow = await eventually(lambda: api.flow("inv_applied"), flow_is("applied"))
    assert flow["applied_at"] >= flow["received_at"]


async def test_result_before_receipt_is_held_until_the_receipt_comes(api: Api) -> None:
    assert (await api.result("inv_early", "succeeded"))[0] == 202
    # The result alone makes no flow (and never an incident): there is nothing to read yet.
    status, problem = await api.flow("inv_early")
    assert status == 404 and problem["status"] == 404

    assert (await api.receipt("inv_early"))[0] == 202
    await eventually(lambda: api.flow("inv_early"), flow_is("applied"))


async def test_a_key_sees_only_its_own_project(api: Api, http, stack, database_url) -> None:
    from common.apikeys import generate_api_key
    from store.db import open_pool
    from store.projects import add_api_key, create_project

    assert (await api.receipt("inv_private"))[0] == 202
    await eventually(lambda: api.flow("inv_private"), flow_is("pending"))

    pool = await open_pool(database_url, max_size=1)
    async with pool.connection() as conn:
        other = await create_project(conn, name="other")
        other_key = generate_api_key()
        await add_api_key(conn, other.id, "other", other_key)
    await pool.close()
    status, _ = await Api(http, stack.base_url, other_key.plaintext).flow("inv_private")
    assert status == 404


async def test_direct_producers_are_joined_and_bad_messages_are_dead_lettered(
        api: Api, services, topic_prefix: str, project) -> None:
    from datetime import UTC, datetime

    from confluent_kafka import Producer

    from harness.kafka import read_topic
    from topics import DEADLETTER, RECEIPTS, DeadLetter, Receipt, decode, encode, flow_key

    good = Receipt(project_id=project.project_id, idempotency_key="direct-1", reference="inv_direct",
                   event_type="invoice.paid", effect_type="grant_access", received_at=datetime.now(UTC))
    # Direct producers partition with murmur2 (the Java client's default), like the gateway.
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap, "enable.idempotence": True,
                         "partitioner": "murmur2_random"})
    topic = RECEIPTS.name(topic_prefix)
    producer.produce(topic, key=flow_key(project.project_id, "inv_direct"), value=b"{not json")
    producer.produce(topic, key=b"prj_unknown:inv_x", value=encode(Receipt(
        project_id="prj_unknown", idempotency_key="x", reference="inv_x", event_type="a", effect_type="b",
        received_at=datetime.now(UTC))))
    producer.produce(topic, key=flow_key(project.project_id, "inv_direct"), value=encode(good))
    assert producer.flush(10) == 0

    # The good message behind the bad ones is processed: nothing stalls the partition.
    _, flow = await eventually(lambda: api.flow("inv_direct"), flow_is("pending"))
    assert flow["mode"] == "test"  # a direct producer's receipt takes the project's mode

    letters = [decode(DeadLetter, v)
               for _, v in await read_topic(services.kafka_bootstrap, DEADLETTER.name(topic_prefix))]
    reasons = sorted(letter.reason.split(":", 1)[0] for letter in letters)
    assert reasons == ["not_json", "unknown_project"]
    assert any(letter.value_b64 == "e25vdCBqc29u" for letter in letters)  # the exact bytes, b"{not json"


async def test_a_signal_on_the_wrong_partition_for_its_key_is_forwarded_and_joined(
        api: Api, services, topic_prefix: str, project) -> None:
    from datetime import UTC, datetime

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from agents.tracker import partition_of
    from harness.kafka import read_topic
    from topics import RECEIPTS, Receipt, encode, flow_key

    # librdkafka's default partitioner (CRC32) puts some keys on another partition than murmur2:
    # find a reference it misplaces, and send its receipt exactly where CRC32 would.
    topic = RECEIPTS.name(topic_prefix)
    partitions = len(AdminClient({"bootstrap.servers": services.kafka_bootstrap})
                     .list_topics(topic, timeout=10).topics[topic].partitions)
    reference = next(f"inv_crc_{n}" for n in range(100)
                     if partition_of(flow_key(project.project_id, f"inv_crc_{n}"), partitions) == 0)
    key = flow_key(project.project_id, reference)
    receipt = Receipt(project_id=project.project_id, idempotency_key="crc-1", reference=reference,
                      event_type="invoice.paid", effect_type="grant_access", received_at=datetime.now(UTC),
                      timeout_seconds=600)
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap})
    producer.produce(topic, key=key, value=encode(receipt), partition=1)
    assert producer.flush(10) == 0

    await eventually(lambda: api.flow(reference), flow_is("pending"))
    status, _ = await api.result(reference, "succeeded")
    assert status == 202
    await eventually(lambda: api.flow(reference), flow_is("applied"))
    copies = [k for k, _ in await read_topic(services.kafka_bootstrap, topic) if k == key]
    assert len(copies) == 2, "the misplaced receipt and its forwarded copy on the right partition"
