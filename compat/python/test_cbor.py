"""The CBOR protocol (application/x-amz-cbor-1.1), built the way the AWS Java SDK builds it.

Requests carry the same X-Amz-Target as JSON, blobs as CBOR byte strings and timestamps as
tag 1 followed by integer epoch milliseconds. Each scenario runs once in JSON and once in CBOR
against the same server, and the answers are compared member by member.
"""

from __future__ import annotations

import base64
import json
import struct
import time

from millrace_testlib import JSON_CT, raw_request

CBOR_CT = "application/x-amz-cbor-1.1"


class Tag:
    def __init__(self, number: int, value):
        self.number, self.value = number, value

    def __repr__(self) -> str:
        return f"Tag({self.number}, {self.value!r})"


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if value < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, value)
    raise ValueError(value)


def encode(value) -> bytes:
    """A minimal CBOR encoder with definite lengths, as the Java SDK writes."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, Tag):
        return _head(6, value.number) + encode(value.value)
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    raise TypeError(type(value))


def decode(data: bytes):
    """A minimal CBOR decoder that keeps tags visible."""

    def item(pos: int):
        initial = data[pos]
        major, info = initial >> 5, initial & 31
        pos += 1
        if info < 24:
            arg = info
        elif info in (24, 25, 26, 27):
            size = 1 << (info - 24)
            arg = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif info == 31:
            arg = None
        else:
            raise ValueError(f"unsupported additional info {info}")
        if major == 0:
            return arg, pos
        if major == 1:
            return -1 - arg, pos
        if major in (2, 3):
            raw = data[pos : pos + arg]
            return (raw if major == 2 else raw.decode()), pos + arg
        if major == 4:
            out = []
            for _ in range(arg):
                value, pos = item(pos)
                out.append(value)
            return out, pos
        if major == 5:
            out = {}
            for _ in range(arg):
                key, pos = item(pos)
                out[key], pos = item(pos)
            return out, pos
        if major == 6:
            value, pos = item(pos)
            return Tag(arg, value), pos
        if initial == 0xF4:
            return False, pos
        if initial == 0xF5:
            return True, pos
        if initial == 0xF6:
            return None, pos
        if initial == 0xFB:
            return struct.unpack(">d", data[pos : pos + 8])[0], pos + 8
        raise ValueError(f"unsupported initial byte {initial:#x}")

    value, end = item(0)
    assert end == len(data), "trailing bytes"
    return value


def call(endpoint: str, operation: str, document: dict, fmt: str):
    """Sends one request in JSON or CBOR; returns (status, decoded body, content type)."""
    if fmt == "json":
        response = raw_request(endpoint, operation, json.dumps(document).encode(), content_type=JSON_CT)
        body = json.loads(response.body) if response.body else None
    else:
        response = raw_request(endpoint, operation, encode(document), content_type=CBOR_CT)
        body = decode(response.body) if response.body else None
    return response.status, body, response.header("content-type")


def to_json_shape(value, timestamps=("ApproximateArrivalTimestamp", "StreamCreationTimestamp"), key=None):
    """Maps a decoded CBOR answer onto the JSON protocol's shape for comparison."""
    if isinstance(value, Tag):
        assert value.number == 1 and isinstance(value.value, int), f"{key}: timestamps are tag 1 + integer millis"
        return value.value / 1000
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: to_json_shape(v, timestamps, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_shape(v, timestamps, key) for v in value]
    return value


def wait_active(endpoint: str, name: str) -> None:
    for _ in range(200):
        status, body, _ = call(endpoint, "DescribeStreamSummary", {"StreamName": name}, "json")
        if status == 200 and body["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} never became ACTIVE")


def test_round_trip_in_cbor_matches_json(server):
    endpoint = server.endpoint
    for fmt in ("json", "cbor"):
        status, body, content_type = call(endpoint, "CreateStream", {"StreamName": f"c-{fmt}", "ShardCount": 2}, fmt)
        assert (status, body) == (200, None), body
        wait_active(endpoint, f"c-{fmt}")
    payloads = [bytes(range(256)), b"", b"\x00" * 1000, "ünïcode".encode()]
    sequences = {}
    for fmt in ("json", "cbor"):
        records = [
            {"Data": (p if fmt == "cbor" else base64.b64encode(p).decode()), "PartitionKey": f"k{i}"}
            for i, p in enumerate(payloads)
        ]
        status, body, content_type = call(endpoint, "PutRecords", {"StreamName": f"c-{fmt}", "Records": records}, fmt)
        assert status == 200, body
        assert content_type == (CBOR_CT if fmt == "cbor" else JSON_CT)
        assert body["FailedRecordCount"] == 0
        sequences[fmt] = body["Records"]
    # Same shards for the same keys in both protocols.
    assert [r["ShardId"] for r in sequences["json"]] == [r["ShardId"] for r in sequences["cbor"]]

    before = int(time.time() * 1000) - 60_000
    for fmt in ("json", "cbor"):
        read = []
        for shard in ("shardId-000000000000", "shardId-000000000001"):
            timestamp = Tag(1, before) if fmt == "cbor" else before / 1000
            status, body, _ = call(
                endpoint,
                "GetShardIterator",
                {"StreamName": f"c-{fmt}", "ShardId": shard, "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": timestamp},
                fmt,
            )
            assert status == 200, body
            status, body, _ = call(endpoint, "GetRecords", {"ShardIterator": body["ShardIterator"]}, fmt)
            assert status == 200, body
            if fmt == "cbor":
                for record in body["Records"]:
                    assert isinstance(record["Data"], bytes), "blobs are byte strings"
                    stamp = record["ApproximateArrivalTimestamp"]
                    assert isinstance(stamp, Tag) and stamp.number == 1 and isinstance(stamp.value, int)
                body = to_json_shape(body)
            read.extend(body["Records"])
        data = sorted(base64.b64decode(r["Data"]) for r in read)
        assert data == sorted(payloads), fmt
        assert {r["PartitionKey"] for r in read} == {f"k{i}" for i in range(len(payloads))}

    # DescribeStreamSummary answers match member for member (names and timestamps aside).
    answers = {}
    for fmt in ("json", "cbor"):
        status, body, _ = call(endpoint, "DescribeStreamSummary", {"StreamName": f"c-{fmt}"}, fmt)
        assert status == 200
        summary = to_json_shape(body)["StreamDescriptionSummary"]
        for volatile in ("StreamName", "StreamARN", "StreamCreationTimestamp"):
            assert volatile in summary
            summary.pop(volatile)
        answers[fmt] = summary
    assert answers["json"] == answers["cbor"]


def test_errors_in_cbor_match_json(server):
    endpoint = server.endpoint
    call(endpoint, "CreateStream", {"StreamName": "errs", "ShardCount": 1}, "json")
    wait_active(endpoint, "errs")
    cases = [
        ("DescribeStream", {"StreamName": "missing"}),
        ("CreateStream", {"StreamName": "errs", "ShardCount": 1}),
        ("CreateStream", {"StreamName": "", "ShardCount": 0}),
        ("GetShardIterator", {"StreamName": "errs", "ShardId": "shardId-000000000000", "ShardIteratorType": "SIDEWAYS"}),
        ("GetRecords", {"ShardIterator": "AAAAAAAAAAEnot-a-real-iterator"}),
        ("IncreaseStreamRetentionPeriod", {"StreamName": "errs", "RetentionPeriodHours": 23}),
        ("PutRecord", {"StreamName": "errs", "PartitionKey": "k", "Data": None, "ExplicitHashKey": "1" * 40}),
    ]
    for operation, document in cases:
        answers = {}
        for fmt in ("json", "cbor"):
            status, body, content_type = call(endpoint, operation, document, fmt)
            assert content_type == (CBOR_CT if fmt == "cbor" else JSON_CT)
            answers[fmt] = (status, body)
        assert answers["json"] == answers["cbor"], operation
        assert answers["json"][0] == 400


def test_malformed_cbor_is_a_serialization_exception(server):
    response = raw_request(server.endpoint, "ListStreams", b"\xbf\x61", content_type=CBOR_CT)
    assert response.status == 400
    assert decode(response.body) == {"__type": "SerializationException"}
    assert response.header("content-type") == CBOR_CT


def read_frames(response, count: int):
    """Reads `count` event-stream messages from a streaming HTTP response."""
    import zlib

    frames = []
    while len(frames) < count:
        prelude = response.read(12)
        assert len(prelude) == 12, "stream ended early"
        total, headers_length, prelude_crc = struct.unpack(">III", prelude)
        assert prelude_crc == zlib.crc32(prelude[:8])
        rest = response.read(total - 12)
        assert zlib.crc32(prelude + rest[:-4]) == struct.unpack(">I", rest[-4:])[0]
        raw_headers, payload = rest[:headers_length], rest[headers_length:-4]
        headers, pos = {}, 0
        while pos < len(raw_headers):
            name_length = raw_headers[pos]
            name = raw_headers[pos + 1 : pos + 1 + name_length].decode()
            pos += 1 + name_length
            assert raw_headers[pos] == 7, "string headers"
            value_length = int.from_bytes(raw_headers[pos + 1 : pos + 3], "big")
            headers[name] = raw_headers[pos + 3 : pos + 3 + value_length].decode()
            pos += 3 + value_length
        frames.append((headers, payload))
    return frames


def test_subscribe_to_shard_in_cbor(server):
    import http.client
    import urllib.parse

    from millrace_testlib import fake_auth_headers

    endpoint = server.endpoint
    call(endpoint, "CreateStream", {"StreamName": "push", "ShardCount": 1}, "json")
    wait_active(endpoint, "push")
    status, body, _ = call(endpoint, "DescribeStreamSummary", {"StreamName": "push"}, "json")
    stream_arn = body["StreamDescriptionSummary"]["StreamARN"]
    status, body, _ = call(endpoint, "RegisterStreamConsumer", {"StreamARN": stream_arn, "ConsumerName": "java"}, "cbor")
    assert status == 200, body
    consumer_arn = body["Consumer"]["ConsumerARN"]
    assert isinstance(body["Consumer"]["ConsumerCreationTimestamp"], Tag)
    for _ in range(200):
        status, body, _ = call(endpoint, "DescribeStreamConsumer", {"ConsumerARN": consumer_arn}, "cbor")
        if body["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE":
            break
        time.sleep(0.02)
    call(endpoint, "PutRecord", {"StreamName": "push", "PartitionKey": "k", "Data": b"\x00binary\xff"}, "cbor")

    url = urllib.parse.urlsplit(endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    document = {"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "TRIM_HORIZON"}}
    headers = {"Content-Type": CBOR_CT, "X-Amz-Target": "Kinesis_20131202.SubscribeToShard", **fake_auth_headers()}
    connection.request("POST", "/", body=encode(document), headers=headers)
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type") == "application/vnd.amazon.eventstream"
    (initial_headers, initial_payload), (event_headers, event_payload) = read_frames(response, 2)
    assert initial_headers == {":message-type": "event", ":event-type": "initial-response", ":content-type": CBOR_CT}
    assert decode(initial_payload) == {}
    assert event_headers[":event-type"] == "SubscribeToShardEvent"
    assert event_headers[":content-type"] == CBOR_CT
    event = decode(event_payload)
    [record] = event["Records"]
    assert record["Data"] == b"\x00binary\xff"
    assert isinstance(record["ApproximateArrivalTimestamp"], Tag) and record["ApproximateArrivalTimestamp"].number == 1
    assert isinstance(event["ContinuationSequenceNumber"], str) and event["MillisBehindLatest"] == 0
    connection.close()
