"""Happy-path round trips through boto3: writes, reads with every iterator type, listing shapes,
tags, retention, waiters.

Expected values come from /work/shared/docs/kinesis-wire-notes.md §2 (AWS layout of hash ranges,
MD5 routing, sequence-number layout, response shapes observed on AWS).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import time

import botocore.exceptions
import pytest

from millrace_testlib import (
    ACCOUNT,
    MAX_HASH_KEY,
    REGION,
    assert_client_error,
    client_error,
    create_stream,
    decode_sequence_number,
    hash_ranges,
    not_found,
    read_iterator,
    read_shard,
    seq_int,
    shard_ids,
    wait_gone,
    wait_status,
)

MIB = 1024 * 1024
THREE_SHARD_ENDS = [
    113427455640312821154458202477256070484,
    226854911280625642308916404954512140969,
    340282366920938463463374607431768211455,
]


def shard_for_key(pk: str, n: int) -> int:
    h = int.from_bytes(hashlib.md5(pk.encode()).digest(), "big")
    for i, (lo, hi) in enumerate(hash_ranges(n)):
        if lo <= h <= hi:
            return i
    raise AssertionError("unreachable")


def shard_name(i: int) -> str:
    return f"shardId-{i:012d}"


def payloads(rng: random.Random) -> list[tuple[str, bytes]]:
    """(partition key, data) pairs covering the awkward cases."""
    items = [
        ("all-bytes", bytes(range(256))),
        ("empty", b""),
        ("nul", b"\x00"),
        ("ff", b"\xff\xff\xff"),
        ("text", "héllo wörld ✓ \n\t\"quoted\"".encode()),
        ("ключ-ü", b"unicode partition key"),
        ("json-ish", b'{"Data": "not really", "x": [1,2]}'),
        ("b64-padding-1", b"a"),
        ("b64-padding-2", b"ab"),
        ("b64-padding-0", b"abc"),
    ]
    for i in range(12):
        n = rng.choice([1, 7, 100, 1000, 4096, 65537])
        items.append((f"rand-{i}", rng.randbytes(n)))
    # The largest allowed record: data + partition key bytes == 1 MiB.
    pk = "max-size"
    items.append((pk, rng.randbytes(MIB - len(pk.encode()))))
    return items


def record_view(r: dict) -> tuple[str, str, bytes]:
    return (r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"]))


@pytest.fixture(scope="module")
def loaded(module_kinesis):
    """A 3-shard and a 1-shard stream filled through PutRecord and PutRecords; returns expectations."""
    client = module_kinesis
    rng = random.Random(1234)
    streams = {"rt-three": 3, "rt-one": 1}
    expected: dict[str, dict[str, list[tuple[str, str, bytes]]]] = {}
    for name, n in streams.items():
        create_stream(client, name, n)
        expected[name] = {shard_name(i): [] for i in range(n)}
        items = payloads(rng)
        half = len(items) // 2
        for pk, data in items[:half]:
            out = client.put_record(StreamName=name, PartitionKey=pk, Data=data)
            assert out["ShardId"] == shard_name(shard_for_key(pk, n)), (pk, out)
            expected[name][out["ShardId"]].append((out["SequenceNumber"], pk, data))
        # PutRecords in two batches so that the max-size record (last) is alone in a call of 1 MiB.
        rest = items[half:]
        for batch in (rest[:-1], rest[-1:]):
            out = client.put_records(StreamName=name, Records=[{"PartitionKey": pk, "Data": d} for pk, d in batch])
            assert out["FailedRecordCount"] == 0, out
            assert len(out["Records"]) == len(batch)
            for (pk, data), entry in zip(batch, out["Records"]):
                assert entry["ShardId"] == shard_name(shard_for_key(pk, n)), (pk, entry)
                expected[name][entry["ShardId"]].append((entry["SequenceNumber"], pk, data))
    return expected


def test_trim_horizon_reads_everything_in_order_byte_identical(module_kinesis, loaded):
    client = module_kinesis
    for stream, shards in loaded.items():
        for shard, want in shards.items():
            got = read_shard(client, stream, shard, "TRIM_HORIZON", expected=len(want) + 1, max_empty=2)
            assert [record_view(r) for r in got] == want, f"{stream}/{shard}"
            seqs = [seq_int(r["SequenceNumber"]) for r in got]
            assert seqs == sorted(set(seqs)), "sequence numbers must strictly increase within a shard"


def test_small_limit_pages_through_the_same_records(module_kinesis, loaded):
    client = module_kinesis
    shards = loaded["rt-one"]
    want = shards[shard_name(0)]
    got = read_shard(client, "rt-one", shard_name(0), "TRIM_HORIZON", limit=3, expected=len(want) + 1, max_empty=2)
    assert [record_view(r) for r in got] == want


def test_at_and_after_sequence_number(module_kinesis, loaded):
    client = module_kinesis
    for stream, shards in loaded.items():
        for shard, want in shards.items():
            if not want:
                continue
            for k in sorted({0, len(want) // 2, len(want) - 1}):
                seq = want[k][0]
                at = read_shard(client, stream, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq,
                                max_empty=2)
                assert [record_view(r) for r in at] == want[k:], f"AT_SEQUENCE_NUMBER {stream}/{shard}#{k}"
                after = read_shard(client, stream, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seq,
                                   max_empty=2)
                assert [record_view(r) for r in after] == want[k + 1:], f"AFTER_SEQUENCE_NUMBER {stream}/{shard}#{k}"


def test_at_timestamp(module_kinesis, loaded):
    client = module_kinesis
    stream = "rt-three"
    for shard, want in loaded[stream].items():
        full = read_shard(client, stream, shard, "TRIM_HORIZON", max_empty=2)
        assert [record_view(r) for r in full] == want
        if not full:
            continue
        # Long before the first record: behaves like TRIM_HORIZON.
        early = read_shard(client, stream, shard, "AT_TIMESTAMP",
                           Timestamp=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), max_empty=2)
        assert [record_view(r) for r in early] == want
        millis = [round(r["ApproximateArrivalTimestamp"].timestamp() * 1000) for r in full]
        assert millis == sorted(millis), "arrival timestamps must not go backwards within a shard"
        for k in sorted({0, len(full) // 2, len(full) - 1}):
            t = full[k]["ApproximateArrivalTimestamp"]
            t_ms = millis[k]
            # Inclusive: the first record whose arrival time is >= t.
            first = next(i for i, m in enumerate(millis) if m >= t_ms)
            got = read_shard(client, stream, shard, "AT_TIMESTAMP", Timestamp=t, max_empty=2)
            assert [record_view(r) for r in got] == want[first:], f"AT_TIMESTAMP {shard}#{k} ({t_ms} ms)"


def test_latest_returns_only_later_records(module_kinesis, loaded):
    client = module_kinesis
    stream = "rt-three"
    shard = shard_name(2)
    it = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    first = client.get_records(ShardIterator=it)
    assert first["Records"] == []
    assert first["NextShardIterator"]
    new = []
    for i in range(3):
        data = f"after-latest-{i}".encode() + bytes([0, 255, i])
        # ExplicitHashKey pins the shard: the last shard owns the top of the key space.
        out = client.put_record(StreamName=stream, PartitionKey=f"latest-{i}", Data=data,
                                ExplicitHashKey=str(MAX_HASH_KEY - i))
        assert out["ShardId"] == shard
        new.append((out["SequenceNumber"], f"latest-{i}", data))
    got = read_iterator(client, first["NextShardIterator"], max_empty=2)
    assert [record_view(r) for r in got] == new
    # Iterators are positions, not cursors: the original LATEST iterator sees the same records.
    again = read_iterator(client, it, max_empty=2)
    assert [record_view(r) for r in again] == new
    loaded[stream][shard].extend(new)


def test_streams_are_isolated(module_kinesis, loaded):
    client = module_kinesis
    one = read_shard(client, "rt-one", shard_name(0), max_empty=2)
    assert [record_view(r) for r in one] == loaded["rt-one"][shard_name(0)]
    three = {s: read_shard(client, "rt-three", s, max_empty=2) for s in loaded["rt-three"]}
    seq_three = {r["SequenceNumber"] for rs in three.values() for r in rs}
    assert len(seq_three) == sum(len(v) for v in three.values()), "sequence numbers unique within a stream"
    for shard, records in three.items():
        assert [record_view(r) for r in records] == loaded["rt-three"][shard]


def test_put_record_and_put_records_shapes(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-shapes", 2)
    out = client.put_record(StreamName="rt-shapes", PartitionKey="k", Data=b"x")
    body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    assert set(body) <= {"ShardId", "SequenceNumber", "EncryptionType"}
    assert {"ShardId", "SequenceNumber"} <= set(body)
    assert body.get("EncryptionType", "NONE") == "NONE"
    assert out["SequenceNumber"].isdigit() and len(out["SequenceNumber"]) <= 129

    out = client.put_records(StreamName="rt-shapes",
                             Records=[{"PartitionKey": str(i), "Data": bytes([i])} for i in range(20)])
    body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    assert body["FailedRecordCount"] == 0
    assert set(body) <= {"FailedRecordCount", "Records", "EncryptionType"}
    assert len(body["Records"]) == 20
    for entry in body["Records"]:
        assert set(entry) == {"SequenceNumber", "ShardId"}, entry
    # Within one call, entries for the same shard get increasing numbers in request order.
    by_shard: dict[str, list[int]] = {}
    for entry in body["Records"]:
        by_shard.setdefault(entry["ShardId"], []).append(seq_int(entry["SequenceNumber"]))
    for seqs in by_shard.values():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_get_records_shape(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-get-shape", 1)
    before = time.time()
    client.put_record(StreamName="rt-get-shape", PartitionKey="pk", Data=b"payload")
    after = time.time()
    it = client.get_shard_iterator(StreamName="rt-get-shape", ShardId=shard_name(0),
                                   ShardIteratorType="TRIM_HORIZON")
    assert set(it) - {"ResponseMetadata"} == {"ShardIterator"}
    assert 1 <= len(it["ShardIterator"]) <= 512
    out = client.get_records(ShardIterator=it["ShardIterator"])
    body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    assert set(body) == {"Records", "NextShardIterator", "MillisBehindLatest"}, body.keys()
    assert isinstance(body["MillisBehindLatest"], int) and body["MillisBehindLatest"] >= 0
    (rec,) = body["Records"]
    assert set(rec) == {"SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"}, rec.keys()
    arrival = rec["ApproximateArrivalTimestamp"].timestamp()
    assert before - 1 <= arrival <= after + 1


def test_partition_key_routing_matches_aws(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-routing", 3)
    for pk, shard in (("a", 0), ("b", 1), ("e", 2), ("f", 1)):
        out = client.put_record(StreamName="rt-routing", PartitionKey=pk, Data=pk.encode())
        assert out["ShardId"] == shard_name(shard), f"partition key {pk!r}"
    out = client.put_records(StreamName="rt-routing",
                             Records=[{"PartitionKey": pk, "Data": b"."} for pk in "abef"])
    assert [e["ShardId"] for e in out["Records"]] == [shard_name(i) for i in (0, 1, 2, 1)]
    # ExplicitHashKey overrides the partition key, boundaries inclusive.
    cases = [
        ("0", 0),
        (str(THREE_SHARD_ENDS[0]), 0),
        (str(THREE_SHARD_ENDS[0] + 1), 1),
        (str(THREE_SHARD_ENDS[1]), 1),
        (str(THREE_SHARD_ENDS[1] + 1), 2),
        (str(MAX_HASH_KEY), 2),
    ]
    for ehk, shard in cases:
        out = client.put_record(StreamName="rt-routing", PartitionKey="a", Data=b"x", ExplicitHashKey=ehk)
        assert out["ShardId"] == shard_name(shard), f"ExplicitHashKey {ehk}"


def test_describe_stream_shape(module_kinesis):
    client = module_kinesis
    before = time.time()
    create_stream(client, "rt-describe", 3)
    desc = client.describe_stream(StreamName="rt-describe")["StreamDescription"]
    assert desc["StreamName"] == "rt-describe"
    assert desc["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/rt-describe"
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["HasMoreShards"] is False
    assert desc["RetentionPeriodHours"] == 24
    assert desc["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert desc.get("EncryptionType", "NONE") == "NONE"
    assert desc.get("StreamModeDetails", {"StreamMode": "PROVISIONED"}) == {"StreamMode": "PROVISIONED"}
    created = desc["StreamCreationTimestamp"].timestamp()
    assert before - 5 <= created <= time.time() + 1

    shards = desc["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_name(i) for i in range(3)]
    start = 0
    for i, s in enumerate(shards):
        assert int(s["HashKeyRange"]["StartingHashKey"]) == start
        assert int(s["HashKeyRange"]["EndingHashKey"]) == THREE_SHARD_ENDS[i]
        assert "ParentShardId" not in s and "AdjacentParentShardId" not in s
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"], "open shards have no ending number"
        start = THREE_SHARD_ENDS[i] + 1
    assert [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards] \
        == hash_ranges(3)

    # Starting sequence numbers: layout version 2, counter 0, the shard's own index, one shared
    # creation time no later than StreamCreationTimestamp; consecutive shards differ by 2^144 + 16.
    starts = [s["SequenceNumberRange"]["StartingSequenceNumber"] for s in shards]
    for i, seq in enumerate(starts):
        f = decode_sequence_number(seq)
        assert (f["constant"], f["version"], f["zero_byte"]) == ("2", "2", "00"), seq
        assert f["shard_index"] == i and f["shard_low"] == i
        assert f["counter"] == 0
        assert f["arrival"] == f["shard_created"]
        assert f["shard_created"] <= created + 1
    for a, b in zip(starts, starts[1:]):
        assert int(b) - int(a) == 2**144 + 16


def test_describe_stream_pagination(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-describe-page", 3)
    first = client.describe_stream(StreamName="rt-describe-page", Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in first["Shards"]] == [shard_name(0), shard_name(1)]
    assert first["HasMoreShards"] is True
    rest = client.describe_stream(StreamName="rt-describe-page", ExclusiveStartShardId=shard_name(1))
    rest = rest["StreamDescription"]
    assert [s["ShardId"] for s in rest["Shards"]] == [shard_name(2)]
    assert rest["HasMoreShards"] is False
    # The paginator (used by the CLI) follows Shards[-1].ShardId.
    pages = client.get_paginator("describe_stream").paginate(StreamName="rt-describe-page",
                                                            PaginationConfig={"PageSize": 1})
    ids = [s["ShardId"] for p in pages for s in p["StreamDescription"]["Shards"]]
    assert ids == [shard_name(i) for i in range(3)]


def test_describe_stream_summary_shape(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-summary", 3)
    s = client.describe_stream_summary(StreamName="rt-summary")["StreamDescriptionSummary"]
    for key in ("StreamName", "StreamARN", "StreamStatus", "RetentionPeriodHours", "StreamCreationTimestamp",
                "EnhancedMonitoring", "OpenShardCount"):
        assert key in s, key
    assert "Shards" not in s
    assert s["StreamName"] == "rt-summary"
    assert s["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/rt-summary"
    assert s["StreamStatus"] == "ACTIVE"
    assert s["OpenShardCount"] == 3
    assert s.get("ConsumerCount", 0) == 0
    assert s["RetentionPeriodHours"] == 24
    assert s["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert s.get("EncryptionType", "NONE") == "NONE"
    assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}


def test_list_shards_shape_and_pagination(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-list-shards", 3)
    out = client.list_shards(StreamName="rt-list-shards")
    assert "NextToken" not in out, "a complete listing carries no NextToken"
    shards = out["Shards"]
    assert [s["ShardId"] for s in shards] == [shard_name(i) for i in range(3)]
    assert [int(s["HashKeyRange"]["EndingHashKey"]) for s in shards] == THREE_SHARD_ENDS
    desc = client.describe_stream(StreamName="rt-list-shards")["StreamDescription"]["Shards"]
    assert shards == desc, "ListShards and DescribeStream describe shards identically"

    page = client.list_shards(StreamName="rt-list-shards", MaxResults=1)
    ids = [s["ShardId"] for s in page["Shards"]]
    assert ids == [shard_name(0)]
    while page.get("NextToken"):
        page = client.list_shards(NextToken=page["NextToken"], MaxResults=1)
        ids += [s["ShardId"] for s in page["Shards"]]
    assert ids == [shard_name(i) for i in range(3)]

    after = client.list_shards(StreamName="rt-list-shards", ExclusiveStartShardId=shard_name(0))
    assert [s["ShardId"] for s in after["Shards"]] == [shard_name(1), shard_name(2)]
    latest = client.list_shards(StreamName="rt-list-shards", ShardFilter={"Type": "AT_LATEST"})
    assert [s["ShardId"] for s in latest["Shards"]] == [shard_name(i) for i in range(3)]


def test_list_streams_shape_and_pagination(server_factory):
    server = server_factory(name="liststreams")
    client = server.client()
    assert client.list_streams()["StreamNames"] == []
    names = ["ls-b", "ls-a", "ls-c.d", "ls_e", "LS-upper"]
    for n in names:
        create_stream(client, n, 1)
    out = client.list_streams()
    assert out["StreamNames"] == sorted(names)
    assert out["HasMoreStreams"] is False
    if "StreamSummaries" in out:
        summaries = {s["StreamName"]: s for s in out["StreamSummaries"]}
        assert set(summaries) == set(names)
        for n, s in summaries.items():
            assert s["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{n}"
            assert s["StreamStatus"] == "ACTIVE"
            assert s["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}

    limited = client.list_streams(Limit=2)
    assert limited["StreamNames"] == sorted(names)[:2]
    assert limited["HasMoreStreams"] is True
    rest = client.list_streams(ExclusiveStartStreamName=sorted(names)[1])
    assert rest["StreamNames"] == sorted(names)[2:]
    pages = client.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2})
    assert [n for p in pages for n in p["StreamNames"]] == sorted(names)


def test_tags(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-tags", 1)
    out = client.list_tags_for_stream(StreamName="rt-tags")
    assert out["Tags"] == [] and out["HasMoreTags"] is False
    client.add_tags_to_stream(StreamName="rt-tags", Tags={"team": "data", "env": "test", "empty": ""})
    client.add_tags_to_stream(StreamName="rt-tags", Tags={"env": "prod"})  # overwrites
    out = client.list_tags_for_stream(StreamName="rt-tags")
    assert {t["Key"]: t.get("Value") for t in out["Tags"]} == {"team": "data", "env": "prod", "empty": ""}
    assert out["HasMoreTags"] is False
    client.remove_tags_from_stream(StreamName="rt-tags", TagKeys=["team", "not-there"])
    out = client.list_tags_for_stream(StreamName="rt-tags")
    assert {t["Key"]: t.get("Value") for t in out["Tags"]} == {"env": "prod", "empty": ""}
    # Paging by key.
    client.add_tags_to_stream(StreamName="rt-tags", Tags={f"k{i}": str(i) for i in range(5)})
    first = client.list_tags_for_stream(StreamName="rt-tags", Limit=2)
    assert len(first["Tags"]) == 2 and first["HasMoreTags"] is True


def test_create_stream_with_tags(module_kinesis):
    client = module_kinesis
    client.create_stream(StreamName="rt-tags-create", ShardCount=1, Tags={"a": "1"})
    wait_status(client, "rt-tags-create")
    out = client.list_tags_for_stream(StreamName="rt-tags-create")
    assert out["Tags"] == [{"Key": "a", "Value": "1"}]


def test_retention_increase_and_decrease(module_kinesis):
    client = module_kinesis
    create_stream(client, "rt-retention", 1)

    def hours():
        return client.describe_stream_summary(StreamName="rt-retention")["StreamDescriptionSummary"][
            "RetentionPeriodHours"]

    assert hours() == 24
    client.increase_stream_retention_period(StreamName="rt-retention", RetentionPeriodHours=48)
    wait_status(client, "rt-retention")
    assert hours() == 48
    client.increase_stream_retention_period(StreamName="rt-retention", RetentionPeriodHours=48)  # same: fine
    wait_status(client, "rt-retention")
    client.increase_stream_retention_period(StreamName="rt-retention", RetentionPeriodHours=8760)
    wait_status(client, "rt-retention")
    assert hours() == 8760
    client.decrease_stream_retention_period(StreamName="rt-retention", RetentionPeriodHours=24)
    wait_status(client, "rt-retention")
    assert hours() == 24
    assert client.describe_stream(StreamName="rt-retention")["StreamDescription"]["RetentionPeriodHours"] == 24


def test_stream_exists_waiter_sees_creating_first(server_factory):
    server = server_factory(args=["--create-stream-ms", "500"], name="waiter")
    client = server.client()
    client.create_stream(StreamName="waited", ShardCount=2)
    desc = client.describe_stream(StreamName="waited")["StreamDescription"]
    assert desc["StreamStatus"] == "CREATING"
    assert desc["Shards"] == [] and desc["HasMoreShards"] is False
    started = time.monotonic()
    client.get_waiter("stream_exists").wait(StreamName="waited", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    assert time.monotonic() - started < 15
    desc = client.describe_stream(StreamName="waited")["StreamDescription"]
    assert desc["StreamStatus"] == "ACTIVE"
    assert len(desc["Shards"]) == 2


def test_delete_stream(server_factory):
    server = server_factory(args=["--delete-stream-ms", "300"], name="delete")
    client = server.client()
    create_stream(client, "doomed", 2)
    client.put_record(StreamName="doomed", PartitionKey="a", Data=b"x")
    out = client.delete_stream(StreamName="doomed")
    assert set(out) == {"ResponseMetadata"}
    try:
        status = client.describe_stream_summary(StreamName="doomed")["StreamDescriptionSummary"]["StreamStatus"]
        assert status == "DELETING"
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceNotFoundException"
    client.get_waiter("stream_not_exists").wait(StreamName="doomed", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    err = client_error(client.describe_stream, StreamName="doomed")
    assert_client_error(err, "ResourceNotFoundException", not_found("doomed"))
    assert "doomed" not in client.list_streams()["StreamNames"]
    # The name can be used again, and the new stream starts empty.
    create_stream(client, "doomed", 1)
    assert read_shard(client, "doomed", shard_name(0), max_empty=1) == []


def test_restart_keeps_streams_and_records(server_factory):
    server = server_factory(name="restart")
    client = server.client()
    create_stream(client, "persist", 2)
    client.add_tags_to_stream(StreamName="persist", Tags={"k": "v"})
    client.increase_stream_retention_period(StreamName="persist", RetentionPeriodHours=72)
    wait_status(client, "persist")
    want: dict[str, list] = {}
    for i in range(40):
        data = os.urandom(i * 13)
        out = client.put_record(StreamName="persist", PartitionKey=f"k{i}", Data=data)
        want.setdefault(out["ShardId"], []).append((out["SequenceNumber"], f"k{i}", data))
    before = client.describe_stream(StreamName="persist")["StreamDescription"]

    server.restart()
    client = server.client()
    after = client.describe_stream(StreamName="persist")["StreamDescription"]
    assert after == before
    assert client.list_tags_for_stream(StreamName="persist")["Tags"] == [{"Key": "k", "Value": "v"}]
    for shard, records in want.items():
        got = read_shard(client, "persist", shard, max_empty=2)
        assert [record_view(r) for r in got] == records
    out = client.put_record(StreamName="persist", PartitionKey="k0", Data=b"after restart")
    last = want[out["ShardId"]][-1][0]
    assert seq_int(out["SequenceNumber"]) > seq_int(last), "numbering continues after a restart"
