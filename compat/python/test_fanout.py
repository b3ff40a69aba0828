"""Enhanced fan-out through boto3 (wire notes §2.11, §2.12): consumers and SubscribeToShard over HTTP/1.1.

botocore only speaks HTTP/1.1, so every subscription here is a chunked `application/vnd.amazon.eventstream`
response read with `for event in response["EventStream"]`.

- several consumers on several shards receive every record, in order and byte-identical, while producer
  threads write; sessions are kept short with --subscription-ms, so readers resubscribe with
  AFTER_SEQUENCE_NUMBER = the last ContinuationSequenceNumber, without loss or duplicates;
- a session ends by itself after --subscription-ms;
- heartbeats on an idle shard; one live subscription per consumer+shard;
- resharding while subscribed: the parent's subscription delivers the parent's records, then one event with
  ChildShards and no ContinuationSequenceNumber, then ends; the children (and a merge of them) deliver the rest;
- consumer lifecycle and errors.

Randomised: the seed is printed; rerun with MILLRACE_TEST_SEED=<seed>.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import botocore.exceptions
import pytest

from millrace_testlib import (
    assert_client_error,
    client_error,
    create_stream,
    make_client,
    not_found,
    seq_int,
    wait_gone,
    wait_status,
)

SHARD0 = "shardId-000000000000"


def seed_from_env(request) -> int:
    env = os.environ.get("MILLRACE_TEST_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(2**32)
    print(f"\n{request.node.name}: seed {seed} (rerun with MILLRACE_TEST_SEED={seed})")
    return seed


def no_retry_client(server, **kwargs):
    # make_client's max_attempts is botocore's legacy "retries after the first attempt"; 0 = one attempt.
    return make_client(server.endpoint, max_attempts=0, **kwargs)


def stream_arn(client, name: str) -> str:
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def wait_consumer(client, consumer_arn: str, status: str = "ACTIVE", timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        desc = client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
        if desc["ConsumerStatus"] == status:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer {consumer_arn} still {desc['ConsumerStatus']} after {timeout}s, wanted {status}")
        time.sleep(0.05)


def wait_consumer_gone(client, consumer_arn: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.describe_stream_consumer(ConsumerARN=consumer_arn)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer {consumer_arn} still exists after {timeout}s")
        time.sleep(0.05)


def register_active(client, arn: str, name: str) -> str:
    consumer = client.register_stream_consumer(StreamARN=arn, ConsumerName=name)["Consumer"]
    wait_consumer(client, consumer["ConsumerARN"])
    return consumer["ConsumerARN"]


def subscribe(client, consumer_arn: str, shard_id: str, position: dict, *, busy_timeout: float = 8.0):
    """SubscribeToShard; retries ResourceInUseException (the previous session of this consumer+shard may
    still count as live for up to 5 s, wire notes §2.12) until busy_timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            resp = client.subscribe_to_shard(ConsumerARN=consumer_arn, ShardId=shard_id, StartingPosition=position)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ResourceInUseException" and time.monotonic() < deadline:
                time.sleep(0.25)
                continue
            raise
        meta = resp["ResponseMetadata"]
        assert meta["HTTPStatusCode"] == 200, meta
        assert meta["HTTPHeaders"].get("content-type") == "application/vnd.amazon.eventstream", meta["HTTPHeaders"]
        return resp


def event_of(ev: dict) -> dict:
    assert set(ev) == {"SubscribeToShardEvent"}, f"unexpected event {ev!r}"
    return ev["SubscribeToShardEvent"]


def check_open_event(e: dict, previous_continuation: Optional[str]) -> None:
    """Shape of an event on a shard that has not ended."""
    assert "ChildShards" not in e or not e["ChildShards"], e
    assert isinstance(e["Records"], list)
    assert isinstance(e["MillisBehindLatest"], int) and e["MillisBehindLatest"] >= 0, e
    cont = e.get("ContinuationSequenceNumber")
    assert cont, (f"event without ContinuationSequenceNumber and without ChildShards: {e!r} (only the shard-end "
                  "event may omit the continuation, and it must carry ChildShards: KCL checks null ⇔ children)")
    if e["Records"]:
        assert seq_int(cont) >= seq_int(e["Records"][-1]["SequenceNumber"]), e
    if previous_continuation is not None:
        assert seq_int(cont) >= seq_int(previous_continuation), "ContinuationSequenceNumber went backwards"


def triples(records: list[dict]) -> list[tuple[str, str, bytes]]:
    return [(r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"])) for r in records]


@dataclass
class Acked:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_shard: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, entries: list[dict], out: dict) -> None:
        with self.lock:
            for e, r in zip(entries, out["Records"]):
                if "SequenceNumber" in r:
                    self.by_shard.setdefault(r["ShardId"], []).append((r["SequenceNumber"], e["PartitionKey"], e["Data"]))
                else:
                    self.errors.append(f"{r.get('ErrorCode')}: {r.get('ErrorMessage')}")

    def expected(self, shard: str) -> list[tuple[str, str, bytes]]:
        with self.lock:
            return sorted(self.by_shard.get(shard, []), key=lambda t: seq_int(t[0]))


def producer(client, stream: str, acked: Acked, rng: random.Random, wid: int, stop: threading.Event,
             pause: float = 0.0) -> None:
    batch = 0
    while not stop.is_set():
        batch += 1
        entries = []
        for i in range(rng.randrange(1, 30)):
            data = f"w{wid}-b{batch}-i{i}|".encode() + rng.randbytes(rng.choice([0, 1, 7, 100, 1000, 4000]))
            entries.append({"PartitionKey": f"pk-{rng.randrange(500)}", "Data": data})
        try:
            out = client.put_records(StreamName=stream, Records=entries)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            with acked.lock:
                acked.errors.append(f"producer {wid}: {e!r}")
            return
        acked.add(entries, out)
        if pause:
            time.sleep(pause)


class Reader(threading.Thread):
    """Follows one consumer+shard across sessions, resubscribing AFTER the last ContinuationSequenceNumber."""

    def __init__(self, endpoint: str, consumer_arn: str, shard_id: str, done: Callable[[int], bool],
                 timeout: float = 90.0):
        super().__init__(daemon=True)
        self.client = make_client(endpoint, max_attempts=0, read_timeout=30)
        self.consumer_arn = consumer_arn
        self.shard_id = shard_id
        self.done = done
        self.timeout = timeout
        self.records: list[dict] = []
        self.sessions = 0
        self.events = 0
        self.failure: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the test thread
            self.failure = e

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        position = {"Type": "TRIM_HORIZON"}
        continuation = None
        while time.monotonic() < deadline:
            resp = subscribe(self.client, self.consumer_arn, self.shard_id, position)
            self.sessions += 1
            stream = resp["EventStream"]
            try:
                for ev in stream:
                    e = event_of(ev)
                    check_open_event(e, continuation)
                    self.events += 1
                    continuation = e["ContinuationSequenceNumber"]
                    self.records.extend(e["Records"])
                    position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation}
                    if self.done(len(self.records)) or time.monotonic() > deadline:
                        return
            finally:
                stream.close()
        raise AssertionError(f"{self.consumer_arn} on {self.shard_id}: timed out with {len(self.records)} records")


# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_consumers_receive_every_record_in_order_while_producers_write(server_factory, request):
    rng = random.Random(seed_from_env(request))
    server = server_factory(args=["--subscription-ms", "1500"], name="fanout")
    client = server.client()
    stream = "fanout"
    shards = 3
    create_stream(client, stream, shards)
    arn = stream_arn(client, stream)
    consumers = [register_active(client, arn, f"app-{i}") for i in range(3)]
    shard_list = [s["ShardId"] for s in client.list_shards(StreamName=stream)["Shards"]]
    assert len(shard_list) == shards

    acked = Acked()
    stop = threading.Event()
    produced = threading.Event()
    expected_counts: dict[str, int] = {}

    def done_for(shard: str) -> Callable[[int], bool]:
        return lambda n: produced.is_set() and n >= expected_counts[shard]

    readers = [Reader(server.endpoint, c, s, done_for(s)) for c in consumers for s in shard_list]
    for r in readers:
        r.start()
    producers = [
        threading.Thread(target=producer, args=(no_retry_client(server), stream, acked,
                                                random.Random(rng.randrange(2**32)), wid, stop, 0.02), daemon=True)
        for wid in range(2)
    ]
    for p in producers:
        p.start()
    time.sleep(4.0)  # spans a few 1.5 s sessions
    stop.set()
    for p in producers:
        p.join(timeout=30)
        assert not p.is_alive()
    assert not acked.errors, acked.errors[:5]
    for s in shard_list:
        expected_counts[s] = len(acked.expected(s))
    produced.set()
    for r in readers:
        r.join(timeout=60)
        assert not r.is_alive(), f"reader {r.consumer_arn} {r.shard_id} hung ({len(r.records)} records)"

    total = sum(expected_counts.values())
    print(f"{total} records acknowledged: {expected_counts}")
    assert total > 100, "producers wrote too little for the test to mean anything"
    for r in readers:
        if r.failure:
            raise r.failure
        want = acked.expected(r.shard_id)
        got = triples(r.records)
        assert len(got) == len(want), f"{r.consumer_arn} on {r.shard_id}: {len(got)} records, expected {len(want)}"
        assert [g[0] for g in got] == [w[0] for w in want], f"{r.consumer_arn} on {r.shard_id}: sequence differs"
        assert got == want, f"{r.consumer_arn} on {r.shard_id}: partition keys or bytes differ"
        print(f"{r.consumer_arn.rsplit('/', 1)[-1]} {r.shard_id}: {len(got)} records, {r.sessions} sessions, "
              f"{r.events} events")
    assert max(r.sessions for r in readers) >= 2, "no reader had to resubscribe; the continuation path went untested"


def test_resubscribe_after_continuation_and_session_end(server_factory):
    session_ms = 1500
    server = server_factory(args=["--subscription-ms", str(session_ms)], name="resume")
    client = server.client()
    stream = "resume"
    create_stream(client, stream, 1)
    consumer = register_active(client, stream_arn(client, stream), "resumer")

    def put(tag: str, n: int) -> list[tuple[str, str, bytes]]:
        entries = [{"PartitionKey": f"{tag}-{i}", "Data": f"{tag}-{i}|".encode() + os.urandom(i * 11)} for i in range(n)]
        out = client.put_records(StreamName=stream, Records=entries)
        assert out["FailedRecordCount"] == 0
        return [(r["SequenceNumber"], e["PartitionKey"], e["Data"]) for e, r in zip(entries, out["Records"])]

    a = put("a", 20)
    started = time.monotonic()
    resp = subscribe(client, consumer, SHARD0, {"Type": "TRIM_HORIZON"}, busy_timeout=0)
    first_session: list[dict] = []
    b: list = []
    continuation = None
    for ev in resp["EventStream"]:
        e = event_of(ev)
        check_open_event(e, continuation)
        continuation = e["ContinuationSequenceNumber"]
        first_session.extend(e["Records"])
        if not b:
            b = put("b", 20)  # while subscribed
    elapsed = time.monotonic() - started
    # The session ended by itself (the loop above only stops when the response ends).
    assert session_ms / 1000 - 0.1 <= elapsed <= session_ms / 1000 + 3, f"session lasted {elapsed:.2f}s"
    assert triples(first_session) == a + b
    assert seq_int(continuation) >= seq_int(b[-1][0]), "the continuation is at or after the last record delivered"

    c = put("c", 20)  # nobody subscribed
    resp = subscribe(client, consumer, SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": continuation})
    second_session: list[dict] = []
    stream_ = resp["EventStream"]
    for ev in stream_:
        e = event_of(ev)
        check_open_event(e, continuation)
        continuation = e["ContinuationSequenceNumber"]
        second_session.extend(e["Records"])
        if len(second_session) >= len(c):
            break
    stream_.close()
    assert triples(second_session) == c, "resubscribing AFTER the continuation must give exactly the rest"

    # AT_SEQUENCE_NUMBER includes the record itself; let the closed session above expire first.
    resp = subscribe(client, consumer, SHARD0, {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": c[5][0]})
    third: list[dict] = []
    for ev in resp["EventStream"]:
        third.extend(event_of(ev)["Records"])
    assert triples(third) == c[5:]


def test_session_ends_after_subscription_ms(server_factory):
    server = server_factory(args=["--subscription-ms", "1000"], name="session")
    client = server.client()
    create_stream(client, "session", 1)
    consumer = register_active(client, stream_arn(client, "session"), "idle")
    started = time.monotonic()
    resp = subscribe(client, consumer, SHARD0, {"Type": "LATEST"}, busy_timeout=0)
    events = [event_of(ev) for ev in resp["EventStream"]]
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed <= 4.0, f"session lasted {elapsed:.2f}s with --subscription-ms 1000"
    assert events, "an idle subscription still gets an event"
    for e in events:
        check_open_event(e, None)
        assert e["Records"] == []
        assert e["MillisBehindLatest"] == 0


@pytest.mark.slow
def test_heartbeat_and_one_live_subscription_per_consumer_and_shard(server_factory):
    server = server_factory(args=["--subscription-ms", "30000"], name="heartbeat")
    client = server.client()
    create_stream(client, "beat", 1)
    consumer = register_active(client, stream_arn(client, "beat"), "beater")
    started = time.monotonic()
    resp = subscribe(client, consumer, SHARD0, {"Type": "LATEST"}, busy_timeout=0)

    # A second subscription within 5 s is refused with an ordinary 400.
    other = make_client(server.endpoint, max_attempts=0)
    err = client_error(other.subscribe_to_shard, ConsumerARN=consumer, ShardId=SHARD0,
                       StartingPosition={"Type": "LATEST"})
    assert_client_error(err, "ResourceInUseException")

    seen: list[tuple[float, dict]] = []
    ended: list[BaseException | None] = []

    def read() -> None:
        try:
            for ev in resp["EventStream"]:
                seen.append((time.monotonic() - started, event_of(ev)))
            ended.append(None)
        except BaseException as e:
            ended.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(max(0.0, started + 6.0 - time.monotonic()))
    assert seen, "no event at all"
    first = seen[0][1]["ContinuationSequenceNumber"]
    for _, e in seen:
        check_open_event(e, None)
        assert e["Records"] == [] and e["ContinuationSequenceNumber"] == first, e
    late = [at for at, _ in seen if at >= 4.0]
    assert late, f"no heartbeat within 6 s of an idle subscription; events at {[round(a, 2) for a, _ in seen]}"
    assert not ended, f"the subscription ended early: {ended}"

    # After 5 s a new subscription takes over; the old one ends with an in-stream ResourceInUseException.
    newer = subscribe(other, consumer, SHARD0, {"Type": "LATEST"}, busy_timeout=0)
    t.join(timeout=10)
    assert not t.is_alive(), "the replaced subscription is still streaming"
    assert ended and isinstance(ended[0], botocore.exceptions.EventStreamError), f"old session ended with {ended}"
    assert ended[0].response["Error"]["Code"] == "ResourceInUseException", ended[0].response
    e = event_of(next(iter(newer["EventStream"])))
    check_open_event(e, None)
    newer["EventStream"].close()


def test_subscription_across_split_and_merge(server_factory, request):
    rng = random.Random(seed_from_env(request))
    server = server_factory(args=["--subscription-ms", "30000"], name="reshard-efo")
    client = server.client()
    stream = "efo-reshard"
    create_stream(client, stream, 1)
    consumer = register_active(client, stream_arn(client, stream), "follower")

    acked = Acked()
    stop = threading.Event()
    prod = threading.Thread(target=producer, args=(no_retry_client(server), stream, acked, rng, 0, stop, 0.01),
                            daemon=True)
    prod.start()
    time.sleep(0.3)

    def read_until_end(shard: str, results: dict) -> None:
        c = make_client(server.endpoint, max_attempts=0, read_timeout=30)
        try:
            resp = subscribe(c, consumer, shard, {"Type": "TRIM_HORIZON"})
            records, finals, continuation = [], [], None
            for ev in resp["EventStream"]:
                e = event_of(ev)
                if e.get("ChildShards"):
                    finals.append(e)
                    continue  # nothing may follow; the response must end by itself
                assert not finals, f"{shard}: an event followed the ChildShards event: {e!r}"
                check_open_event(e, continuation)
                continuation = e["ContinuationSequenceNumber"]
                records.extend(e["Records"])
            results[shard] = (records, finals)
        except BaseException as e:
            results[shard] = e

    def run_readers(shards: list[str], reshard: Callable[[], None]) -> dict:
        results: dict = {}
        threads = [threading.Thread(target=read_until_end, args=(s, results), daemon=True) for s in shards]
        for t in threads:
            t.start()
        time.sleep(0.7)  # subscribed, records flowing
        reshard()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a subscription did not end after its shard was closed"
        for s in shards:
            if isinstance(results[s], BaseException):
                raise results[s]
        return results

    def shards_by_id() -> dict[str, dict]:
        return {s["ShardId"]: s for s in client.list_shards(StreamName=stream)["Shards"]}

    def check_final(shard: str, finals: list[dict], expected_children: list[str]) -> None:
        assert len(finals) == 1, f"{shard}: {len(finals)} ChildShards events"
        final = finals[0]
        assert final["Records"] == [], final
        assert "ContinuationSequenceNumber" not in final, f"{shard}: shard-end event carries a continuation {final!r}"
        listed = shards_by_id()
        want = []
        for child in expected_children:
            s = listed[child]
            parents = [s["ParentShardId"]] + ([s["AdjacentParentShardId"]] if s.get("AdjacentParentShardId") else [])
            want.append({"ShardId": child, "ParentShards": parents, "HashKeyRange": s["HashKeyRange"]})
        assert final["ChildShards"] == want

    mid = str(2**127)

    def split() -> None:
        client.split_shard(StreamName=stream, ShardToSplit=SHARD0, NewStartingHashKey=mid)
        wait_status(client, stream)

    results = run_readers([SHARD0], split)
    children = sorted(s for s, d in shards_by_id().items() if d.get("ParentShardId") == SHARD0)
    assert children == ["shardId-000000000001", "shardId-000000000002"]
    records, finals = results[SHARD0]
    check_final(SHARD0, finals, children)
    assert triples(records) == acked.expected(SHARD0), "the parent's subscription must deliver exactly its records"

    def merge() -> None:
        client.merge_shards(StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
        wait_status(client, stream)

    results = run_readers(children, merge)
    merged = [s for s, d in shards_by_id().items() if d.get("ParentShardId") == children[0]]
    assert merged == ["shardId-000000000003"], merged
    for child in children:
        records, finals = results[child]
        check_final(child, finals, merged)
        assert triples(records) == acked.expected(child), f"{child}: records differ from those acknowledged"
        assert records, f"{child}: no records went to this child; the test proves little"

    time.sleep(0.3)
    stop.set()
    prod.join(timeout=30)
    assert not acked.errors, acked.errors[:5]
    want = acked.expected(merged[0])
    got: list[dict] = []
    resp = subscribe(client, consumer, merged[0], {"Type": "TRIM_HORIZON"})
    for ev in resp["EventStream"]:
        got.extend(event_of(ev)["Records"])
        if len(got) >= len(want):
            break
    resp["EventStream"].close()
    assert want, "no records reached the merged shard"
    assert triples(got) == want
    assert set(acked.by_shard) == {SHARD0, *children, *merged}


# --------------------------------------------------------------------------------------------------
# Consumer lifecycle


def test_consumer_lifecycle(server_factory):
    server = server_factory(args=["--register-consumer-ms", "400", "--deregister-consumer-ms", "400"], name="lifecycle")
    client = server.client()
    stream = "consumers"
    create_stream(client, stream, 1)
    arn = stream_arn(client, stream)

    before = time.time()
    reg = client.register_stream_consumer(StreamARN=arn, ConsumerName="first")
    consumer = reg["Consumer"]
    assert set(consumer) == {"ConsumerName", "ConsumerARN", "ConsumerStatus", "ConsumerCreationTimestamp"}, consumer
    assert consumer["ConsumerName"] == "first"
    assert consumer["ConsumerStatus"] == "CREATING"
    created = consumer["ConsumerCreationTimestamp"].timestamp()
    assert before - 2 <= created <= time.time() + 2
    assert consumer["ConsumerARN"] == f"{arn}/consumer/first:{int(created)}"
    carn = consumer["ConsumerARN"]

    by_arn = client.describe_stream_consumer(ConsumerARN=carn)["ConsumerDescription"]
    assert by_arn["ConsumerStatus"] == "CREATING"
    assert by_arn["StreamARN"] == arn and by_arn["ConsumerARN"] == carn and by_arn["ConsumerName"] == "first"
    # A consumer can't subscribe before it is ACTIVE.
    err = client_error(client.subscribe_to_shard, ConsumerARN=carn, ShardId=SHARD0, StartingPosition={"Type": "LATEST"})
    assert_client_error(err, "ResourceInUseException")

    active = wait_consumer(client, carn)
    assert time.time() - before >= 0.3, "ACTIVE before --register-consumer-ms elapsed"
    by_name = client.describe_stream_consumer(StreamARN=arn, ConsumerName="first")["ConsumerDescription"]
    assert by_name == active
    assert by_name["ConsumerCreationTimestamp"] == consumer["ConsumerCreationTimestamp"]
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["ConsumerCount"] == 1

    # Duplicate name.
    err = client_error(client.register_stream_consumer, StreamARN=arn, ConsumerName="first")
    assert_client_error(err, "ResourceInUseException")

    # Listing with MaxResults pages through every consumer exactly once. (At most 5 consumers may be CREATING at
    # once, wire notes §2.11, so five more.)
    names = ["first"] + [f"more-{i}" for i in range(5)]
    for n in names[1:]:
        client.register_stream_consumer(StreamARN=arn, ConsumerName=n)
    pages, token = [], None
    while True:
        kwargs = {"StreamARN": arn, "MaxResults": 2}
        if token:
            kwargs["NextToken"] = token
        out = client.list_stream_consumers(**kwargs)
        assert len(out["Consumers"]) <= 2
        pages.append(out["Consumers"])
        token = out.get("NextToken")
        if not token:
            break
    listed = [c["ConsumerName"] for page in pages for c in page]
    assert sorted(listed) == sorted(names), listed
    assert len(pages) == 3, [len(p) for p in pages]
    for page in pages:
        for c in page:
            assert set(c) >= {"ConsumerName", "ConsumerARN", "ConsumerStatus", "ConsumerCreationTimestamp"}, c
    paginated = [c["ConsumerName"] for page in client.get_paginator("list_stream_consumers").paginate(
        StreamARN=arn, PaginationConfig={"PageSize": 4}) for c in page["Consumers"]]
    assert sorted(paginated) == sorted(names)
    for n in names[1:]:
        wait_consumer(client, client.describe_stream_consumer(StreamARN=arn, ConsumerName=n)
                      ["ConsumerDescription"]["ConsumerARN"])
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["ConsumerCount"] == len(names)

    # Deregister by ARN: DELETING, then gone.
    client.deregister_stream_consumer(ConsumerARN=carn)
    assert client.describe_stream_consumer(ConsumerARN=carn)["ConsumerDescription"]["ConsumerStatus"] == "DELETING"
    wait_consumer_gone(client, carn)
    err = client_error(client.describe_stream_consumer, StreamARN=arn, ConsumerName="first")
    assert_client_error(err, "ResourceNotFoundException")
    # Deregister by stream ARN + name.
    client.deregister_stream_consumer(StreamARN=arn, ConsumerName="more-0")
    remaining = [c["ConsumerName"] for c in client.list_stream_consumers(StreamARN=arn)["Consumers"]
                 if c["ConsumerStatus"] != "DELETING"]
    assert sorted(remaining) == sorted(names[2:])


def test_consumer_errors(server_factory):
    server = server_factory(args=["--register-consumer-ms", "0"], name="consumer-errors")
    client = server.client()
    stream = "errs"
    create_stream(client, stream, 1)
    arn = stream_arn(client, stream)
    carn = register_active(client, arn, "known")

    missing_arn = f"{arn}/consumer/nobody:1700000000"
    for call, kwargs in [
        (client.describe_stream_consumer, {"ConsumerARN": missing_arn}),
        (client.describe_stream_consumer, {"StreamARN": arn, "ConsumerName": "nobody"}),
        (client.deregister_stream_consumer, {"ConsumerARN": missing_arn}),
        (client.deregister_stream_consumer, {"StreamARN": arn, "ConsumerName": "nobody"}),
        (client.subscribe_to_shard, {"ConsumerARN": missing_arn, "ShardId": SHARD0,
                                     "StartingPosition": {"Type": "LATEST"}}),
        # A known consumer's ARN with another creation time is another (unknown) consumer.
        (client.describe_stream_consumer, {"ConsumerARN": carn.rsplit(":", 1)[0] + ":1"}),
    ]:
        assert_client_error(client_error(call, **kwargs), "ResourceNotFoundException")

    missing_stream = arn.replace("stream/errs", "stream/nothere")
    err = client_error(client.register_stream_consumer, StreamARN=missing_stream, ConsumerName="x")
    assert_client_error(err, "ResourceNotFoundException", not_found("nothere"))
    err = client_error(client.list_stream_consumers, StreamARN=missing_stream)
    assert_client_error(err, "ResourceNotFoundException", not_found("nothere"))
    err = client_error(client.register_stream_consumer, StreamARN=arn, ConsumerName="known")
    assert_client_error(err, "ResourceInUseException")
    err = client_error(client.subscribe_to_shard, ConsumerARN=carn, ShardId="shardId-000000000009",
                       StartingPosition={"Type": "LATEST"})
    assert_client_error(err, "ResourceNotFoundException")


def test_consumer_limits(server_factory):
    """At most 5 consumers CREATING at once and 20 registered per stream (wire notes §2.11, §2.15)."""
    server = server_factory(args=["--register-consumer-ms", "3000"], name="consumer-limits")
    client = server.client()
    create_stream(client, "many", 1)
    arn = stream_arn(client, "many")
    for i in range(5):
        client.register_stream_consumer(StreamARN=arn, ConsumerName=f"c{i}")
    err = client_error(client.register_stream_consumer, StreamARN=arn, ConsumerName="sixth")
    assert_client_error(err, "LimitExceededException")

    server = server_factory(args=["--register-consumer-ms", "0"], name="consumer-limits-20")
    client = server.client()
    create_stream(client, "many", 1)
    arn = stream_arn(client, "many")
    for i in range(20):
        register_active(client, arn, f"c{i}")
    err = client_error(client.register_stream_consumer, StreamARN=arn, ConsumerName="twenty-first")
    assert_client_error(err, "LimitExceededException")
    assert len(client.list_stream_consumers(StreamARN=arn)["Consumers"]) == 20


def test_delete_stream_with_consumers(server_factory):
    server = server_factory(args=["--register-consumer-ms", "0"], name="delete-consumers")
    client = server.client()
    stream = "doomed"
    create_stream(client, stream, 1)
    arn = stream_arn(client, stream)
    carn = register_active(client, arn, "holder")

    err = client_error(client.delete_stream, StreamName=stream)
    assert_client_error(err, "ResourceInUseException")
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
    client.describe_stream_consumer(ConsumerARN=carn)

    client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    wait_gone(client, stream)
    err = client_error(client.describe_stream_consumer, ConsumerARN=carn)
    assert_client_error(err, "ResourceNotFoundException")

    # A new stream of the same name starts without consumers.
    create_stream(client, stream, 1)
    assert client.list_stream_consumers(StreamARN=stream_arn(client, stream))["Consumers"] == []
    assert client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["ConsumerCount"] == 0
    client.delete_stream(StreamName=stream)  # no consumers: no EnforceConsumerDeletion needed
    wait_gone(client, stream)
