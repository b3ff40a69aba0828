"""Per-shard throughput limits through boto3 (wire notes §1.5, §2.8, §2.9, §2.15).

With `--throughput-limits on` a shard accepts 1 MiB/s and 1000 records/s of writes (token bucket, 1 s burst):
- PutRecords over the limit: partial failures with ErrorCode ProvisionedThroughputExceededException and
  `Rate exceeded for shard <id> in stream <s> under account <acct>.`;
- PutRecord over the limit: HTTP 400 ProvisionedThroughputExceededException (with retries disabled);
- botocore's default retries (standard mode, 3 attempts, throttling back-off) get every call through;
- the accepted rate under ~3 s of sustained overload is about 1 MiB/s (printed);
- with `--throughput-limits off` the same load has no failures.

botocore's retry settings: `max_attempts` in `Config(retries=...)` counts *retries* (legacy meaning; botocore adds
one for the first attempt), `total_max_attempts` counts attempts. So `{'max_attempts': 1}` is two attempts and
retries are really off only with `{'total_max_attempts': 1}` (or `{'max_attempts': 0}`).
"""

from __future__ import annotations

import os
import re
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from millrace_testlib import ACCOUNT, AWS_ENV, REGION, assert_client_error, create_stream

MIB = 1024 * 1024
SHARD0 = "shardId-000000000000"


def client_with(endpoint: str, retries: dict | None):
    session = boto3.session.Session(aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    kwargs = {"max_pool_connections": 20, "read_timeout": 30}
    if retries is not None:
        kwargs["retries"] = retries
    return session.client("kinesis", endpoint_url=endpoint, config=botocore.config.Config(**kwargs))


def no_retries(endpoint: str):
    return client_with(endpoint, {"total_max_attempts": 1, "mode": "standard"})


def rate_message(stream: str, shard: str = SHARD0) -> str:
    return f"Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}."


def test_retry_config_attempt_semantics():
    """Documents what the retry settings mean, so the tests below disable retries for real."""
    endpoint = "http://127.0.0.1:9"  # never contacted
    legacy = client_with(endpoint, {"max_attempts": 1, "mode": "standard"})
    assert legacy.meta.config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert no_retries(endpoint).meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client_with(endpoint, {"max_attempts": 0, "mode": "standard"}).meta.config.retries == \
        {"total_max_attempts": 1, "mode": "standard"}


def drain(client, stream: str) -> None:
    """Empties the shard's write bucket: 1 MiB of burst goes at once."""
    for _ in range(20):
        out = client.put_records(StreamName=stream, Records=[{"PartitionKey": "d", "Data": os.urandom(100 * 1024)}] * 10)
        if out["FailedRecordCount"]:
            return
    raise AssertionError("20 MiB were accepted at once: the write limit is not enforced")


class Overload:
    """Producer threads writing as fast as they can into one shard, with retries off."""

    def __init__(self, endpoint: str, stream: str, threads: int = 3, record_bytes: int = 20 * 1024, per_call: int = 5):
        self.stream = stream
        self.clients = [no_retries(endpoint) for _ in range(threads)]
        self.record = os.urandom(record_bytes)
        self.per_call = per_call
        self.lock = threading.Lock()
        self.window: tuple[float, float] | None = None
        self.accepted_bytes = 0  # within the window
        self.accepted_records = 0
        self.failed_records = 0
        self.failures: dict[tuple[str, str], int] = {}
        self.bad_entries: list[dict] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def _run(self, client) -> None:
        entries = [{"PartitionKey": "k", "Data": self.record}] * self.per_call
        size = len(self.record) + 1
        while not self.stop.is_set():
            try:
                out = client.put_records(StreamName=self.stream, Records=entries)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                with self.lock:
                    self.errors.append(repr(e))
                return
            now = time.monotonic()
            ok = [r for r in out["Records"] if "SequenceNumber" in r]
            failed = [r for r in out["Records"] if "SequenceNumber" not in r]
            with self.lock:
                if out["FailedRecordCount"] != len(failed):
                    self.bad_entries.append({"FailedRecordCount": out["FailedRecordCount"], "failed": len(failed)})
                for r in failed:
                    if set(r) != {"ErrorCode", "ErrorMessage"}:
                        self.bad_entries.append(r)
                    key = (r.get("ErrorCode"), r.get("ErrorMessage"))
                    self.failures[key] = self.failures.get(key, 0) + 1
                for r in ok:
                    if r["ShardId"] != SHARD0:
                        self.bad_entries.append(r)
                self.failed_records += len(failed)
                if self.window and self.window[0] <= now <= self.window[1]:
                    self.accepted_bytes += size * len(ok)
                    self.accepted_records += len(ok)

    def run(self, warmup: float, measure: float) -> float:
        threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.clients]
        start = time.monotonic()
        self.window = (start + warmup, start + warmup + measure)
        for t in threads:
            t.start()
        time.sleep(warmup + measure)
        self.stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        assert not self.errors, self.errors[:3]
        return self.accepted_bytes / measure


@pytest.fixture
def limited(server_factory):
    server = server_factory(args=["--throughput-limits", "on"], name="limited")
    # The default client retries throttled control-plane calls (create_stream polls DescribeStreamSummary).
    create_stream(client_with(server.endpoint, None), "hot", 1)
    return server


@pytest.mark.slow
def test_sustained_overload_is_held_at_1mib_per_second(limited):
    load = Overload(limited.endpoint, "hot")
    rate = load.run(warmup=1.0, measure=3.0)
    print(f"\naccepted {rate / MIB:.3f} MiB/s ({load.accepted_records} records of 20 KiB in 3 s) under sustained "
          f"overload; {load.failed_records} entries throttled")
    assert not load.bad_entries, load.bad_entries[:3]
    assert load.failures, "no PutRecords entry was throttled"
    assert set(load.failures) == {("ProvisionedThroughputExceededException", rate_message("hot"))}, load.failures
    assert 0.8 * MIB <= rate <= 1.25 * MIB, f"accepted {rate / MIB:.3f} MiB/s, expected about 1 MiB/s"


def test_put_record_raises_when_the_shard_is_over_its_limit(limited):
    client = no_retries(limited.endpoint)
    drain(client, "hot")
    big = os.urandom(300 * 1024)
    err = None
    for _ in range(20):
        try:
            client.put_record(StreamName="hot", PartitionKey="k", Data=big)
        except botocore.exceptions.ClientError as e:
            err = e
            break
    assert err is not None, "20 PutRecord calls of 300 KiB right after draining the shard all succeeded"
    assert_client_error(err, "ProvisionedThroughputExceededException", rate_message("hot"))
    assert err.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert isinstance(err, client.exceptions.ProvisionedThroughputExceededException)


def test_put_records_with_every_entry_throttled(limited):
    """A PutRecords call in which no entry fits is still a 200 with every entry failed; the shard takes writes
    again once its budget refills."""
    client = no_retries(limited.endpoint)
    drain(client, "hot")
    out = client.put_records(StreamName="hot", Records=[{"PartitionKey": "k", "Data": os.urandom(400 * 1024)}] * 3)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["FailedRecordCount"] == 3, out["Records"]
    assert out["Records"] == [{"ErrorCode": "ProvisionedThroughputExceededException",
                               "ErrorMessage": rate_message("hot")}] * 3
    time.sleep(1.1)
    out = client.put_record(StreamName="hot", PartitionKey="k", Data=b"after the refill")
    assert out["ShardId"] == SHARD0


def test_partial_failures_keep_request_order(limited):
    client = no_retries(limited.endpoint)
    drain(client, "hot")
    time.sleep(0.3)  # ~300 KiB of budget
    entries = [{"PartitionKey": f"k{i}", "Data": f"{i:03d}".encode() + os.urandom(60 * 1024)} for i in range(12)]
    out = client.put_records(StreamName="hot", Records=entries)
    records = out["Records"]
    assert len(records) == len(entries)
    ok = [i for i, r in enumerate(records) if "SequenceNumber" in r]
    failed = [i for i, r in enumerate(records) if "SequenceNumber" not in r]
    assert ok and failed, f"expected some accepted and some throttled entries, got ok={ok} failed={failed}"
    assert out["FailedRecordCount"] == len(failed)
    for i in failed:
        assert records[i] == {"ErrorCode": "ProvisionedThroughputExceededException",
                              "ErrorMessage": rate_message("hot")}, records[i]
    seqs = [int(records[i]["SequenceNumber"]) for i in ok]
    assert seqs == sorted(seqs), "accepted entries of one shard get increasing numbers in request order"


def test_default_retries_get_through(limited):
    client = client_with(limited.endpoint, None)  # botocore defaults: standard mode, 3 attempts
    assert client.meta.config.retries.get("mode", "standard") == "standard"
    drain(no_retries(limited.endpoint), "hot")
    retries = 0
    start = time.monotonic()
    # 1.5 MiB into an empty bucket, offered faster than 1 MiB/s: about 1.4 s. 50 KiB records need 50 ms of
    # refill, so a call fails all three attempts only if both random back-offs add up to less than that.
    for i in range(30):
        out = client.put_record(StreamName="hot", PartitionKey=f"r{i}", Data=os.urandom(50 * 1024))
        assert out["ShardId"] == SHARD0
        retries += out["ResponseMetadata"]["RetryAttempts"]
    elapsed = time.monotonic() - start
    print(f"\n30 PutRecord calls of 50 KiB: {retries} retries, {elapsed:.2f}s")
    assert retries >= 1, "no call was throttled; the retry path went untested"
    assert elapsed >= 1.0, f"1.5 MiB went through an empty bucket in {elapsed:.2f}s"


def test_records_per_second_limit(limited):
    client = no_retries(limited.endpoint)
    time.sleep(1.0)  # a full bucket
    accepted, failures = 0, set()
    start = time.monotonic()
    for _ in range(4):
        out = client.put_records(StreamName="hot", Records=[{"PartitionKey": "k", "Data": b"x"}] * 500)
        accepted += 500 - out["FailedRecordCount"]
        failures |= {(r["ErrorCode"], r["ErrorMessage"]) for r in out["Records"] if "ErrorCode" in r}
    elapsed = time.monotonic() - start
    print(f"\n2000 one-byte records in {elapsed:.2f}s: {accepted} accepted")
    assert failures == {("ProvisionedThroughputExceededException", rate_message("hot"))}
    assert 1000 <= accepted <= 1000 + 1000 * elapsed + 50, accepted


def test_get_records_five_calls_per_second(limited):
    client = no_retries(limited.endpoint)
    time.sleep(1.0)
    it = client.get_shard_iterator(StreamName="hot", ShardId=SHARD0, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    errors = []
    for _ in range(10):
        try:
            it = client.get_records(ShardIterator=it, Limit=1)["NextShardIterator"]
        except botocore.exceptions.ClientError as e:
            errors.append(e)
    assert errors, "10 GetRecords calls in well under a second were all served"
    assert_client_error(errors[0], "ProvisionedThroughputExceededException")
    print("\nGetRecords throttled:", errors[0].response["Error"]["Message"])


def test_control_plane_rate_limit(limited):
    client = no_retries(limited.endpoint)
    time.sleep(1.0)
    errors = []
    for _ in range(30):  # DescribeStream: 10 TPS per account
        try:
            client.describe_stream(StreamName="hot")
        except botocore.exceptions.ClientError as e:
            errors.append(e)
    assert errors, "30 DescribeStream calls in well under a second were all served"
    assert_client_error(errors[0], "LimitExceededException", re.compile(r"Rate exceeded.*"))


@pytest.mark.slow
def test_same_load_without_limits_has_no_failures(server_factory):
    server = server_factory(args=["--throughput-limits", "off"], name="unlimited")
    create_stream(server.client(), "hot", 1)
    load = Overload(server.endpoint, "hot")
    rate = load.run(warmup=0.5, measure=3.0)
    print(f"\nwithout limits: {rate / MIB:.2f} MiB/s accepted, {load.failed_records} entries failed")
    assert load.failed_records == 0 and not load.failures, load.failures
    assert not load.bad_entries, load.bad_entries[:3]
    assert rate > 1.5 * MIB, f"only {rate / MIB:.2f} MiB/s without limits; the comparison proves nothing"
    # Control-plane calls are not rate-limited either.
    client = no_retries(server.endpoint)
    for _ in range(30):
        client.describe_stream(StreamName="hot")
