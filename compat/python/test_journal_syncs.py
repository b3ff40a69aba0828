"""One sync per commit round, however many shards a request touches, counted with strace.

The server is traced (every thread) while three PutRecords calls, one after the other, each put
a record on every one of 500 shards: that is three commit rounds, so exactly three `fdatasync`
calls (of the journal) and no `fsync` or `syncfs` (which would flush other programs' data too).

The same count by hand, for any workload:
    strace -f -p <millrace pid> -e trace=fdatasync,fsync,syncfs -c
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time

import pytest

from millrace_testlib import create_stream

SHARDS = 500
ROUNDS = 3


def put_everywhere(client, stream: str, shards: list[dict], tag: str) -> None:
    records = [
        {"PartitionKey": "k", "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"], "Data": f"{tag}-{i}".encode()}
        for i, s in enumerate(shards)
    ]
    out = client.put_records(StreamName=stream, Records=records)
    assert out["FailedRecordCount"] == 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_request_to_500_shards_costs_one_fdatasync(server_factory, tmp_path):
    server = server_factory(name="syncs", args=["--shard-limit", "1000"])
    client = server.client()
    create_stream(client, "wide", SHARDS)
    shards = client.list_shards(StreamName="wide")["Shards"]
    # The first record of a shard creates its segment file (and syncs it); do that untraced.
    put_everywhere(client, "wide", shards, "warm")

    trace = tmp_path / "strace.out"
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-p", str(server.proc.pid), "-e", "trace=fdatasync,fsync,syncfs", "-o", str(trace)],
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    if tracer.poll() is not None:
        pytest.skip(f"strace cannot attach here: {tracer.stderr.read().decode(errors='replace')[:200]}")
    for i in range(ROUNDS):
        put_everywhere(client, "wide", shards, f"round-{i}")
    time.sleep(0.3)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)

    calls = [line for line in trace.read_text().splitlines() if re.search(r"\b(fdatasync|fsync|syncfs)\(", line)]
    names = [re.search(r"\b(fdatasync|fsync|syncfs)\(", line).group(1) for line in calls]
    assert names == ["fdatasync"] * ROUNDS, calls
