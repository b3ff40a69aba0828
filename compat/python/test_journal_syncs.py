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
    # The metrics store commits its minute of datapoints with a sync of its own file, whenever a
    # minute ends; it is off here so that only the journal's syncs are counted.
    server = server_factory(name="syncs", args=["--shard-limit", "1000", "--metrics", "off"])
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
    # strace attaches to the server's threads one by one; on a loaded machine that takes a while.
    # Probe rounds until one of them is seen, so that every thread is traced before counting.
    deadline = time.monotonic() + 60
    while not sync_lines(trace):
        if tracer.poll() is not None:
            pytest.skip(f"strace cannot attach here: {tracer.stderr.read().decode(errors='replace')[:200]}")
        assert time.monotonic() < deadline, "strace never saw the journal's sync"
        put_everywhere(client, "wide", shards, "probe")
        time.sleep(0.5)
    time.sleep(0.5)
    before = len(sync_lines(trace))
    for i in range(ROUNDS):
        put_everywhere(client, "wide", shards, f"round-{i}")
    time.sleep(0.5)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)

    calls = sync_lines(trace)[before:]
    names = [SYNC.search(line).group(1) for line in calls]
    assert names == ["fdatasync"] * ROUNDS, calls


# A call strace saw finish: a whole line (`fdatasync(12) = 0`) or the second half of one that another
# thread's call interrupted (`<... fdatasync resumed>) = 0`).
SYNC = re.compile(r"(?:\b|<\.\.\. )(fdatasync|fsync|syncfs)(?:\(| resumed>)")


def sync_lines(trace) -> list[str]:
    if not trace.exists():
        return []
    return [
        line
        for line in trace.read_text().splitlines()
        if SYNC.search(line) and "<unfinished" not in line and re.search(r"= -?\d", line)
    ]
