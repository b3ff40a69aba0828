"""`millrace kcl --properties …`, the multi-language daemon, running the unmodified amazon_kclpy
sample processor (samples/sample_kclpy_app.py from the PyPI sdist) against a real server on
127.0.0.1: records processed and checkpointed in the Java KCL's lease schema, kill -9 failover,
rebalancing toward an even share, parents finished before children, protocol edge cases."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import boto3

from millrace_testlib import AWS_ENV, REGION, create_stream, millrace_bin, shard_ids, wait_status
from test_auth import ENFORCE_ARGS, ROOT_KEY, ROOT_SECRET
from test_dynamodb import ddb_client

REPO = Path(__file__).resolve().parents[2]
KCLPY = REPO / ".venv" / "kclpy" / "amazon_kclpy-3.2.0"
SAMPLE = KCLPY / "samples" / "sample_kclpy_app.py"
RECORD_LOG = re.compile(r"Record \(Partition Key: (\S+), Sequence Number: (\d+),")

FAILOVER_MS = 2000


class Daemon:
    """One `millrace kcl` worker process with its properties file and its stderr log."""

    def __init__(self, tmp: Path, name: str, endpoint: str, stream: str, app: str, executable: str, extra: dict | None = None,
                 env: dict | None = None):
        self.name = name
        self.log_path = tmp / f"{name}.stderr.log"
        env_overrides = env
        properties = {
            "executableName": executable,
            "streamName": stream,
            "applicationName": app,
            "regionName": REGION,
            "kinesisEndpoint": endpoint,
            "dynamoDBEndpoint": endpoint,
            "initialPositionInStream": "TRIM_HORIZON",
            "workerId": name,
            "failoverTimeMillis": str(FAILOVER_MS),
            "shardSyncIntervalMillis": "1000",
            "idleTimeBetweenReadsInMillis": "200",
            "maxRecords": "100",
            "AwsCredentialsProvider": "DefaultCredentialsProvider",
            "processingLanguage": "python/3",
            "someUnknownKey": "x",
        }
        properties.update(extra or {})
        properties = {k: v for k, v in properties.items() if v is not None}
        self.properties_path = tmp / f"{name}.properties"
        self.properties_path.write_text("".join(f"{k} = {v}\n" for k, v in properties.items()))
        env = dict(os.environ)
        env.update(AWS_ENV)
        env["PYTHONPATH"] = str(KCLPY)
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env["RUST_LOG"] = "info"
        for key, value in (env_overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(millrace_bin()), "kcl", "--properties", str(self.properties_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processed(self) -> list[tuple[str, int]]:
        return [(pk, int(seq)) for pk, seq in RECORD_LOG.findall(self.text())]

    def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()


@pytest.fixture
def daemons(tmp_path):
    started: list[Daemon] = []

    def start(*args, **kwargs) -> Daemon:
        daemon = Daemon(tmp_path, *args, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


def put_records(kinesis, stream: str, count: int, prefix: str) -> dict[str, list[int]]:
    """Puts `count` records; returns the acknowledged sequence numbers per shard."""
    acked: dict[str, list[int]] = {}
    for start in range(0, count, 100):
        batch = [{"Data": f"{prefix}-{i}".encode(), "PartitionKey": f"{prefix}-{i}"} for i in range(start, min(count, start + 100))]
        out = kinesis.put_records(StreamName=stream, Records=batch)
        assert out["FailedRecordCount"] == 0
        for entry in out["Records"]:
            acked.setdefault(entry["ShardId"], []).append(int(entry["SequenceNumber"]))
    return acked


def leases(ddb, table: str) -> dict[str, dict]:
    try:
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return {}  # the daemon has not created its lease table yet
    return {item["leaseKey"]["S"]: item for item in items}


def owners(ddb, table: str) -> dict[str, str]:
    return {k: v.get("leaseOwner", {}).get("S", "") for k, v in leases(ddb, table).items() if v["checkpoint"]["S"] != "SHARD_END"}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(autouse=True)
def _needs_kclpy():
    assert SAMPLE.exists(), f"amazon_kclpy sources missing at {KCLPY}: run scripts/setup-test-deps.sh"


def test_processes_and_checkpoints_every_record(server, kinesis, daemons):
    create_stream(kinesis, "kclpy", shards=4)
    acked = put_records(kinesis, "kclpy", 400, "a")
    daemon = daemons("w1", server.endpoint, "kclpy", "app1", str(SAMPLE), {"retrievalMode": "POLLING"})
    expected = {seq for seqs in acked.values() for seq in seqs}
    wait_for(lambda: expected <= {seq for _, seq in daemon.processed()}, 60, "every record processed")
    assert daemon.stop() == 0
    ddb = ddb_client(server.endpoint)
    table = leases(ddb, "app1")
    assert set(table) == set(shard_ids(kinesis, "kclpy"))
    for shard, seqs in acked.items():
        lease = table[shard]
        # The sample checkpoints at the largest record it saw when shutdown is requested.
        assert lease["checkpoint"]["S"] == str(max(seqs)), shard
        assert lease["checkpointSubSequenceNumber"]["N"] == "0"
        assert "leaseOwner" not in lease  # released at graceful shutdown
        assert int(lease["leaseCounter"]["N"]) >= 2
    assert "unknown property ignored" in daemon.text()
    processed = daemon.processed()
    assert len(processed) == len(set(processed)), "a record was processed twice by one worker between checkpoints"


def test_daemon_over_https_with_profile_session_credentials(server_factory, daemons, tmp_path):
    """Against a TLS endpoint that enforces signatures, with a session token in a profile of a
    temporary ~/.aws (HOME overridden, no credentials in the environment) and the region from the
    profile's config: the client reaches it as it would reach AWS, by enhanced fan-out over HTTP/2."""
    srv = server_factory(args=["--tls", "self-signed", *ENFORCE_ARGS], name="tls")
    cert = str(srv.data_dir / "self-signed-cert.pem")
    endpoint = srv.endpoint.replace("http://127.0.0.1", "https://localhost", 1)
    session = boto3.session.Session(aws_access_key_id=ROOT_KEY, aws_secret_access_key=ROOT_SECRET, region_name=REGION)
    creds = session.client("sts", endpoint_url=endpoint, verify=cert).get_session_token(DurationSeconds=3600)["Credentials"]
    kinesis = session.client("kinesis", endpoint_url=endpoint, verify=cert)
    create_stream(kinesis, "tls-kcl", shards=2)
    acked = put_records(kinesis, "tls-kcl", 60, "t")
    aws_dir = tmp_path / "home" / ".aws"
    aws_dir.mkdir(parents=True)
    (aws_dir / "credentials").write_text(
        f"[kcl]\naws_access_key_id = {creds['AccessKeyId']}\naws_secret_access_key = {creds['SecretAccessKey']}\n"
        f"aws_session_token = {creds['SessionToken']}\n")
    (aws_dir / "config").write_text(f"[profile kcl]\nregion = {REGION}\n")
    env = {"HOME": str(tmp_path / "home"), "AWS_PROFILE": "kcl", "AWS_CA_BUNDLE": cert,
           "RUST_LOG": "info,millrace_client=debug"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION"):
        env[name] = None
    daemon = daemons("wt", endpoint, "tls-kcl", "tls-app", str(SAMPLE), {"regionName": None}, env=env)
    expected = {seq for seqs in acked.values() for seq in seqs}
    wait_for(lambda: expected <= {seq for _, seq in daemon.processed()}, 60, "every record processed over HTTPS")
    assert daemon.stop() == 0
    ddb = session.client("dynamodb", endpoint_url=endpoint, verify=cert)
    table = leases(ddb, "tls-app")
    for shard, seqs in acked.items():
        assert table[shard]["checkpoint"]["S"] == str(max(seqs)), shard
    assert 'operation="SubscribeToShard" version=HTTP/2.0 status=200' in daemon.text()
    assert creds["SecretAccessKey"] not in daemon.text()
    assert creds["SessionToken"] not in daemon.text()

    # Without the CA bundle the self-signed certificate is refused: the daemon exits and says why.
    untrusted = daemons("wu", endpoint, "tls-kcl", "tls-app", str(SAMPLE), {"regionName": None},
                        env={**env, "AWS_CA_BUNDLE": None})
    assert untrusted.proc.wait(60) != 0
    assert "certificate" in untrusted.text().lower(), untrusted.text()


# Tracing lines of the daemon (the sample writes records to stderr without newlines, so no anchors).
STARTED = re.compile(r"(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+INFO [^\n]*?shard consumer started shard=(\S+)")
FINISHED = re.compile(r"(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+INFO [^\n]*?checkpointed SHARD_END shard=(\S+)")


class Producer(threading.Thread):
    """Writes batches until stopped, recording every acknowledged sequence number."""

    def __init__(self, kinesis, stream: str):
        super().__init__(daemon=True)
        self.kinesis, self.stream = kinesis, stream
        self.acked: set[int] = set()
        self.stopping = threading.Event()
        self.batches = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            out = put_records(self.kinesis, self.stream, 20, f"p{self.batches}")
            self.acked |= {seq for seqs in out.values() for seq in seqs}
            self.batches += 1
            time.sleep(0.1)

    def stop(self) -> set[int]:
        self.stopping.set()
        self.join()
        return self.acked


def share(ddb, table: str) -> list[int]:
    counts: dict[str, int] = {}
    for owner in owners(ddb, table).values():
        counts[owner] = counts.get(owner, 0) + 1
    return sorted(counts.values())


def test_three_workers_failover_rebalance_and_resharding(server, kinesis, daemons):
    """The issue's scenario: 8 shards, producers writing, three workers; kill -9 one; start a fourth;
    split and merge while running."""
    create_stream(kinesis, "fleet", shards=8)
    ddb = ddb_client(server.endpoint)
    producer = Producer(server.client(), "fleet")
    producer.start()
    workers = {name: daemons(name, server.endpoint, "fleet", "fleet-app", str(SAMPLE)) for name in ("w1", "w2", "w3")}
    wait_for(lambda: len(owners(ddb, "fleet-app")) == 8 and share(ddb, "fleet-app") == [2, 3, 3], 60, "an even share of 8 leases")
    held_by_w1 = [k for k, o in owners(ddb, "fleet-app").items() if o == "w1"]
    workers["w1"].kill9()
    killed_at = time.monotonic()
    wait_for(lambda: not any(o == "w1" for o in owners(ddb, "fleet-app").values()), 30, "w1's leases taken over")
    took = time.monotonic() - killed_at
    assert took < FAILOVER_MS / 1000 * 2 + 3, took  # failover + two taking intervals + slack
    assert held_by_w1
    workers["w4"] = daemons("w4", server.endpoint, "fleet", "fleet-app", str(SAMPLE))
    wait_for(lambda: share(ddb, "fleet-app") == [2, 3, 3] and "w4" in owners(ddb, "fleet-app").values(), 60, "rebalanced with w4")

    shards = kinesis.describe_stream(StreamName="fleet")["StreamDescription"]["Shards"]
    first = shards[0]
    low, high = int(first["HashKeyRange"]["StartingHashKey"]), int(first["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName="fleet", ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2))
    wait_status(kinesis, "fleet")
    kinesis.merge_shards(StreamName="fleet", ShardToMerge=shards[6]["ShardId"], AdjacentShardToMerge=shards[7]["ShardId"])
    wait_status(kinesis, "fleet")
    time.sleep(2)
    acked = producer.stop()
    live = [w for n, w in workers.items() if n != "w1"]
    everything = lambda: {s for w in workers.values() for _, s in w.processed()}
    wait_for(lambda: acked <= everything(), 90, "every acknowledged record processed at least once")

    # No child started before every parent had finished at SHARD_END (timestamps of all workers' logs).
    started: dict[str, str] = {}
    finished: dict[str, str] = {}
    for worker in workers.values():
        for at, shard in STARTED.findall(worker.text()):
            started.setdefault(shard, at)
            started[shard] = min(started[shard], at)
        for at, shard in FINISHED.findall(worker.text()):
            finished.setdefault(shard, at)
            finished[shard] = min(finished[shard], at)
    lineage = {s["ShardId"]: [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]
               for s in kinesis.list_shards(StreamName="fleet")["Shards"]}
    children = [c for c, parents in lineage.items() if any(p in lineage for p in parents)]
    assert len(children) == 3, lineage  # two from the split, one from the merge
    for child in children:
        assert child in started, f"{child} never started"
        for parent in lineage[child]:
            assert parent in finished, f"{parent} never finished"
            assert finished[parent] < started[child], (parent, child)
    for worker in live:
        assert worker.stop() == 0


def test_children_start_after_parents_end(server, kinesis, daemons):
    create_stream(kinesis, "reshard", shards=2)
    put_records(kinesis, "reshard", 100, "before")
    daemon = daemons("wr", server.endpoint, "reshard", "app3", str(SAMPLE), {"retrievalMode": "POLLING"})
    wait_for(lambda: len(daemon.processed()) >= 100, 60, "the first records")
    parent = shard_ids(kinesis, "reshard")[0]
    description = kinesis.describe_stream(StreamName="reshard")["StreamDescription"]
    low = int(description["Shards"][0]["HashKeyRange"]["StartingHashKey"])
    high = int(description["Shards"][0]["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName="reshard", ShardToSplit=parent, NewStartingHashKey=str((low + high) // 2))
    wait_status(kinesis, "reshard")
    acked = put_records(kinesis, "reshard", 100, "after")
    expected = {seq for seqs in acked.values() for seq in seqs}
    wait_for(lambda: expected <= {s for _, s in daemon.processed()}, 60, "records written after the split")
    text = daemon.text()
    # The parent's processor saw its shard end (and checkpointed SHARD_END) before any child record.
    ended_at = text.index("Shard has ended checkpointing")
    children = [s for s in shard_ids(kinesis, "reshard") if s not in description["Shards"][0]["ShardId"]]
    child_records = {seq for shard, seqs in acked.items() if shard not in (parent, description["Shards"][1]["ShardId"]) for seq in seqs}
    assert child_records, "some records went to the children"
    first_child_record = min(text.index(f"Sequence Number: {seq},") for seq in child_records)
    assert ended_at < first_child_record
    ddb = ddb_client(server.endpoint)
    wait_for(lambda: parent not in leases(ddb, "app3"), 20, "the finished parent lease to be cleaned up")
    assert children
    assert daemon.stop() == 0


EDGE_PROCESSOR = r'''#!/usr/bin/env python3
import json, sys, os
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def recv():
    return json.loads(sys.stdin.readline())
mode = os.environ.get("EDGE_MODE", "")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    message = json.loads(line)
    action = message["action"]
    print("this line is not a protocol message", flush=True)
    if action == "processRecords" and message["records"]:
        if mode == "exit":
            sys.stderr.write("EDGE exiting mid-batch\n"); sys.stderr.flush()
            os._exit(3)
        send({"action": "checkpoint", "sequenceNumber": "9" * 60, "subSequenceNumber": 0})
        reply = recv()
        sys.stderr.write("EDGE out-of-range error=%s\n" % reply.get("error")); sys.stderr.flush()
        last = message["records"][-1]["sequenceNumber"]
        send({"action": "checkpoint", "sequenceNumber": last, "subSequenceNumber": 0})
        reply = recv()
        sys.stderr.write("EDGE in-range error=%s\n" % reply.get("error")); sys.stderr.flush()
    if action == "shardEnded":
        sys.stderr.write("EDGE shardEnded without checkpoint\n"); sys.stderr.flush()
    send({"action": "status", "responseFor": action})
'''


def test_protocol_edge_cases(server, kinesis, daemons, tmp_path):
    script = tmp_path / "edge.py"
    script.write_text(EDGE_PROCESSOR)
    script.chmod(0o755)
    create_stream(kinesis, "edge", shards=1)
    acked = put_records(kinesis, "edge", 5, "e")
    daemon = daemons("we", server.endpoint, "edge", "app4", str(script), {"retrievalMode": "POLLING"})
    wait_for(lambda: "EDGE in-range error=None" in daemon.text(), 30, "an in-range checkpoint")
    text = daemon.text()
    assert "EDGE out-of-range error=IllegalArgumentException" in text
    assert "this line is not a protocol message" in text  # logged and skipped
    ddb = ddb_client(server.endpoint)
    shard = next(iter(acked))
    assert leases(ddb, "app4")[shard]["checkpoint"]["S"] == str(max(acked[shard]))
    assert daemon.stop() == 0

    # A child that exits mid-batch: the consumer fails, the lease is given up and retried.
    os.environ["EDGE_MODE"] = "exit"
    try:
        create_stream(kinesis, "edge2", shards=1)
        put_records(kinesis, "edge2", 3, "x")
        crashing = daemons("wx", server.endpoint, "edge2", "app5", str(script))
        wait_for(lambda: crashing.text().count("EDGE exiting mid-batch") >= 2, 30, "the batch retried after the child died")
        assert "exited during processRecords" in crashing.text()
        assert crashing.stop() == 0
    finally:
        del os.environ["EDGE_MODE"]

    # shardEnded without a checkpoint: the shard is not finished, and is retried.
    create_stream(kinesis, "edge3", shards=1)
    parent = shard_ids(kinesis, "edge3")[0]
    put_records(kinesis, "edge3", 2, "y")
    ending = daemons("wy", server.endpoint, "edge3", "app6", str(script))
    wait_for(lambda: "EDGE in-range error=None" in ending.text(), 30, "records of the parent")
    kinesis.split_shard(StreamName="edge3", ShardToSplit=parent, NewStartingHashKey=str(2**127))
    wait_for(lambda: ending.text().count("EDGE shardEnded without checkpoint") >= 2, 30, "shardEnded retried")
    assert "did not checkpoint at SHARD_END" in ending.text()
    assert leases(ddb, "app6")[parent]["checkpoint"]["S"] != "SHARD_END"
    assert ending.stop() == 0


NODE_APP = REPO / "compat" / "node" / "kcl_counter_app.cjs"


def test_node_aws_kcl_processor(server, kinesis, daemons):
    """The same daemon runs a processor on the unmodified `aws-kcl` npm package."""
    create_stream(kinesis, "node", shards=4)
    acked = put_records(kinesis, "node", 200, "n")
    expected = {seq for seqs in acked.values() for seq in seqs}
    ddb = ddb_client(server.endpoint)
    first = daemons("n1", server.endpoint, "node", "node-app", f"node {NODE_APP}")
    second = daemons("n2", server.endpoint, "node", "node-app", f"node {NODE_APP}")
    wait_for(lambda: expected <= {s for w in (first, second) for _, s in w.processed()}, 60, "every record processed")
    wait_for(lambda: share(ddb, "node-app") == [2, 2], 30, "two leases each")
    first.kill9()
    wait_for(lambda: set(owners(ddb, "node-app").values()) == {"n2"}, 20, "n2 holding every lease")

    # Owning a lease comes before reading it: a shard n1 had not checkpointed is read again by n2
    # from its checkpoint. Stop only once n2 has either read each shard's last record or finds it
    # checkpointed, so that the shutdown checkpoint below covers every shard.
    def caught_up() -> bool:
        table = leases(ddb, "node-app")
        seen = {s for _, s in second.processed()}
        return all(
            table.get(shard, {}).get("checkpoint", {}).get("S") == str(max(seqs)) or max(seqs) in seen
            for shard, seqs in acked.items()
        )

    wait_for(caught_up, 30, "n2 caught up on the leases it took over")
    assert second.stop() == 0
    assert "NODE shutdown requested" in second.text()
    table = leases(ddb, "node-app")
    for shard, seqs in acked.items():
        assert table[shard]["checkpoint"]["S"] == str(max(seqs)), shard
