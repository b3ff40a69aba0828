"""Kinesis Queues through boto3: the queue lifecycle, competing consumers, visibility timeouts,
dead-letter records and their restore, long polling woken by puts, durability of
acknowledgements across kill -9, retention, and validation errors."""

import collections
import itertools
import threading
import time

import botocore.exceptions
import pytest

from millrace_testlib import (
    ACCOUNT,
    REGION,
    assert_client_error,
    client_error,
    make_client,
    validation_entry,
    validation_message,
    wait_status,
)

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{int(time.time() * 1000) % 100000}"


def on_demand_stream(kinesis, name: str) -> str:
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(kinesis, name)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def make_queue(kinesis, stream_arn: str, name: str | None = None, **kwargs) -> str:
    name = name or unique("q")
    arn = kinesis.create_queue(
        QueueName=name, StreamConfigurationList=[{"StreamARN": stream_arn, **kwargs.pop("config", {})}], **kwargs
    )["QueueDescription"]["QueueARN"]
    deadline = time.monotonic() + 30
    while kinesis.describe_queue(QueueARN=arn)["QueueDescription"]["QueueStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "queue did not become ACTIVE"
        time.sleep(0.05)
    return arn


def put_many(kinesis, stream: str, count: int, prefix: str) -> set[bytes]:
    payloads = [f"{prefix}-{i}".encode() for i in range(count)]
    for start in range(0, count, 500):
        batch = payloads[start:start + 500]
        result = kinesis.put_records(
            StreamName=stream, Records=[{"PartitionKey": p.decode(), "Data": p} for p in batch]
        )
        assert result["FailedRecordCount"] == 0
    return set(payloads)


def receive(kinesis, arn: str, **kwargs) -> list[dict]:
    kwargs.setdefault("WaitTimeSeconds", 1)
    return kinesis.receive_queue_records(QueueARN=arn, **kwargs)["QueueRecords"]


def ack(kinesis, arn: str, records: list[dict], operation: str = "acknowledge_queue_records") -> dict:
    return getattr(kinesis, operation)(QueueARN=arn, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in records])


@pytest.fixture(scope="module")
def queue_stream(module_kinesis):
    name = unique("queued")
    return name, on_demand_stream(module_kinesis, name)


def test_queue_lifecycle(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    name = unique("life")
    created = kinesis.create_queue(
        QueueName=name,
        StreamConfigurationList=[{"StreamARN": stream_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        Tags={"team": "data"},
    )["QueueDescription"]
    arn = created["QueueARN"]
    assert arn.startswith(f"arn:aws:kinesis:{REGION}:{ACCOUNT}:queue/") and name not in arn
    assert created["QueueName"] == name and created["QueueStatus"] == "CREATING"
    # While CREATING, TRIM_HORIZON carries no timestamp; the defaults are 30 s and six receives.
    assert created["StreamConfigurationList"] == [{"StreamARN": stream_arn, "StartingPosition": {"Type": "TRIM_HORIZON"}}]
    assert created["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 30,
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 6},
    }
    described = kinesis.describe_queue(QueueARN=arn)["QueueDescription"]
    assert described["QueueStatus"] == "ACTIVE"
    assert "Timestamp" in described["StreamConfigurationList"][0]["StartingPosition"]
    listed = kinesis.list_queues(StreamFilter=[{"StreamARN": stream_arn}])["QueueSummaries"]
    mine = [q for q in listed if q["QueueARN"] == arn]
    assert len(mine) == 1 and mine[0]["QueueName"] == name and mine[0]["Streams"][0]["StreamARN"] == stream_arn
    other = stream_arn.replace(f"stream/{stream}", "stream/no-such-stream")
    assert kinesis.list_queues(StreamFilter=[{"StreamARN": other}])["QueueSummaries"] == []
    # Pagination walks every queue once.
    second = make_queue(kinesis, stream_arn)
    seen, token = [], None
    while True:
        page = kinesis.list_queues(MaxResults=1, **({"NextToken": token} if token else {}))
        seen += [q["QueueARN"] for q in page["QueueSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert arn in seen and second in seen and len(seen) == len(set(seen))
    updated = kinesis.update_queue(
        QueueARN=arn, QueueAttributes={"VisibilityTimeoutSeconds": 5, "DeadLetterConfiguration": {"TargetType": "NONE"}}
    )["QueueDescription"]
    assert updated["QueueAttributes"] == {"VisibilityTimeoutSeconds": 5, "DeadLetterConfiguration": {"TargetType": "NONE"}}
    # Attributes not given are left alone.
    updated = kinesis.update_queue(QueueARN=arn, QueueAttributes={})["QueueDescription"]
    assert updated["QueueAttributes"]["VisibilityTimeoutSeconds"] == 5
    # Tags: CreateQueue's, then the resource-ARN operations on the queue ARN.
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    kinesis.tag_resource(ResourceARN=arn, Tags={"tier": "gold"})
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "tier", "Value": "gold"}]
    err = client_error(kinesis.tag_resource, ResourceARN=arn, Tags={"bad": "a|b"})
    assert_client_error(err, "InvalidArgumentException",
                        "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white "
                        "space, _ . / = + - % @.")
    kinesis.delete_queue(QueueARN=arn)
    kinesis.delete_queue(QueueARN=second)
    err = client_error(kinesis.describe_queue, QueueARN=arn)
    assert_client_error(err, "ResourceNotFoundException", f"Queue {arn} not found.")
    assert arn not in [q["QueueARN"] for q in kinesis.list_queues()["QueueSummaries"]]


def test_queue_refusals(module_kinesis, queue_stream):
    kinesis = module_kinesis
    _, stream_arn = queue_stream
    name = unique("dup")
    arn = make_queue(kinesis, stream_arn, name)
    err = client_error(kinesis.create_queue, QueueName=name, StreamConfigurationList=[{"StreamARN": stream_arn}])
    assert_client_error(err, "ResourceInUseException", f"Queue {name} under account {ACCOUNT} already exists.")
    provisioned = unique("provisioned")
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    wait_status(kinesis, provisioned)
    provisioned_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{provisioned}"
    err = client_error(kinesis.create_queue, QueueName=unique("p"), StreamConfigurationList=[{"StreamARN": provisioned_arn}])
    assert_client_error(
        err, "InvalidArgumentException",
        f"Queues are supported only on data streams in on-demand capacity mode. Stream {provisioned} under "
        f"account {ACCOUNT} is in provisioned mode.",
    )
    missing = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/never-made"
    err = client_error(kinesis.create_queue, QueueName=unique("m"), StreamConfigurationList=[{"StreamARN": missing}])
    assert_client_error(err, "ResourceNotFoundException", f"Stream never-made under account {ACCOUNT} not found.")
    err = client_error(kinesis.create_queue, QueueName=unique("two"),
                       StreamConfigurationList=[{"StreamARN": stream_arn}, {"StreamARN": stream_arn}])
    assert_client_error(
        err, "InvalidArgumentException",
        "StreamConfigurationList must contain exactly one entry, because a queue delivers records from a single "
        "data stream.",
    )
    # The stream cannot go while a queue reads it.
    stream = stream_arn.rsplit("/", 1)[1]
    err = client_error(kinesis.delete_stream, StreamName=stream)
    assert_client_error(
        err, "ResourceInUseException",
        f"Stream {stream} under account {ACCOUNT} has queues; delete every queue on the stream first.",
    )
    err = client_error(kinesis.update_stream_mode, StreamARN=stream_arn,
                       StreamModeDetails={"StreamMode": "PROVISIONED"})
    assert_client_error(
        err, "ResourceInUseException",
        f"Stream {stream} under account {ACCOUNT} has queues; delete every queue on the stream first.",
    )
    kinesis.delete_queue(QueueARN=arn)
    unknown = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:queue/0123456789abcdef01234567"
    err = client_error(kinesis.receive_queue_records, QueueARN=unknown, WaitTimeSeconds=1)
    assert_client_error(err, "ResourceNotFoundException", f"Queue {unknown} not found.")


def test_validation_errors_change_nothing(module_server, queue_stream):
    raw = make_client(module_server.endpoint, validate=False)
    _, stream_arn = queue_stream
    arn = make_queue(raw, stream_arn)
    cases = [
        ("receive_queue_records", {"QueueARN": arn, "Limit": 11},
         validation_entry("11", "limit", "Member must have value less than or equal to 10")),
        ("receive_queue_records", {"QueueARN": arn, "WaitTimeSeconds": 21},
         validation_entry("21", "waitTimeSeconds", "Member must have value less than or equal to 20")),
        ("receive_queue_records", {"QueueARN": arn, "WaitTimeSeconds": 0},
         validation_entry("0", "waitTimeSeconds", "Member must have value greater than or equal to 1")),
        ("receive_queue_records", {"QueueARN": arn, "VisibilityTimeoutSeconds": 43201},
         validation_entry("43201", "visibilityTimeoutSeconds", "Member must have value less than or equal to 43200")),
        ("acknowledge_queue_records", {"QueueARN": arn, "Entries": [{"ReceiptHandle": "h"}] * 11},
         validation_entry("[" + ", ".join(["com.amazonaws.kinesis.v20131202.AcknowledgeQueueRecordsRequestEntry@301efa97"] * 11)
                          + "]", "entries", "Member must have length less than or equal to 10")),
        ("update_queue", {"QueueARN": arn, "QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "BUILT_IN",
                                                                                             "MaxReceiveCount": 0}}},
         validation_entry("0", "queueAttributes.deadLetterConfiguration.maxReceiveCount",
                          "Member must have value greater than or equal to 1")),
    ]
    for operation, params, entry in cases:
        err = client_error(getattr(raw, operation), **params)
        assert_client_error(err, "ValidationException", validation=[entry])
    name = "bad name!"
    err = client_error(raw.create_queue, QueueName=name, StreamConfigurationList=[{"StreamARN": stream_arn}])
    assert_client_error(err, "ValidationException", validation=[
        validation_entry(name, "queueName", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")])
    err = client_error(raw.create_queue, QueueName=unique("ts"),
                       StreamConfigurationList=[{"StreamARN": stream_arn, "StartingPosition": {"Type": "AT_TIMESTAMP"}}])
    assert_client_error(err, "ValidationException",
                        "Timestamp is required when the StartingPosition Type is AT_TIMESTAMP.")
    err = client_error(raw.create_queue, QueueName=unique("ts"), StreamConfigurationList=[
        {"StreamARN": stream_arn, "StartingPosition": {"Type": "LATEST", "Timestamp": time.time()}}])
    assert_client_error(err, "ValidationException",
                        "Timestamp must not be specified when the StartingPosition Type is LATEST.")
    err = client_error(raw.update_queue, QueueARN=arn,
                       QueueAttributes={"DeadLetterConfiguration": {"TargetType": "BUILT_IN"}})
    assert_client_error(err, "ValidationException",
                        "MaxReceiveCount is required when the DeadLetterConfiguration TargetType is BUILT_IN.")
    # Nothing changed.
    attributes = raw.describe_queue(QueueARN=arn)["QueueDescription"]["QueueAttributes"]
    assert attributes["DeadLetterConfiguration"] == {"TargetType": "BUILT_IN", "MaxReceiveCount": 6}
    assert name not in [q["QueueName"] for q in raw.list_queues()["QueueSummaries"]]
    raw.delete_queue(QueueARN=arn)


def test_bad_receipt_handles_fail_per_entry(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn)
    put_many(kinesis, stream, 1, "handles")
    [record] = receive(kinesis, arn, WaitTimeSeconds=10)
    result = kinesis.acknowledge_queue_records(
        QueueARN=arn, Entries=[{"ReceiptHandle": "forged"}, {"ReceiptHandle": record["ReceiptHandle"]}]
    )
    assert result["Successful"] == [{"ReceiptHandle": record["ReceiptHandle"]}]
    assert result["Failed"] == [{
        "ReceiptHandle": "forged", "ErrorCode": "InvalidArgumentException",
        "ErrorMessage": "The receipt handle forged is not valid for this queue.",
    }]
    # Acknowledging again changes nothing and succeeds; restoring a record that is not a
    # dead-letter record fails for that entry.
    assert ack(kinesis, arn, [record])["Successful"] == [{"ReceiptHandle": record["ReceiptHandle"]}]
    restored = ack(kinesis, arn, [record], "restore_dead_letter_queue_records")
    assert [f["ErrorCode"] for f in restored["Failed"]] == ["InvalidArgumentException"]
    kinesis.delete_queue(QueueARN=arn)


def test_competing_consumers_receive_every_record_exactly_once(module_server, queue_stream):
    kinesis = module_server.client()
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn)
    expected = put_many(kinesis, stream, 600, "compete")
    received: list[bytes] = []
    failures: list[dict] = []
    lock = threading.Lock()
    done = threading.Event()

    def consumer():
        client = make_client(module_server.endpoint)
        empty_rounds = 0
        while not done.is_set() and empty_rounds < 3:
            records = receive(client, arn, WaitTimeSeconds=1, VisibilityTimeoutSeconds=120)
            if not records:
                empty_rounds += 1
                continue
            empty_rounds = 0
            result = ack(client, arn, records)
            with lock:
                received.extend(r["Data"] for r in records)
                failures.extend(result["Failed"])
                if len(received) >= len(expected):
                    done.set()

    threads = [threading.Thread(target=consumer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == []
    counts = collections.Counter(received)
    assert set(counts) == expected
    assert [d for d, n in counts.items() if n > 1] == []
    assert receive(kinesis, arn) == []
    kinesis.delete_queue(QueueARN=arn)


def test_unacknowledged_record_returns_after_visibility_timeout(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn)
    put_many(kinesis, stream, 1, "visibility")
    [first] = receive(kinesis, arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=5)
    assert first["ReceiveCount"] == 1 and first["Data"] == b"visibility-0" and first["PartitionKey"] == "visibility-0"
    # In flight: no one else gets it meanwhile.
    assert receive(kinesis, arn, WaitTimeSeconds=1) == []
    [again] = receive(kinesis, arn, WaitTimeSeconds=20)
    assert again["RecordId"] == first["RecordId"] and again["ReceiveCount"] == 2
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    assert again["FirstReceiveTimestamp"] == first["FirstReceiveTimestamp"]
    # The first delivery's handle is spent; the current one acknowledges.
    stale = ack(kinesis, arn, [first])
    assert stale["Successful"] == [] and stale["Failed"][0]["ErrorCode"] == "InvalidArgumentException"
    # Visibility 0 makes it visible at once.
    changed = kinesis.update_queue_records_visibility(
        QueueARN=arn, Entries=[{"ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}])
    assert changed["Failed"] == []
    [third] = receive(kinesis, arn, WaitTimeSeconds=10)
    assert third["RecordId"] == first["RecordId"] and third["ReceiveCount"] == 3
    assert ack(kinesis, arn, [third])["Successful"] == [{"ReceiptHandle": third["ReceiptHandle"]}]
    assert receive(kinesis, arn, WaitTimeSeconds=1) == []
    kinesis.delete_queue(QueueARN=arn)


def test_poison_record_becomes_dead_letter_and_is_restored(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn, QueueAttributes={
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}})
    put_many(kinesis, stream, 2, "poison")
    ids = {}
    for count in (1, 2):
        records = receive(kinesis, arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=0)
        if len(records) < 2:
            records += receive(kinesis, arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=0)
        assert sorted(r["ReceiveCount"] for r in records) == [count, count]
        ids = {r["Data"]: r["RecordId"] for r in records}
    # Received MaxReceiveCount times without an acknowledgement: dead-letter records now.
    assert receive(kinesis, arn, WaitTimeSeconds=1) == []
    dead = receive(kinesis, arn, WaitTimeSeconds=10) if False else kinesis.receive_dead_letter_queue_records(
        QueueARN=arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=60)["QueueRecords"]
    if len(dead) < 2:
        dead += kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=10)["QueueRecords"]
    assert sorted(r["Data"] for r in dead) == [b"poison-0", b"poison-1"]
    assert {r["Data"]: r["RecordId"] for r in dead} == ids
    by_data = {r["Data"]: r for r in dead}
    # A dead-letter handle does not acknowledge on the normal path.
    wrong = ack(kinesis, arn, [by_data[b"poison-0"]])
    assert wrong["Failed"][0]["ErrorCode"] == "InvalidArgumentException"
    restored = ack(kinesis, arn, [by_data[b"poison-0"]], "restore_dead_letter_queue_records")
    assert restored["Successful"] == [{"ReceiptHandle": by_data[b"poison-0"]["ReceiptHandle"]}]
    # Restored, its dead-letter handle is spent.
    spent = ack(kinesis, arn, [by_data[b"poison-0"]], "acknowledge_dead_letter_queue_records")
    assert [f["ErrorCode"] for f in spent["Failed"]] == ["InvalidArgumentException"]
    discarded = ack(kinesis, arn, [by_data[b"poison-1"]], "acknowledge_dead_letter_queue_records")
    assert discarded["Failed"] == []
    # The restored record is back on the normal path with its receive count reset.
    [back] = receive(kinesis, arn, WaitTimeSeconds=10)
    assert back["Data"] == b"poison-0" and back["ReceiveCount"] == 1 and back["RecordId"] == ids[b"poison-0"]
    assert ack(kinesis, arn, [back])["Failed"] == []
    assert kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=1)["QueueRecords"] == []
    kinesis.delete_queue(QueueARN=arn)


def test_dead_letter_handling_off_keeps_redelivering(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn, QueueAttributes={"DeadLetterConfiguration": {"TargetType": "NONE"}})
    put_many(kinesis, stream, 1, "endless")
    for count in range(1, 9):
        [record] = receive(kinesis, arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=0)
        assert record["ReceiveCount"] == count
    assert kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=1)["QueueRecords"] == []
    kinesis.delete_queue(QueueARN=arn)


def test_long_poll_returns_promptly_after_a_put(module_server, queue_stream):
    kinesis = module_server.client()
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn)
    result = {}

    def poll():
        client = make_client(module_server.endpoint)
        started = time.monotonic()
        result["records"] = receive(client, arn, WaitTimeSeconds=20)
        result["returned"] = time.monotonic()
        result["waited"] = result["returned"] - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)
    assert "records" not in result, "the long poll returned before any record was put"
    put_at = time.monotonic()
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"wake")
    thread.join(timeout=30)
    assert [r["Data"] for r in result["records"]] == [b"wake"]
    # Woken by the append, not by the 20 s deadline (generous bound for a loaded machine).
    assert result["returned"] - put_at < 10, result
    ack(kinesis, arn, result["records"])
    kinesis.delete_queue(QueueARN=arn)


def test_records_leave_the_queue_with_retention(server_factory):
    server = server_factory(args=["--retention-hour-ms", "50", "--retention-check-ms", "100"])
    kinesis = server.client()
    stream = unique("short")
    stream_arn = on_demand_stream(kinesis, stream)
    arn = make_queue(kinesis, stream_arn)
    put_many(kinesis, stream, 3, "old")
    [held] = receive(kinesis, arn, WaitTimeSeconds=10, Limit=1, VisibilityTimeoutSeconds=1)
    # 24 retention hours last 1.2 s here: once they are over the queue has nothing left.
    time.sleep(3)
    assert receive(kinesis, arn, WaitTimeSeconds=1) == []
    # A record put now is delivered.
    put_many(kinesis, stream, 1, "new")
    [fresh] = receive(kinesis, arn, WaitTimeSeconds=10)
    assert fresh["Data"] == b"new-0"
    assert held["Data"].startswith(b"old-")


def test_kill9_mid_traffic_loses_no_acknowledgement(server_factory):
    server = server_factory()
    kinesis = server.client()
    stream = unique("crash")
    stream_arn = on_demand_stream(kinesis, stream)
    arn = make_queue(kinesis, stream_arn)
    expected = put_many(kinesis, stream, 1500, "crash")
    acked: set[bytes] = set()
    in_doubt: set[bytes] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def consumer():
        client = make_client(server.endpoint, read_timeout=30)
        while not stop.is_set():
            try:
                records = receive(client, arn, WaitTimeSeconds=1, VisibilityTimeoutSeconds=3)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                return
            try:
                result = ack(client, arn, records) if records else {"Successful": []}
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                # Cut off by the crash: acknowledged or not, nobody can tell.
                with lock:
                    in_doubt.update(r["Data"] for r in records)
                return
            done = {r["ReceiptHandle"] for r in result["Successful"]}
            with lock:
                acked.update(r["Data"] for r in records if r["ReceiptHandle"] in done)

    threads = [threading.Thread(target=consumer) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while True:
        with lock:
            if len(acked) >= 300:
                break
        assert time.monotonic() < deadline, "consumers made no progress"
        time.sleep(0.05)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    server.restart()
    kinesis = server.client()
    delivered: list[bytes] = []
    empty = 0
    deadline = time.monotonic() + 120
    while empty < 5 and time.monotonic() < deadline:
        records = receive(kinesis, arn, WaitTimeSeconds=1, VisibilityTimeoutSeconds=60)
        if not records:
            empty += 1
            continue
        empty = 0
        delivered += [r["Data"] for r in records]
        assert ack(kinesis, arn, records)["Failed"] == []
    assert acked, "nothing was acknowledged before the crash"
    # Nothing acknowledged comes back; everything else does (in-flight records after their
    # visibility timeout), but for acknowledgements the crash cut off, which may have landed.
    assert set(delivered) & acked == set()
    assert set(delivered) | acked <= expected
    assert expected - set(delivered) - acked <= in_doubt
    assert len(delivered) == len(set(delivered))


def test_queue_round_trip_in_cbor(module_server, queue_stream):
    """The AWS Java SDK speaks CBOR: blobs as byte strings, timestamps as tag 1 + epoch millis."""
    from test_cbor import Tag, call

    endpoint = module_server.endpoint
    stream, stream_arn = queue_stream
    status, body, _ = call(endpoint, "CreateQueue", {
        "QueueName": unique("cbor"),
        "StreamConfigurationList": [{"StreamARN": stream_arn,
                                     "StartingPosition": {"Type": "AT_TIMESTAMP",
                                                          "Timestamp": Tag(1, int(time.time() * 1000))}}],
    }, "cbor")
    assert status == 200, body
    arn = body["QueueDescription"]["QueueARN"]
    created = body["QueueDescription"]["QueueCreationTimestamp"]
    assert isinstance(created, Tag) and created.number == 1 and isinstance(created.value, int)
    payload = bytes(range(256))
    status, body, _ = call(endpoint, "PutRecord", {"StreamName": stream, "PartitionKey": "c", "Data": payload}, "cbor")
    assert status == 200, body
    status, body, _ = call(endpoint, "ReceiveQueueRecords", {"QueueARN": arn, "WaitTimeSeconds": 10}, "cbor")
    assert status == 200, body
    [record] = body["QueueRecords"]
    assert record["Data"] == payload and record["PartitionKey"] == "c" and record["ReceiveCount"] == 1
    for member in ("ApproximateArrivalTimestamp", "FirstReceiveTimestamp"):
        assert isinstance(record[member], Tag) and record[member].number == 1, member
    status, body, _ = call(endpoint, "AcknowledgeQueueRecords",
                           {"QueueARN": arn, "Entries": [{"ReceiptHandle": record["ReceiptHandle"]}]}, "cbor")
    assert status == 200 and body["Failed"] == [] and len(body["Successful"]) == 1, body
    status, body, _ = call(endpoint, "ReceiveQueueRecords", {"QueueARN": arn, "Limit": 11}, "cbor")
    assert status == 400 and body["__type"] == "ValidationException", body
    status, body, _ = call(endpoint, "DeleteQueue", {"QueueARN": arn}, "cbor")
    assert status == 200, body


def test_queue_metrics_in_cloudwatch(module_server, queue_stream):
    import datetime as dt

    kinesis = module_server.client()
    stream, stream_arn = queue_stream
    name = unique("metered")
    arn = make_queue(kinesis, stream_arn, name)
    assert receive(kinesis, arn, WaitTimeSeconds=1) == []
    put_many(kinesis, stream, 3, "metered")
    # Receives sample the gauges at most once a second: this one sees 2 visible, 1 in flight.
    time.sleep(1.2)
    records = receive(kinesis, arn, WaitTimeSeconds=10, Limit=1)
    deadline = time.monotonic() + 30
    while len(records) < 3 and time.monotonic() < deadline:
        records += receive(kinesis, arn, WaitTimeSeconds=5)
    assert len(records) == 3
    assert len(ack(kinesis, arn, records)["Successful"]) == 3
    import boto3

    cw = boto3.client("cloudwatch", endpoint_url=module_server.endpoint, region_name=REGION,
                      aws_access_key_id="test", aws_secret_access_key="test")
    dimensions = [{"Name": "QueueId", "Value": arn.rsplit("/", 1)[1]}, {"Name": "QueueName", "Value": name}]
    now = dt.datetime.now(dt.timezone.utc)

    def total(metric: str, statistic: str = "Sum") -> float:
        out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName=metric, Dimensions=dimensions,
                                       StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=2),
                                       Period=60, Statistics=[statistic])
        values = [p[statistic] for p in out["Datapoints"]]
        return sum(values) if statistic == "Sum" else max(values)

    assert total("ReceivedQueueRecords") == 3
    assert total("AcknowledgedQueueRecords") == 3
    assert total("EmptyReceives") >= 1
    # Later samples see fewer visible records; the records in flight rise to at most 3.
    assert total("VisibleQueueRecords", "Maximum") == 2
    assert 1 <= total("InFlightQueueRecords", "Maximum") <= 3
    assert total("VisibleDeadLetterQueueRecords", "Maximum") == 0
    kinesis.delete_queue(QueueARN=arn)


def test_queues_share_the_registered_consumer_limit(module_kinesis):
    kinesis = module_kinesis
    stream = unique("shared")
    stream_arn = on_demand_stream(kinesis, stream)
    for i in range(19):
        kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=f"c{i}")
    arn = make_queue(kinesis, stream_arn)
    full = f"Stream {stream} under account {ACCOUNT} already has 20 registered consumers."
    err = client_error(kinesis.create_queue, QueueName=unique("over"), StreamConfigurationList=[{"StreamARN": stream_arn}])
    assert_client_error(err, "LimitExceededException", full)
    err = client_error(kinesis.register_stream_consumer, StreamARN=stream_arn, ConsumerName="c19")
    assert_client_error(err, "LimitExceededException", full)
    kinesis.delete_queue(QueueARN=arn)
    kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="c19")


def test_starting_positions(module_kinesis):
    kinesis = module_kinesis
    stream = unique("positions")
    stream_arn = on_demand_stream(kinesis, stream)
    put_many(kinesis, stream, 3, "before")
    latest = make_queue(kinesis, stream_arn)
    horizon = make_queue(kinesis, stream_arn, config={"StartingPosition": {"Type": "TRIM_HORIZON"}})
    put_many(kinesis, stream, 2, "after")

    def drain(arn):
        got = []
        while True:
            records = receive(kinesis, arn, WaitTimeSeconds=1)
            if not records:
                return sorted(r["Data"] for r in got)
            got += records
            ack(kinesis, arn, records)

    assert drain(latest) == [b"after-0", b"after-1"]
    assert drain(horizon) == [b"after-0", b"after-1", b"before-0", b"before-1", b"before-2"]
    # Each queue delivers independently of the other and of the stream's own readers.
    shard_records = 0
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        shard_records += len(kinesis.get_records(ShardIterator=iterator)["Records"])
    assert shard_records == 5
    for arn in (latest, horizon):
        kinesis.delete_queue(QueueARN=arn)


def test_dead_letter_long_poll_wakes_when_a_record_falls_due(module_kinesis, queue_stream):
    kinesis = module_kinesis
    stream, stream_arn = queue_stream
    arn = make_queue(kinesis, stream_arn, QueueAttributes={
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1}})
    put_many(kinesis, stream, 1, "falls-due")
    [record] = receive(kinesis, arn, WaitTimeSeconds=10, VisibilityTimeoutSeconds=2)
    started = time.monotonic()
    dead = kinesis.receive_dead_letter_queue_records(QueueARN=arn, WaitTimeSeconds=20)["QueueRecords"]
    waited = time.monotonic() - started
    assert [r["RecordId"] for r in dead] == [record["RecordId"]]
    # Woken by the visibility deadline (2 s), not by the 20 s wait (generous for a loaded machine).
    assert waited < 12, waited
    assert ack(kinesis, arn, dead, "acknowledge_dead_letter_queue_records")["Failed"] == []
    kinesis.delete_queue(QueueARN=arn)


def test_encrypted_stream_queue_needs_kms_decrypt(server_factory, tmp_path):
    import base64
    import json

    import boto3
    import botocore.config

    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    root_key, root_secret = "AKIAMILLRACEQROOT001", "queue-root-secret-for-tests"
    server = server_factory(args=["--master-key-file", str(key_file), "--auth", "enforce",
                                  "--root-access-key-id", root_key, "--root-secret-access-key", root_secret])

    def signed(service, key, secret):
        return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
                            aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 1}))

    kinesis, kms, iam = (signed(s, root_key, root_secret) for s in ("kinesis", "kms", "iam"))
    key = kms.create_key()["KeyMetadata"]
    stream = unique("sealed")
    stream_arn = on_demand_stream(kinesis, stream)
    kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId=key["KeyId"])
    wait_status(kinesis, stream)
    arn = make_queue(kinesis, stream_arn)
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"secret")

    def user(name, actions):
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        access = iam.create_access_key(UserName=name)["AccessKey"]
        return signed("kinesis", access["AccessKeyId"], access["SecretAccessKey"])

    plain = user("plain", ["kinesis:ReceiveQueueRecords"])
    err = client_error(plain.receive_queue_records, QueueARN=arn, WaitTimeSeconds=1)
    assert_client_error(err, "KMSAccessDeniedException",
                        f"User arn:aws:iam::{ACCOUNT}:user/plain is not authorized to decrypt records in stream {stream}.")
    trusted = user("trusted", ["kinesis:ReceiveQueueRecords", "kms:Decrypt"])
    # The refused receive changed nothing: the record is delivered now, decrypted, for the first time.
    [record] = trusted.receive_queue_records(QueueARN=arn, WaitTimeSeconds=10)["QueueRecords"]
    assert record["Data"] == b"secret" and record["ReceiveCount"] == 1

