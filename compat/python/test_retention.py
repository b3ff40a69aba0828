"""Retention with a compressed clock: --retention-hour-ms 50 makes the default 24 h retention last
1.2 s; --retention-check-ms 100 runs the trimming pass often; --segment-bytes 4096 gives many small
segment files. Expired records must vanish from reads and their segment files from disk."""

from __future__ import annotations

import time

import pytest

from millrace_testlib import create_stream, read_shard, shard_ids

RETENTION_ARGS = ["--retention-hour-ms", "50", "--retention-check-ms", "100", "--segment-bytes", "4096"]


@pytest.mark.slow
def test_expired_records_and_segments_are_removed(server_factory):
    server = server_factory(args=RETENTION_ARGS, name="retention")
    client = server.client()
    create_stream(client, "short", 2)
    summary = client.describe_stream_summary(StreamName="short")["StreamDescriptionSummary"]
    assert summary["RetentionPeriodHours"] == 24  # the knob compresses time, not the configured hours

    for batch in range(6):
        out = client.put_records(StreamName="short", Records=[
            {"PartitionKey": f"k{batch}-{i}", "Data": bytes([batch, i]) * 250} for i in range(20)])
        assert out["FailedRecordCount"] == 0
    shards = shard_ids(client, "short")
    # Right after writing, everything is readable.
    total = sum(len(read_shard(client, "short", s, max_empty=1)) for s in shards)
    assert total == 120
    before = set(server.segment_files())
    assert len(before) > len(shards), f"expected several segment files with --segment-bytes 4096, got {before}"

    time.sleep(3.0)  # 2.5x the retention period

    for s in shards:
        assert read_shard(client, "short", s, "TRIM_HORIZON", max_empty=1) == [], f"{s} still returns expired records"
    after = set(server.segment_files())
    survivors = before & after
    # At most the segment each shard is currently appending to may stay (possibly re-created empty).
    assert len(survivors) <= len(shards), (
        f"{len(survivors)} of {len(before)} segment files still on disk after expiry: {sorted(map(str, survivors))}")

    # The stream keeps working: a new record is readable from TRIM_HORIZON, alone.
    out = client.put_record(StreamName="short", PartitionKey="fresh", Data=b"fresh")
    got = read_shard(client, "short", out["ShardId"], "TRIM_HORIZON", max_empty=1)
    assert [(r["SequenceNumber"], bytes(r["Data"])) for r in got] == [(out["SequenceNumber"], b"fresh")]

    # Expired data stays gone across a restart.
    server.restart()
    client = server.client()
    for s in shards:
        records = read_shard(client, "short", s, "TRIM_HORIZON", max_empty=1)
        assert all(bytes(r["Data"]) == b"fresh" for r in records), s


def test_longer_retention_keeps_records(server_factory):
    server = server_factory(args=RETENTION_ARGS, name="retention-long")
    client = server.client()
    create_stream(client, "long", 1)
    client.increase_stream_retention_period(StreamName="long", RetentionPeriodHours=200)  # 10 s at 50 ms/h
    deadline = time.monotonic() + 10
    while client.describe_stream_summary(StreamName="long")["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = client.put_record(StreamName="long", PartitionKey="k", Data=b"kept")
    time.sleep(2.0)  # past 24 "hours", well within 200
    got = read_shard(client, "long", out["ShardId"], "TRIM_HORIZON", max_empty=1)
    assert [bytes(r["Data"]) for r in got] == [b"kept"]
