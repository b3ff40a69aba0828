"""Crash safety against the real binary (STYLE.md §7.5).

- kill -9 while writers run: every acknowledged record must be readable after a restart, in order
  per shard, byte-identical, with no duplicate sequence numbers; anything else found must be a record
  some writer actually sent (only the unacknowledged tail may be lost or kept).
- the same with tiny journal files and segments, so that kills land in the middle of write-back
  and of journal trimming (checkpoints);
- garbage appended to the newest segment file while the server is down must not lose data or block
  new writes.

Randomised: the seed is printed; rerun with MILLRACE_TEST_SEED=<seed>.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

import botocore.exceptions
import pytest

from millrace_testlib import create_stream, read_shard, seq_int, shard_ids

STREAM = "crash"
SHARDS = 4
WRITERS = 3
ROUNDS = 3


def seed_from_env(request) -> int:
    env = os.environ.get("MILLRACE_TEST_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)
    print(f"\n{request.node.name}: seed {seed} (rerun with MILLRACE_TEST_SEED={seed})")
    return seed


@dataclass
class Ledger:
    """What the writers sent and what the server acknowledged."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[bytes, str] = field(default_factory=dict)  # data -> partition key
    acked: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # seq -> (shard, pk, data)
    errors: list[str] = field(default_factory=list)
    duplicate_acks: list[str] = field(default_factory=list)
    # (writer, shard) -> sequence numbers in the order the writer got them acknowledged
    ack_order: dict[tuple[int, str], list[str]] = field(default_factory=dict)


def writer(endpoint_client, ledger: Ledger, rng: random.Random, wid: int, round_: int, stop: threading.Event):
    batch_no = 0
    while not stop.is_set():
        batch_no += 1
        entries = []
        for i in range(rng.randrange(1, 40)):
            # Unique payloads: the header names the record, the tail is random bytes.
            header = f"r{round_}-w{wid}-b{batch_no}-i{i}|".encode()
            data = header + rng.randbytes(rng.choice([0, 1, 10, 100, 1000, 5000]))
            pk = f"pk-{rng.randrange(1000)}"
            entries.append({"PartitionKey": pk, "Data": data})
        with ledger.lock:
            for e in entries:
                ledger.sent[e["Data"]] = e["PartitionKey"]
        try:
            out = endpoint_client.put_records(StreamName=STREAM, Records=entries)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
            # Expected once the server is killed: the batch is unacknowledged.
            with ledger.lock:
                ledger.errors.append(f"writer {wid}: {type(e).__name__}")
            return
        with ledger.lock:
            for e, r in zip(entries, out["Records"]):
                if "SequenceNumber" in r:
                    seq = r["SequenceNumber"]
                    if seq in ledger.acked:
                        ledger.duplicate_acks.append(seq)
                    ledger.acked[seq] = (r["ShardId"], e["PartitionKey"], e["Data"])
                    ledger.ack_order.setdefault((wid, r["ShardId"]), []).append(seq)


def read_everything(client) -> dict[str, list[dict]]:
    return {s: read_shard(client, STREAM, s, "TRIM_HORIZON", max_empty=2, timeout=120) for s in shard_ids(client, STREAM)}


def check_against_ledger(stored: dict[str, list[dict]], ledger: Ledger) -> None:
    seen: set[str] = set()
    for shard, records in stored.items():
        seqs = [seq_int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs), f"{shard}: sequence numbers out of order"
        assert len(set(seqs)) == len(seqs), f"{shard}: duplicate sequence numbers"
        for r in records:
            seq = r["SequenceNumber"]
            assert seq not in seen, f"sequence number {seq} appears in two shards"
            seen.add(seq)
            data = bytes(r["Data"])
            assert data in ledger.sent, f"{shard}: record {seq} holds bytes no writer sent: {data[:60]!r}"
            assert r["PartitionKey"] == ledger.sent[data], f"{shard}: record {seq} has the wrong partition key"
            if seq in ledger.acked:
                want_shard, want_pk, want_data = ledger.acked[seq]
                assert (shard, r["PartitionKey"], data) == (want_shard, want_pk, want_data), \
                    f"record {seq} differs from what was acknowledged"
    assert not ledger.duplicate_acks, f"sequence numbers acknowledged twice: {ledger.duplicate_acks[:3]}"
    for (wid, shard), seqs in ledger.ack_order.items():
        ints = [seq_int(x) for x in seqs]
        assert ints == sorted(ints) and len(set(ints)) == len(ints), \
            f"writer {wid} got decreasing sequence numbers on {shard}"
    missing = [seq for seq in ledger.acked if seq not in seen]
    assert not missing, f"{len(missing)} of {len(ledger.acked)} acknowledged records lost, e.g. {missing[:3]}"


# Small journal files and segments make checkpoints (write-back of every shard, then deleting
# journal files) and segment rolls run all the time, so the kills land in the middle of them.
CRASH_SETUPS = {
    "defaults": [],
    "busy-checkpoints": ["--journal-file-bytes", "65536", "--segment-bytes", "131072"],
    # Without fsync an acknowledged record has still left the process (the journal is written
    # before the reply), so it survives kill -9 (not a power cut).
    "fsync-never": ["--fsync", "never"],
}


@pytest.mark.slow
@pytest.mark.parametrize("setup", sorted(CRASH_SETUPS))
def test_kill9_loses_no_acknowledged_record(server_factory, request, setup):
    seed = seed_from_env(request)
    rng = random.Random(seed)
    server = server_factory(args=CRASH_SETUPS[setup], name=f"crash-{setup}")
    create_stream(server.client(), STREAM, SHARDS)
    ledger = Ledger()

    for round_ in range(ROUNDS):
        stop = threading.Event()
        threads = []
        for wid in range(WRITERS):
            client = server.client(read_timeout=20, connect_timeout=2)
            t = threading.Thread(target=writer, args=(client, ledger, random.Random(rng.randrange(2**32)), wid,
                                                      round_, stop), daemon=True)
            threads.append(t)
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 2.5))
        before = len(ledger.acked)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive(), "writer thread hung after the kill"
        print(f"round {round_}: SIGKILL; {len(ledger.acked)} records acknowledged so far ({before} before the signal)")
        assert ledger.acked, "writers got nothing acknowledged before the kill; the test proves nothing"

        server.start()
        client = server.client()
        stored = read_everything(client)
        check_against_ledger(stored, ledger)

    # Writes continue after the last restart, with larger sequence numbers.
    client = server.client()
    stored = read_everything(client)
    out = client.put_records(StreamName=STREAM, Records=[{"PartitionKey": f"after-{i}", "Data": f"after-{i}".encode()}
                                                          for i in range(20)])
    assert out["FailedRecordCount"] == 0
    for r in out["Records"]:
        previous = stored[r["ShardId"]]
        if previous:
            assert seq_int(r["SequenceNumber"]) > seq_int(previous[-1]["SequenceNumber"])


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_garbage_after_newest_segment(server_factory, request, how):
    seed = seed_from_env(request)
    rng = random.Random(seed)
    # Small segments, so that the data spans several files and only the newest gets the garbage.
    server = server_factory(args=["--segment-bytes", "4096"], name=f"garbage-{how}")
    client = server.client()
    create_stream(client, STREAM, 2)
    want: dict[str, list[tuple[str, str, bytes]]] = {}
    for i in range(60):
        data = rng.randbytes(rng.randrange(0, 3000))
        out = client.put_record(StreamName=STREAM, PartitionKey=f"k{i}", Data=data)
        want.setdefault(out["ShardId"], []).append((out["SequenceNumber"], f"k{i}", data))

    if how == "sigterm":
        server.stop()
    else:
        server.kill9()
    segments = server.segment_files()
    assert segments, f"no *.seg files under {server.data_dir}"
    newest = max(segments, key=lambda p: (p.stat().st_mtime_ns, p.stat().st_size))
    garbage = rng.randbytes(rng.randrange(1, 200)) + b"\x00" * rng.randrange(0, 64) + b"\xff" * 8
    with open(newest, "ab") as f:
        f.write(garbage)
    print(f"appended {len(garbage)} garbage bytes to {newest}")

    server.start()
    client = server.client()
    for shard, records in want.items():
        got = read_shard(client, STREAM, shard, max_empty=2)
        assert [(r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"])) for r in got] == records, shard

    # Writes continue, land after the old records, and survive another restart.
    more = {}
    for i in range(20):
        data = f"after-garbage-{i}".encode() + rng.randbytes(50)
        out = client.put_record(StreamName=STREAM, PartitionKey=f"k{i}", Data=data)
        more.setdefault(out["ShardId"], []).append((out["SequenceNumber"], f"k{i}", data))
    server.restart()
    client = server.client()
    for shard in set(want) | set(more):
        got = read_shard(client, STREAM, shard, max_empty=2)
        assert [(r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"])) for r in got] == \
            want.get(shard, []) + more.get(shard, []), shard
