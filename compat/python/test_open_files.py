"""Open files stay bounded: many shards holding records work under a low open-file limit.

The server runs with soft and hard RLIMIT_NOFILE at 1,024 (so it cannot raise it), gets one
record on every shard, serves them back, survives kill -9 and keeps taking writes. Segment files
go through the log's descriptor cache, so the shard count is not bounded by the limit.

The CI run uses MILLRACE_FD_TEST_SHARDS (default 3,000 shards); the issue's full case is
`MILLRACE_FD_TEST_SHARDS=20000 .venv/bin/pytest -q compat/python/test_open_files.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from millrace_testlib import create_stream

LIMIT = 1024
SHARDS = int(os.environ.get("MILLRACE_FD_TEST_SHARDS", "3000"))
PER_STREAM = 1000


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def put_one_per_shard(client, stream: str, tag: str) -> dict[str, bytes]:
    shards = client.list_shards(StreamName=stream)["Shards"]
    sent: dict[str, bytes] = {}
    for start in range(0, len(shards), 500):
        group = shards[start:start + 500]
        records = [
            {
                "PartitionKey": "k",
                "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"],
                "Data": f"{tag}-{s['ShardId']}".encode(),
            }
            for s in group
        ]
        out = client.put_records(StreamName=stream, Records=records)
        assert out["FailedRecordCount"] == 0, [r for r in out["Records"] if "ErrorCode" in r][:3]
        for s, r in zip(group, out["Records"]):
            assert r["ShardId"] == s["ShardId"]
            sent[s["ShardId"]] = f"{tag}-{s['ShardId']}".encode()
    return sent


def read_all(client, stream: str, shard: str) -> list[bytes]:
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"]
    return [bytes(r["Data"]) for r in client.get_records(ShardIterator=iterator)["Records"]]


@pytest.mark.slow
def test_many_shards_with_records_work_under_a_low_open_file_limit(server_factory):
    server = server_factory(args=["--shard-limit", str(SHARDS + 10)], name="open-files", start=False)
    server.open_file_limit = LIMIT
    server.start()
    client = server.client(read_timeout=300)
    streams = {}
    remaining = SHARDS
    while remaining > 0:
        count = min(PER_STREAM, remaining)
        name = f"wide-{len(streams)}"
        create_stream(client, name, count, timeout=120)
        streams[name] = {}
        remaining -= count
    for name in streams:
        streams[name] = put_one_per_shard(client, name, "first")
    assert open_descriptors(server.proc.pid) < LIMIT
    stderr = Path(server.stderr_path).read_text(errors="replace")
    assert "open-file limit" in stderr and "segment_files_kept_open" in stderr, stderr[-2000:]

    # Every shard's record reads back (a sample of each stream, plus its last shard).
    def check(tags: tuple[str, ...]) -> None:
        for name, sent in streams.items():
            ids = sorted(sent)
            for shard in ids[::97] + ids[-1:]:
                assert read_all(client, name, shard) == [f"{t}-{shard}".encode() for t in tags], shard

    check(("first",))
    server.kill9()
    server.start()
    client = server.client(read_timeout=300)
    check(("first",))
    for name in streams:
        put_one_per_shard(client, name, "second")
    check(("first", "second"))
    assert open_descriptors(server.proc.pid) < LIMIT
