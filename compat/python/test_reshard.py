"""Resharding through boto3 (wire notes §2.4, §2.5, §2.9).

- a lineage-following GetRecords consumer (parents before children, children found through ChildShards) reads
  while 4 producer threads write and splits/merges run: every acknowledged record exactly once, per partition
  key in order;
- UpdateShardCount up and down ends in the even layout of CreateStream(N), shard for shard;
- while the stream is UPDATING after SplitShard or MergeShards, every operation sees the shards of before
  (the parents open and taking writes, the children not listed); the children appear and the parents
  close when it is ACTIVE again, also when the server was killed during UPDATING;
- error cases with AWS's texts;
- kill -9 while splits/merges and writers run: after a restart the open shards partition the key space,
  closed shards have an EndingSequenceNumber, and every acknowledged record is there exactly once.

Randomised: the seed is printed; rerun with MILLRACE_TEST_SEED=<seed>.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import botocore.exceptions
import pytest

from millrace_testlib import (
    ACCOUNT,
    MAX_HASH_KEY,
    assert_client_error,
    client_error,
    hash_ranges,
    make_client,
    seq_int,
    shard_not_found,
    wait_status,
)


def seed_from_env(request) -> int:
    env = os.environ.get("MILLRACE_TEST_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)
    print(f"\n{request.node.name}: seed {seed} (rerun with MILLRACE_TEST_SEED={seed})")
    return seed


def sid(i: int) -> str:
    return f"shardId-{i:012d}"


def no_retry_client(server, **kwargs):
    # make_client's max_attempts counts retries (botocore's legacy meaning): 0 means a single attempt, so a
    # timed-out PutRecords is never sent twice behind the test's back.
    return make_client(server.endpoint, max_attempts=0, **kwargs)


def create(client, name: str, shards: int) -> None:
    client.create_stream(StreamName=name, ShardCount=shards)
    wait_status(client, name)


def all_shards(client, name: str, **kwargs) -> list[dict]:
    shards, token = [], None
    while True:
        out = client.list_shards(NextToken=token) if token else client.list_shards(StreamName=name, **kwargs)
        shards.extend(out["Shards"])
        token = out.get("NextToken")
        if not token:
            return shards


def key_range(shard: dict) -> tuple[int, int]:
    return int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])


def parents_of(shard: dict) -> list[str]:
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def open_shards(shards: list[dict]) -> list[dict]:
    return sorted((s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]), key=key_range)


def assert_partition(open_: list[dict]) -> None:
    """Open shards cover [0, 2^128-1] exactly, without gaps or overlaps."""
    ranges = sorted(key_range(s) for s in open_)
    assert ranges, "no open shards"
    assert ranges[0][0] == 0, ranges
    assert ranges[-1][1] == MAX_HASH_KEY, ranges
    for (s0, e0), (s1, e1) in zip(ranges, ranges[1:]):
        assert s0 <= e0 and e0 + 1 == s1, f"gap or overlap between [{s0}, {e0}] and [{s1}, {e1}]"


def assert_lineage_consistent(shards: list[dict]) -> None:
    by_id = {s["ShardId"]: s for s in shards}
    parents = {p for s in shards for p in parents_of(s)}
    for s in shards:
        closed = "EndingSequenceNumber" in s["SequenceNumberRange"]
        assert closed == (s["ShardId"] in parents), (
            f"{s['ShardId']}: closed={closed} but {'is' if s['ShardId'] in parents else 'is not'} a parent: {s}")
        if closed:
            assert seq_int(s["SequenceNumberRange"]["EndingSequenceNumber"]) >= \
                seq_int(s["SequenceNumberRange"]["StartingSequenceNumber"]), s
        for p in parents_of(s):
            assert p in by_id, f"{s['ShardId']} names parent {p}, which ListShards does not return"


# --------------------------------------------------------------------------------------------------
# Writers with per-key order


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[bytes, str] = field(default_factory=dict)  # data -> partition key
    acked: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # seq -> (shard, pk, data)
    counters: dict[str, int] = field(default_factory=dict)  # pk -> next counter (writer-owned keys)
    errors: list[str] = field(default_factory=list)
    duplicate_acks: list[str] = field(default_factory=list)


def ordered_writer(client, stream: str, ledger: Ledger, rng: random.Random, wid: int, stop: threading.Event,
                   tag: str = "", keys: int = 25, stop_on_error: bool = False) -> None:
    """Each writer owns its keys and writes them one call at a time, so per key the acknowledgement order is
    the order a correct consumer must see. Data = b'<pk>#<counter>|<tag>|' + random bytes."""
    batch = 0
    while not stop.is_set():
        batch += 1
        entries = []
        with ledger.lock:
            for _ in range(rng.randrange(1, 25)):
                pk = f"w{wid}-k{rng.randrange(keys)}"
                n = ledger.counters.get(pk, 0)
                ledger.counters[pk] = n + 1
                data = f"{pk}#{n}|{tag}b{batch}|".encode() + rng.randbytes(rng.choice([0, 3, 50, 700, 3000]))
                entries.append({"PartitionKey": pk, "Data": data})
                ledger.sent[data] = pk
        try:
            out = client.put_records(StreamName=stream, Records=entries)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
            with ledger.lock:
                ledger.errors.append(f"writer {wid}: {type(e).__name__}: {e}")
            if stop_on_error:
                return
            time.sleep(0.05)
            continue
        with ledger.lock:
            for e, r in zip(entries, out["Records"]):
                if "SequenceNumber" in r:
                    seq = r["SequenceNumber"]
                    if seq in ledger.acked:
                        ledger.duplicate_acks.append(seq)
                    ledger.acked[seq] = (r["ShardId"], e["PartitionKey"], e["Data"])
                else:
                    ledger.errors.append(f"writer {wid}: entry failed: {r.get('ErrorCode')} {r.get('ErrorMessage')}")


def counter_of(data: bytes) -> tuple[str, int]:
    head = data.split(b"|", 1)[0].decode()
    pk, n = head.rsplit("#", 1)
    return pk, int(n)


# --------------------------------------------------------------------------------------------------
# Lineage-following consumer


class LineageConsumer(threading.Thread):
    """Polls GetRecords like the KCL: starts at the shards without parents, reads a shard until GetRecords
    returns no NextShardIterator (then ChildShards must be non-empty), and starts a child only once every
    parent it names has been read to its end."""

    def __init__(self, endpoint: str, stream: str, rng: random.Random, timeout: float = 120.0):
        super().__init__(daemon=True)
        self.rng = rng
        self.client = make_client(endpoint, max_attempts=0, read_timeout=30)
        self.stream = stream
        self.timeout = timeout
        self.consumed: list[tuple[str, dict]] = []  # (shard, record) in consumption order
        self.finished: list[str] = []  # shards read to their end, in order
        self.started: list[str] = []
        self.child_parents: dict[str, list[str]] = {}  # from ChildShards
        self.child_ranges: dict[str, dict] = {}
        self.drain = threading.Event()  # set once writers and resharding are done
        self.target = 0  # records expected in total, valid once drain is set
        self.failure: Optional[BaseException] = None
        self.violations: list[str] = []

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.failure = e

    def _start(self, shard: str, iterators: dict) -> None:
        self.started.append(shard)
        iterators[shard] = self.client.get_shard_iterator(
            StreamName=self.stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        iterators: dict[str, str] = {}
        for s in all_shards(self.client, self.stream):
            if not parents_of(s):
                self._start(s["ShardId"], iterators)
        caught_up: dict[str, bool] = {}
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer timed out: {len(self.consumed)} of {self.target} records, "
                                     f"reading {sorted(iterators)}")
            for shard in sorted(iterators):
                out = self.client.get_records(ShardIterator=iterators[shard], Limit=self.rng.randrange(5, 200))
                for r in out["Records"]:
                    self.consumed.append((shard, r))
                nxt = out.get("NextShardIterator")
                children = out.get("ChildShards") or []
                caught_up[shard] = not out["Records"] and out.get("MillisBehindLatest", 0) == 0
                if nxt:
                    assert not children, f"{shard}: ChildShards before the shard end: {out!r}"
                    iterators[shard] = nxt
                    continue
                if not children:
                    # AWS never does this (KCL: null iterator <=> non-empty ChildShards). Note it, and carry on from
                    # the last record like a tolerant client, so that the data checks still run.
                    self.violations.append(
                        f"{shard}: GetRecords ended the shard (no NextShardIterator) without ChildShards "
                        f"(response keys {sorted(k for k in out if k != 'ResponseMetadata')}, "
                        f"{len(out['Records'])} records)")
                    mine = [r for s_, r in self.consumed if s_ == shard]
                    kwargs = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                               "StartingSequenceNumber": mine[-1]["SequenceNumber"]} if mine
                              else {"ShardIteratorType": "TRIM_HORIZON"})
                    iterators[shard] = self.client.get_shard_iterator(
                        StreamName=self.stream, ShardId=shard, **kwargs)["ShardIterator"]
                    continue
                del iterators[shard]
                caught_up.pop(shard, None)
                self.finished.append(shard)
                for child in children:
                    assert shard in child["ParentShards"], f"{shard}: child {child} does not name it as a parent"
                    known = self.child_parents.setdefault(child["ShardId"], child["ParentShards"])
                    assert known == child["ParentShards"], f"{child['ShardId']}: parents differ between responses"
                    self.child_ranges[child["ShardId"]] = child["HashKeyRange"]
                    if child["ShardId"] not in self.started and all(p in self.finished for p in child["ParentShards"]):
                        self._start(child["ShardId"], iterators)
            if self.drain.is_set() and len(self.consumed) >= self.target and all(caught_up.get(s) for s in iterators):
                return
            time.sleep(0.01)


@pytest.mark.slow
def test_lineage_consumer_across_splits_and_merges(server_factory, request):
    rng = random.Random(seed_from_env(request))
    server = server_factory(name="lineage")
    client = server.client()
    stream = "lineage"
    create(client, stream, 2)

    ledger = Ledger()
    stop = threading.Event()
    writers = [threading.Thread(target=ordered_writer,
                                args=(no_retry_client(server), stream, ledger, random.Random(rng.randrange(2**32)),
                                      wid, stop), daemon=True)
               for wid in range(4)]
    consumer = LineageConsumer(server.endpoint, stream, random.Random(rng.randrange(2**32)))
    consumer.start()
    for w in writers:
        w.start()

    # Splits and merges while everything runs: two fixed ones, then random ones.
    ops: list[str] = []

    def split(shard: dict, key: int) -> None:
        client.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str(key))
        ops.append(f"split {shard['ShardId']} at {key}")
        wait_status(client, stream)

    def merge(a: dict, b: dict) -> None:
        client.merge_shards(StreamName=stream, ShardToMerge=a["ShardId"], AdjacentShardToMerge=b["ShardId"])
        ops.append(f"merge {a['ShardId']}+{b['ShardId']}")
        wait_status(client, stream)

    time.sleep(0.4)
    for _ in range(2):
        s = open_shards(all_shards(client, stream))[0 if not ops else -1]
        lo, hi = key_range(s)
        split(s, (lo + hi) // 2)
        time.sleep(0.3)
    for i in range(6):
        current = open_shards(all_shards(client, stream))
        if (i % 2 == 0 and len(current) > 1) or len(current) > 4:
            j = rng.randrange(len(current) - 1)
            merge(current[j], current[j + 1])
        else:
            s = rng.choice(current)
            lo, hi = key_range(s)
            split(s, rng.randrange(lo + 2, hi))
        time.sleep(0.3)
    print("operations:", "; ".join(ops))
    time.sleep(0.3)
    stop.set()
    for w in writers:
        w.join(timeout=30)
        assert not w.is_alive()
    assert not ledger.errors, ledger.errors[:5]
    assert not ledger.duplicate_acks, ledger.duplicate_acks[:5]
    consumer.target = len(ledger.acked)
    consumer.drain.set()
    consumer.join(timeout=120)
    assert not consumer.is_alive(), "consumer hung"
    if consumer.failure:
        raise consumer.failure

    shards = all_shards(client, stream)
    print(f"{len(ledger.acked)} records acknowledged over {len(shards)} shards; consumed {len(consumer.consumed)}")
    assert len(ledger.acked) > 200, "writers wrote too little"

    # The lineage learnt from ChildShards is ListShards' lineage; every shard was read.
    by_id = {s["ShardId"]: s for s in shards}
    for child, parents in consumer.child_parents.items():
        assert parents == parents_of(by_id[child]), f"{child}: ChildShards parents {parents} vs ListShards"
        assert consumer.child_ranges[child] == by_id[child]["HashKeyRange"]
    assert sorted(consumer.started) == sorted(by_id), "the consumer did not reach every shard"
    assert_lineage_consistent(shards)
    assert_partition(open_shards(shards))

    # Every acknowledged record exactly once, from the shard that acknowledged it, byte-identical.
    seen: dict[str, str] = {}
    for shard, r in consumer.consumed:
        seq = r["SequenceNumber"]
        assert seq not in seen, f"record {seq} consumed twice ({seen[seq]} and {shard})"
        seen[seq] = shard
        assert seq in ledger.acked, f"{shard}: record {seq} was never acknowledged"
        assert (shard, r["PartitionKey"], bytes(r["Data"])) == ledger.acked[seq], f"record {seq} differs"
    missing = set(ledger.acked) - set(seen)
    assert not missing, f"{len(missing)} acknowledged records never consumed, e.g. {sorted(missing)[:3]}"

    # Per partition key, the consumer saw counters 0, 1, 2, ... in that order.
    last: dict[str, int] = {}
    for shard, r in consumer.consumed:
        pk, n = counter_of(bytes(r["Data"]))
        assert pk == r["PartitionKey"]
        assert n == last.get(pk, -1) + 1, f"{pk}: counter {n} after {last.get(pk)} (on {shard}); order broken"
        last[pk] = n
    assert last == {pk: n - 1 for pk, n in ledger.counters.items()}

    # Parents before children: no record of a child was consumed before its parents were finished.
    position = {}
    for i, (shard, _) in enumerate(consumer.consumed):
        position.setdefault(shard, i)
    for child, parents in consumer.child_parents.items():
        for p in parents:
            assert consumer.finished.index(p) < len(consumer.finished)
            if child in position and p in position:
                assert position[p] < position[child]

    assert not consumer.violations, "shard ends without ChildShards:\n" + "\n".join(consumer.violations)


# --------------------------------------------------------------------------------------------------
# The shape while UPDATING

# UPDATING lasts this long in these tests: every check of the UPDATING state runs well within it even on a
# loaded machine, and each check that needs the state is confirmed to have run inside it.
SLOW_UPDATE_MS = 4000


def shape(client, stream: str) -> tuple[list[str], list[str]]:
    """(open, closed) shard ids as DescribeStream lists them; ListShards must agree."""
    described = client.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    listed = all_shards(client, stream)
    assert described == listed, (described, listed)
    open_ = [s["ShardId"] for s in described if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    closed = [s["ShardId"] for s in described if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    return open_, closed


def assert_updating(client, stream: str, open_: list[str]) -> None:
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "UPDATING", summary
    assert summary["OpenShardCount"] == len(open_), summary
    assert shape(client, stream) == (open_, [])
    assert client.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"] == "UPDATING"


def test_shards_change_when_updating_ends(server_factory):
    server = server_factory(args=["--update-stream-ms", str(SLOW_UPDATE_MS)], name="updating-shape")
    client = server.client()
    stream = "updating"
    create(client, stream, 1)
    client.put_record(StreamName=stream, PartitionKey="a", Data=b"before", ExplicitHashKey=str(MAX_HASH_KEY))
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=sid(0),
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    # SplitShard: while UPDATING the parent is the stream's only shard, open and taking every write.
    client.split_shard(StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey=str(2**127))
    accepted = time.monotonic()
    assert_updating(client, stream, [sid(0)])
    for key in (0, 2**127, MAX_HASH_KEY):
        out = client.put_record(StreamName=stream, PartitionKey="a", Data=b"updating", ExplicitHashKey=str(key))
        assert out["ShardId"] == sid(0), out
    out = client.put_records(StreamName=stream, Records=[{"PartitionKey": f"p{i}", "Data": b"batch"} for i in range(20)])
    assert {r["ShardId"] for r in out["Records"]} == {sid(0)}, out["Records"]
    page = client.get_records(ShardIterator=iterator)
    assert [bytes(r["Data"]) for r in page["Records"]] == [b"before"] + [b"updating"] * 3 + [b"batch"] * 20
    assert page.get("NextShardIterator") and not page.get("ChildShards"), page
    iterator = page["NextShardIterator"]
    err = client_error(client.get_shard_iterator, StreamName=stream, ShardId=sid(1), ShardIteratorType="TRIM_HORIZON")
    assert_client_error(err, "ResourceNotFoundException", shard_not_found(stream, sid(1)))
    err = client_error(client.split_shard, StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey=str(2**126))
    assert_client_error(err, "ResourceInUseException",
                        f"Stream {stream} under account {ACCOUNT} not ACTIVE, instead in state UPDATING")
    assert time.monotonic() - accepted < SLOW_UPDATE_MS / 1000, "the checks outlasted UPDATING; they prove nothing"

    # ACTIVE: the parent is closed and the children take the writes.
    wait_status(client, stream)
    assert shape(client, stream) == ([sid(1), sid(2)], [sid(0)])
    children = {s["ShardId"]: s for s in all_shards(client, stream)}
    assert key_range(children[sid(1)]) == (0, 2**127 - 1) and children[sid(2)]["ParentShardId"] == sid(0)
    assert client.put_record(StreamName=stream, PartitionKey="a", Data=b"after",
                             ExplicitHashKey=str(MAX_HASH_KEY))["ShardId"] == sid(2)
    page = client.get_records(ShardIterator=iterator)
    assert not page["Records"] and "NextShardIterator" not in page, page
    assert [c["ShardId"] for c in page["ChildShards"]] == [sid(1), sid(2)]

    # MergeShards: the same, the two parents open until ACTIVE.
    client.merge_shards(StreamName=stream, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    accepted = time.monotonic()
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "UPDATING" and summary["OpenShardCount"] == 2, summary
    assert shape(client, stream) == ([sid(1), sid(2)], [sid(0)])
    for key, shard in ((0, sid(1)), (MAX_HASH_KEY, sid(2))):
        out = client.put_record(StreamName=stream, PartitionKey="a", Data=b"merging", ExplicitHashKey=str(key))
        assert out["ShardId"] == shard, out
    assert time.monotonic() - accepted < SLOW_UPDATE_MS / 1000, "the checks outlasted UPDATING; they prove nothing"
    wait_status(client, stream)
    assert shape(client, stream) == ([sid(3)], [sid(0), sid(1), sid(2)])
    assert client.put_record(StreamName=stream, PartitionKey="a", Data=b"merged")["ShardId"] == sid(3)


@pytest.mark.parametrize("down_past_deadline", [False, True], ids=["restart-while-updating", "restart-after-deadline"])
def test_kill9_while_updating_keeps_the_reshard(server_factory, down_past_deadline):
    server = server_factory(args=["--update-stream-ms", str(SLOW_UPDATE_MS)], name="updating-crash")
    client = server.client()
    stream = "updating-crash"
    create(client, stream, 2)
    client.put_record(StreamName=stream, PartitionKey="a", Data=b"before", ExplicitHashKey="0")
    client.split_shard(StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey=str(2**126))
    accepted = time.monotonic()
    out = client.put_record(StreamName=stream, PartitionKey="a", Data=b"updating", ExplicitHashKey="0")
    assert out["ShardId"] == sid(0), out
    server.kill9()
    if down_past_deadline:
        time.sleep(max(0.0, SLOW_UPDATE_MS / 1000 - (time.monotonic() - accepted)) + 0.5)

    server.start()
    client = server.client()
    summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    if summary["StreamStatus"] == "UPDATING":
        assert shape(client, stream) == ([sid(0), sid(1)], [])
    summary = wait_status(client, stream)
    assert summary["OpenShardCount"] == 3
    assert shape(client, stream) == ([sid(1), sid(2), sid(3)], [sid(0)])
    shards = all_shards(client, stream)
    assert_lineage_consistent(shards)
    assert_partition(open_shards(shards))
    # The parent kept what it took while UPDATING, and ends with its children.
    iterator = client.get_shard_iterator(StreamName=stream, ShardId=sid(0),
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    page = client.get_records(ShardIterator=iterator)
    assert [bytes(r["Data"]) for r in page["Records"]] == [b"before", b"updating"]
    while page.get("NextShardIterator"):
        page = client.get_records(ShardIterator=page["NextShardIterator"])
        assert not page["Records"], page
    assert [c["ShardId"] for c in page["ChildShards"]] == [sid(2), sid(3)]
    assert client.put_record(StreamName=stream, PartitionKey="a", Data=b"after", ExplicitHashKey="0")["ShardId"] == sid(2)


# --------------------------------------------------------------------------------------------------
# UpdateShardCount


def test_update_shard_count_matches_even_layout(server_factory):
    # UPDATING lasts 1.5 s: long enough that the describe and the refused call after each reshard
    # still see it on a loaded machine.
    server = server_factory(args=["--update-stream-ms", "1500"], name="scaling")
    client = server.client()
    stream = "scaling"
    create(client, stream, 4)
    targets = [8, 5, 3, 6, 3, 2, 4, 2, 4, 8]  # ten calls: the rolling-24h quota
    current = 4
    for target in targets:
        out = client.update_shard_count(StreamName=stream, TargetShardCount=target, ScalingType="UNIFORM_SCALING")
        body = {k: v for k, v in out.items() if k != "ResponseMetadata"}
        arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{stream}"
        assert body == {"StreamName": stream, "StreamARN": arn, "CurrentShardCount": current,
                        "TargetShardCount": target}, body
        summary = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        assert summary["StreamStatus"] == "UPDATING", summary["StreamStatus"]
        # The new layout appears when the stream is ACTIVE again.
        assert summary["OpenShardCount"] == current, summary
        err = client_error(client.update_shard_count, StreamName=stream, TargetShardCount=current,
                           ScalingType="UNIFORM_SCALING")
        assert_client_error(err, "ResourceInUseException")
        summary = wait_status(client, stream)
        assert summary["OpenShardCount"] == target

        shards = all_shards(client, stream)
        latest = sorted(all_shards(client, stream, ShardFilter={"Type": "AT_LATEST"}), key=key_range)
        assert [s["ShardId"] for s in latest] == [s["ShardId"] for s in open_shards(shards)]
        got = [key_range(s) for s in latest]
        want = hash_ranges(target)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, f"{current}->{target}: open shard {i} ({latest[i]['ShardId']}) is {g}, expected {w}"
        assert len(got) == len(want), f"{current}->{target}: {len(got)} open shards"
        assert want[-1][1] == MAX_HASH_KEY and want[1][0] == 2**128 // target
        assert_lineage_consistent(shards)
        current = target

    # A write lands on the open shard owning the key, and reads back.
    out = client.put_record(StreamName=stream, PartitionKey="x", Data=b"after", ExplicitHashKey=str(MAX_HASH_KEY))
    assert out["ShardId"] == sorted(open_shards(all_shards(client, stream)), key=key_range)[-1]["ShardId"]

    # The eleventh call within 24 h is refused.
    err = client_error(client.update_shard_count, StreamName=stream, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    assert_client_error(err, "LimitExceededException")
    print("11th UpdateShardCount:", err.response["Error"]["Message"])


# --------------------------------------------------------------------------------------------------
# Errors


def split_range_message(stream: str, shard: str, key: int, start: int, end: int) -> str:
    return (f"NewStartingHashKey {key} used in SplitShard() on shard {shard} in stream {stream} under account "
            f"{ACCOUNT} is not both greater than one plus the shard's StartingHashKey {start} and less than the "
            f"shard's EndingHashKey {end}.")


def not_adjacent_message(stream: str, a: str, b: str) -> str:
    return (f"Shards {a} and {b} in stream {stream} under account {ACCOUNT} are not an adjacent pair of shards "
            "eligible for merging")


def closed_message(stream: str, shard: str) -> str:
    return (f"Shard {shard} in stream {stream} under account {ACCOUNT} has already been merged or split, and thus "
            "is not eligible for merging or splitting.")


def test_split_key_bounds(server_factory):
    server = server_factory(name="split-bounds")
    client = server.client()
    stream = "bounds"
    create(client, stream, 2)
    (s0, e0), (s1, e1) = hash_ranges(2)
    for shard, start, end, key in [
        (sid(0), s0, e0, s0 + 1),  # start+1: the documented boundary case
        (sid(0), s0, e0, e0),  # must be < end
        (sid(1), s1, e1, s1),
        (sid(1), s1, e1, s1 + 1),
        (sid(1), s1, e1, e1),
        (sid(1), s1, e1, s0 + 5),  # below the shard
    ]:
        err = client_error(client.split_shard, StreamName=stream, ShardToSplit=shard, NewStartingHashKey=str(key))
        assert_client_error(err, "InvalidArgumentException", split_range_message(stream, shard, key, start, end))
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"

    # start+2 works: children [start, start+1] and [start+2, end], lower index for the lower range.
    client.split_shard(StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey=str(s0 + 2))
    wait_status(client, stream)
    shards = {s["ShardId"]: s for s in all_shards(client, stream)}
    assert key_range(shards[sid(2)]) == (s0, s0 + 1)
    assert key_range(shards[sid(3)]) == (s0 + 2, e0)
    for child in (sid(2), sid(3)):
        assert shards[child]["ParentShardId"] == sid(0) and "AdjacentParentShardId" not in shards[child]
    assert "EndingSequenceNumber" in shards[sid(0)]["SequenceNumberRange"]
    assert "EndingSequenceNumber" not in shards[sid(2)]["SequenceNumberRange"]


def test_merge_and_closed_shard_errors(server_factory):
    server = server_factory(args=["--update-stream-ms", "1500"], name="merge-errors")
    client = server.client()
    stream = "merging"
    create(client, stream, 3)

    err = client_error(client.merge_shards, StreamName=stream, ShardToMerge=sid(0), AdjacentShardToMerge=sid(2))
    assert_client_error(err, "InvalidArgumentException", not_adjacent_message(stream, sid(0), sid(2)))
    # Order matters: end(ShardToMerge) + 1 must be start(AdjacentShardToMerge).
    err = client_error(client.merge_shards, StreamName=stream, ShardToMerge=sid(1), AdjacentShardToMerge=sid(0))
    assert_client_error(err, "InvalidArgumentException", not_adjacent_message(stream, sid(1), sid(0)))
    err = client_error(client.merge_shards, StreamName=stream, ShardToMerge=sid(0), AdjacentShardToMerge=sid(9))
    assert_client_error(err, "ResourceNotFoundException")

    client.merge_shards(StreamName=stream, ShardToMerge=sid(0), AdjacentShardToMerge=sid(1))
    # While UPDATING, resharding is refused with the stream's state.
    err = client_error(client.split_shard, StreamName=stream, ShardToSplit=sid(2), NewStartingHashKey=str(2**127 + 7))
    assert_client_error(err, "ResourceInUseException",
                        f"Stream {stream} under account {ACCOUNT} not ACTIVE, instead in state UPDATING")
    wait_status(client, stream)
    shards = {s["ShardId"]: s for s in all_shards(client, stream)}
    merged = shards[sid(3)]
    assert (merged["ParentShardId"], merged["AdjacentParentShardId"]) == (sid(0), sid(1))
    assert key_range(merged) == (hash_ranges(3)[0][0], hash_ranges(3)[1][1])

    # Closed shards can be neither split nor merged.
    err = client_error(client.split_shard, StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey="12345")
    assert_client_error(err, "InvalidArgumentException", closed_message(stream, sid(0)))
    err = client_error(client.merge_shards, StreamName=stream, ShardToMerge=sid(1), AdjacentShardToMerge=sid(2))
    assert_client_error(err, "InvalidArgumentException", closed_message(stream, sid(1)))

    # UpdateShardCount outside [current/2, 2*current] (2 open shards now).
    for target in (5, 100):
        err = client_error(client.update_shard_count, StreamName=stream, TargetShardCount=target,
                           ScalingType="UNIFORM_SCALING")
        assert_client_error(err, "LimitExceededException")
    client.merge_shards(StreamName=stream, ShardToMerge=sid(3), AdjacentShardToMerge=sid(2))
    wait_status(client, stream)
    client.split_shard(StreamName=stream, ShardToSplit=sid(4), NewStartingHashKey=str(2**126))
    wait_status(client, stream)
    client.split_shard(StreamName=stream, ShardToSplit=sid(6), NewStartingHashKey=str(2**127))
    wait_status(client, stream)
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["OpenShardCount"] == 3
    err = client_error(client.update_shard_count, StreamName=stream, TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    assert_client_error(err, "LimitExceededException")  # below half of 3
    print("UpdateShardCount 3 -> 1:", err.response["Error"]["Message"])


def test_resharding_an_on_demand_stream(server_factory):
    server = server_factory(name="on-demand")
    client = server.client()
    stream = "ondemand"
    client.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    summary = wait_status(client, stream)
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["OpenShardCount"] == 4
    for call, kwargs in [
        (client.split_shard, {"ShardToSplit": sid(0), "NewStartingHashKey": "12345"}),
        (client.merge_shards, {"ShardToMerge": sid(0), "AdjacentShardToMerge": sid(1)}),
        (client.update_shard_count, {"TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
    ]:
        err = client_error(call, StreamName=stream, **kwargs)
        assert_client_error(err, "ValidationException")

    # After switching to PROVISIONED, resharding works.
    client.update_stream_mode(StreamARN=summary["StreamARN"], StreamModeDetails={"StreamMode": "PROVISIONED"})
    summary = wait_status(client, stream)
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    client.split_shard(StreamName=stream, ShardToSplit=sid(0), NewStartingHashKey="12345")
    summary = wait_status(client, stream)
    assert summary["OpenShardCount"] == 5


# --------------------------------------------------------------------------------------------------
# kill -9 while resharding


def reshard_loop(client, stream: str, rng: random.Random, stop: threading.Event, log: list[str]) -> None:
    while not stop.is_set():
        try:
            current = open_shards(all_shards(client, stream))
            if len(current) > 1 and (len(current) >= 6 or rng.random() < 0.45):
                j = rng.randrange(len(current) - 1)
                client.merge_shards(StreamName=stream, ShardToMerge=current[j]["ShardId"],
                                    AdjacentShardToMerge=current[j + 1]["ShardId"])
                log.append(f"merge {current[j]['ShardId']}+{current[j + 1]['ShardId']}")
            else:
                s = rng.choice(current)
                lo, hi = key_range(s)
                client.split_shard(StreamName=stream, ShardToSplit=s["ShardId"], NewStartingHashKey=str(rng.randrange(lo + 2, hi)))
                log.append(f"split {s['ShardId']}")
            deadline = time.monotonic() + 10
            while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
                if time.monotonic() > deadline:
                    raise AssertionError("stream stuck in UPDATING")
                time.sleep(0.01)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as e:
            log.append(f"error {type(e).__name__}")
            return


def read_all(client, stream: str) -> dict[str, list[dict]]:
    out = {}
    for s in all_shards(client, stream):
        records = []
        it = client.get_shard_iterator(StreamName=stream, ShardId=s["ShardId"],
                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        empty = 0
        while it and empty < 2:
            r = client.get_records(ShardIterator=it)
            records.extend(r["Records"])
            empty = 0 if r["Records"] else empty + 1
            it = r.get("NextShardIterator")
            if not it:
                assert r.get("ChildShards"), f"{s['ShardId']}: shard end without ChildShards"
        out[s["ShardId"]] = records
    return out


@pytest.mark.slow
def test_kill9_during_resharding(server_factory, request):
    rng = random.Random(seed_from_env(request))
    server = server_factory(args=["--update-stream-ms", "20"], name="reshard-crash")
    stream = "crashy"
    create(server.client(), stream, 3)
    ledger = Ledger()
    rounds = 4
    for round_ in range(rounds):
        stop = threading.Event()
        log: list[str] = []
        writers = [threading.Thread(target=ordered_writer,
                                    args=(no_retry_client(server, read_timeout=20, connect_timeout=2), stream, ledger,
                                          random.Random(rng.randrange(2**32)), wid, stop, f"r{round_}", 25, True),
                                    daemon=True)
                   for wid in range(3)]
        resharder = threading.Thread(target=reshard_loop,
                                     args=(no_retry_client(server, read_timeout=20, connect_timeout=2), stream,
                                           random.Random(rng.randrange(2**32)), stop, log), daemon=True)
        for t in writers + [resharder]:
            t.start()
        time.sleep(rng.uniform(0.4, 2.0))
        server.kill9()
        stop.set()
        for t in writers + [resharder]:
            t.join(timeout=60)
            assert not t.is_alive(), "a thread hung after the kill"
        print(f"round {round_}: {len(ledger.acked)} records acknowledged; reshards: {', '.join(log)}")

        server.start()
        client = server.client()
        summary = wait_status(client, stream, timeout=30)
        shards = all_shards(client, stream)
        open_ = open_shards(shards)
        assert_partition(open_)
        assert summary["OpenShardCount"] == len(open_)
        latest = all_shards(client, stream, ShardFilter={"Type": "AT_LATEST"})
        assert sorted(s["ShardId"] for s in latest) == sorted(s["ShardId"] for s in open_)
        assert_lineage_consistent(shards)

        stored = read_all(client, stream)
        seen: dict[str, str] = {}
        for shard, records in stored.items():
            seqs = [seq_int(r["SequenceNumber"]) for r in records]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{shard}: order or duplicates"
            for r in records:
                seq = r["SequenceNumber"]
                assert seq not in seen, f"{seq} in {seen[seq]} and {shard}"
                seen[seq] = shard
                data = bytes(r["Data"])
                assert ledger.sent.get(data) == r["PartitionKey"], f"{shard}: {seq} holds bytes no writer sent"
                if seq in ledger.acked:
                    assert ledger.acked[seq] == (shard, r["PartitionKey"], data), f"{seq} differs from its ack"
        missing = [s for s in ledger.acked if s not in seen]
        assert not missing, (f"round {round_}: {len(missing)} of {len(ledger.acked)} acknowledged records lost, e.g. "
                             f"{[(m, ledger.acked[m][0]) for m in missing[:3]]}")
        assert not ledger.duplicate_acks

    # Resharding and writing still work after the last restart.
    client = server.client()
    target = open_shards(all_shards(client, stream))[0]
    lo, hi = key_range(target)
    client.split_shard(StreamName=stream, ShardToSplit=target["ShardId"], NewStartingHashKey=str((lo + hi) // 2))
    wait_status(client, stream)
    out = client.put_record(StreamName=stream, PartitionKey="after", Data=b"after", ExplicitHashKey=str(lo))
    assert out["ShardId"] in {s["ShardId"] for s in open_shards(all_shards(client, stream))}
    assert_partition(open_shards(all_shards(client, stream)))
