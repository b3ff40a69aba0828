"""The producer library and the `millrace put` / `tail` / `streams` commands against the
reference aggregation library (`aws-kinesis-agg` from PyPI): each side de-aggregates what the
other aggregated, byte for byte."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from millrace_testlib import create_stream, millrace_bin, shard_ids, read_shard


def millrace(server, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(millrace_bin()), *args[:1], "--endpoint-url", server.endpoint, *args[1:]]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, RUST_LOG="warn"))
    return proc


def lines_by_key(pairs):
    out: dict[str, list[bytes]] = {}
    for key, data in pairs:
        out.setdefault(key, []).append(data)
    return out


def test_reference_library_deaggregates_what_millrace_put_aggregates(server):
    kinesis = server.client()
    create_stream(kinesis, "agg-out", shards=2)
    rows = [{"k": f"key-{i % 37}", "n": i, "text": "é ünïcode ✓" * (i % 3)} for i in range(3000)]
    stdin = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    proc = millrace(server, "put", "--stream", "agg-out", "--key-field", "k", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert "put 3000 records" in proc.stderr

    got = []
    aggregated = 0
    for shard in shard_ids(kinesis, "agg-out"):
        records = read_shard(kinesis, "agg-out", shard)
        for user in iter_deaggregate_records(records, data_format="Boto3"):
            k = user["kinesis"]
            if k.get("aggregated"):
                aggregated += 1
            data = k["data"]
            got.append((k["partitionKey"], base64.b64decode(data) if k.get("aggregated") else data))
    assert aggregated > 0
    expected = [(row["k"], (json.dumps(row, ensure_ascii=False)).encode()) for row in rows]
    assert len(got) == len(expected)
    assert lines_by_key(got) == lines_by_key(expected)


def test_millrace_tail_deaggregates_what_the_reference_library_aggregates(server):
    kinesis = server.client()
    create_stream(kinesis, "agg-in", shards=1)
    aggregator = RecordAggregator(max_size=50 * 1024)
    sent = []
    blobs = []

    def ship(record):
        pk, ehk, data = record.get_contents()
        blobs.append(data)
        extra = {"ExplicitHashKey": ehk} if ehk else {}
        kinesis.put_record(StreamName="agg-in", PartitionKey=pk, Data=data, **extra)

    for i in range(2000):
        key = f"pk-{i % 11}"
        data = os.urandom(1 + i % 300)
        sent.append((key, data))
        full = aggregator.add_user_record(key, data)
        if full is not None:
            ship(full)
    if aggregator.get_num_user_records() > 0:
        ship(aggregator.clear_and_get())
    assert len(blobs) > 1

    proc = millrace(server, "tail", "agg-in", "--from", "trim-horizon", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    got = []
    subs = []
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        data = row["Data"]
        data = base64.b64decode(data["base64"]) if isinstance(data, dict) else data.encode()
        got.append((row["PartitionKey"], data))
        subs.append(row["SubSequenceNumber"])
    assert got == sent, "same user records, same order, same bytes"
    assert subs[:3] == [0, 1, 2]

    # Hex output is the bytes as they are.
    proc = millrace(server, "tail", "agg-in", "--from", "trim-horizon", "--format", "hex")
    assert proc.stdout.split() == [d.hex() for _, d in sent]


def test_tail_reports_a_bad_checksum_and_passes_plain_records(server):
    kinesis = server.client()
    create_stream(kinesis, "bad-md5", shards=1)
    aggregator = RecordAggregator()
    aggregator.add_user_record("a", b"one")
    aggregator.add_user_record("b", b"two")
    pk, ehk, data = aggregator.clear_and_get().get_contents()
    corrupted = data[:-1] + bytes([data[-1] ^ 1])
    kinesis.put_record(StreamName="bad-md5", PartitionKey="plain", Data=b"plain record")
    kinesis.put_record(StreamName="bad-md5", PartitionKey=pk, Data=corrupted)
    proc = millrace(server, "tail", "bad-md5", "--from", "trim-horizon")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "plain record\n"
    assert "MD5 does not match" in proc.stderr


def test_streams_commands_and_tail_across_a_split(server):
    proc = millrace(server, "streams", "create", "cli-s", "--shards", "1")
    assert proc.returncode == 0, proc.stderr
    assert millrace(server, "streams", "list").stdout.split() == ["cli-s"]
    assert millrace(server, "put", "--stream", "cli-s", "--partition-key", "k", "before-1", "before-2").returncode == 0
    proc = millrace(server, "streams", "scale", "cli-s", "2")
    assert proc.returncode == 0, proc.stderr
    assert millrace(server, "put", "--stream", "cli-s", "--partition-key", "k", "after-1").returncode == 0
    described = millrace(server, "streams", "describe", "cli-s").stdout
    assert "closed" in described and "from shardId-000000000000" in described
    proc = millrace(server, "tail", "cli-s", "--from", "trim-horizon")
    assert proc.stdout.split() == ["before-1", "before-2", "after-1"]
    missing = millrace(server, "streams", "describe", "nope")
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
    assert millrace(server, "streams", "delete", "cli-s").returncode == 0


def test_put_and_tail_over_tls_with_aws_ca_bundle(server_factory):
    srv = server_factory(args=["--tls", "self-signed"], name="tls")
    cert = srv.data_dir / "self-signed-cert.pem"
    endpoint = srv.endpoint.replace("http://127.0.0.1", "https://localhost", 1)
    env = dict(os.environ, RUST_LOG="warn", AWS_CA_BUNDLE=str(cert))

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = [str(millrace_bin()), args[0], "--endpoint-url", endpoint, *args[1:]]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, env=env)

    assert run("streams", "create", "tls-s").returncode == 0
    proc = run("put", "--stream", "tls-s", "--partition-key", "k", stdin="one\ntwo\n")
    assert proc.returncode == 0, proc.stderr
    assert run("tail", "tls-s", "--from", "trim-horizon").stdout.split() == ["one", "two"]
    # Without the bundle the self-signed certificate is refused, in plain words.
    env.pop("AWS_CA_BUNDLE")
    refused = run("streams", "list")
    assert refused.returncode == 1
    assert "millrace:" in refused.stderr


def test_tail_follow_from_latest_sees_new_records(server):
    assert millrace(server, "streams", "create", "follow-s", "--shards", "2").returncode == 0
    assert millrace(server, "put", "--stream", "follow-s", "old").returncode == 0
    cmd = [str(millrace_bin()), "tail", "--endpoint-url", server.endpoint, "follow-s", "--follow"]
    tail = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, RUST_LOG="warn"))
    try:
        import time
        time.sleep(1.5)  # let it take LATEST iterators before the new records
        assert millrace(server, "put", "--stream", "follow-s", "new-1", "new-2").returncode == 0
        lines = [tail.stdout.readline().strip() for _ in range(2)]
        assert sorted(lines) == ["new-1", "new-2"]
    finally:
        tail.terminate()
        tail.wait(timeout=10)


def test_put_from_a_file_with_a_progress_bar_on_a_terminal(server, tmp_path):
    """`put --file` on a terminal (a pseudo-terminal as standard error) draws a progress bar
    and ends at 100%; every line is a record."""
    import pty

    path = tmp_path / "bulk.txt"
    path.write_text("".join(f"line {i}\n" for i in range(25_000)))
    assert millrace(server, "streams", "create", "bulk", "--shards", "1").returncode == 0
    controller, terminal = pty.openpty()
    proc = subprocess.run(
        [str(millrace_bin()), "put", "--endpoint-url", server.endpoint, "--stream", "bulk",
         "--file", str(path), "--partition-key", "k"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal, timeout=120,
        env=dict(os.environ, RUST_LOG="warn"))
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.returncode == 0, shown
    text = shown.decode(errors="replace")
    assert "100%" in text and "25000 records" in text, text
    assert "put 25000 records" in text
    tail = millrace(server, "tail", "bulk", "--from", "trim-horizon")
    assert tail.stdout.splitlines() == [f"line {i}" for i in range(25_000)]
    missing = millrace(server, "put", "--stream", "bulk", "--file", str(tmp_path / "nope.txt"))
    assert missing.returncode == 1 and "nope.txt" in missing.stderr
