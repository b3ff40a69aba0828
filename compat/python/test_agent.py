"""`millrace agent --config agent.json`, the Kinesis Agent's job: log files followed into streams
on a real server on 127.0.0.1, through rotation by rename, copy-truncate and new timestamped
files, a kill -9 and a restart, and every data-processing option on sample lines."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest

from millrace_testlib import AWS_ENV, REGION, create_stream, millrace_bin, read_shard, shard_ids


class Agent:
    """One `millrace agent` process with its configuration file and stderr log."""

    def __init__(self, tmp: Path, name: str, config: dict):
        self.config_path = tmp / f"{name}.json"
        self.config_path.write_text(json.dumps(config))
        self.log_path = tmp / f"{name}.agent-stderr"
        self.proc: subprocess.Popen | None = None
        self.log = None

    def start(self) -> "Agent":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(millrace_bin()), "agent", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            env=dict(os.environ, RUST_LOG="info"))
        return self

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.log.close()
        return code

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()


@pytest.fixture
def agents(tmp_path):
    started: list[Agent] = []

    def make(name: str, config: dict) -> Agent:
        agent = Agent(tmp_path, name, config)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.close()


def records(kinesis, stream: str) -> list[dict]:
    out = []
    for shard in shard_ids(kinesis, stream):
        out.extend(read_shard(kinesis, stream, shard, max_empty=1))
    return out


def wait_records(kinesis, stream: str, count: int, agent: Agent, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = records(kinesis, stream)
        if len(got) >= count:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(got)} of {count} records in {stream}\n{agent.text()[-3000:]}")
        assert agent.proc.poll() is None, agent.text()
        time.sleep(0.2)


def config(server, checkpoint: Path, flows: list[dict]) -> dict:
    return {"checkpointFile": str(checkpoint), "kinesis.endpoint": server.endpoint,
            "cloudwatch.emitMetrics": False, "flows": flows}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def checkpointed(path: Path) -> list[dict]:
    """Every file entry of a checkpoint file (none before the agent first wrote it)."""
    if not path.exists():
        return []
    return [e for files in json.loads(path.read_text())["flows"].values() for e in files]


def append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()


def test_lines_in_order_partial_lines_wait_and_deterministic_keys(server, kinesis, agents, tmp_path):
    create_stream(kinesis, "agent-order", shards=1)
    log = tmp_path / "files" / "app.log"
    log.parent.mkdir()
    log.write_text("one\ntwo\nthree\npart")
    agent = agents("order", config(server, tmp_path / "cp" / "checkpoints", [{
        "filePattern": str(log.parent / "app.log*"), "kinesisStream": "agent-order",
        "initialPosition": "START_OF_FILE", "partitionKeyOption": "DETERMINISTIC",
        "maxBufferAgeMillis": 200, "someUnknownSetting": 1}])).start()
    got = wait_records(kinesis, "agent-order", 3, agent)
    assert [r["Data"] for r in got] == [b"one\n", b"two\n", b"three\n"]
    for r in got:
        assert r["PartitionKey"] == hashlib.md5(r["Data"]).hexdigest()
    # The partial last line waits for its end, and the agent sleeps meanwhile (no polling:
    # a busy agent would use most of a core in this second and a half).
    before = cpu_seconds(agent.proc.pid)
    time.sleep(1.5)
    assert cpu_seconds(agent.proc.pid) - before < 0.3
    assert len(records(kinesis, "agent-order")) == 3
    with open(log, "a") as f:
        f.write("ial\nfive\n")
    got = wait_records(kinesis, "agent-order", 5, agent)
    assert [r["Data"] for r in got] == [b"one\n", b"two\n", b"three\n", b"partial\n", b"five\n"]
    assert agent.stop() == 0
    assert "unknown agent setting ignored" in agent.text()
    checkpoint = json.loads((tmp_path / "cp" / "checkpoints").read_text())
    (entry,) = next(iter(checkpoint["flows"].values()))
    assert entry["offset"] == log.stat().st_size and entry["path"] == str(log)


def test_end_of_file_start_and_bad_configuration(server, kinesis, agents, tmp_path):
    create_stream(kinesis, "agent-eof", shards=1)
    log = tmp_path / "eof.log"
    log.write_text("old line\n")
    agent = agents("eof", config(server, tmp_path / "checkpoints", [{
        "filePattern": str(log), "kinesisStream": "agent-eof", "maxBufferAgeMillis": 100}])).start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "checkpoints").exists():  # the starting position is stored first
        assert time.monotonic() < deadline, agent.text()
        time.sleep(0.1)
    append(log, ["new line"])
    got = wait_records(kinesis, "agent-eof", 1, agent)
    assert [r["Data"] for r in got] == [b"new line\n"]
    assert agent.stop() == 0

    # A flow whose directory does not exist yet: its files are followed from their start once
    # it is created (its parent's events wake the agent).
    later = tmp_path / "later" / "deeper"
    waiting = agents("later", config(server, tmp_path / "later-checkpoints", [{
        "filePattern": str(later / "app.log*"), "kinesisStream": "agent-eof", "maxBufferAgeMillis": 100}])).start()
    deadline = time.monotonic() + 30
    while "does not exist yet" not in waiting.text():
        assert time.monotonic() < deadline, waiting.text()
        time.sleep(0.1)
    later.mkdir(parents=True)
    append(later / "app.log", ["born later"])
    got = wait_records(kinesis, "agent-eof", 2, waiting)
    assert [r["Data"] for r in got] == [b"new line\n", b"born later\n"]
    assert waiting.stop() == 0

    bad = agents("bad", config(server, tmp_path / "bad-checkpoints", [{
        "filePattern": str(log), "kinesisStream": "agent-eof",
        "dataProcessingOptions": [{"optionName": "NOSUCHOPTION"}]}])).start()
    assert bad.proc.wait(30) == 1
    assert "NOSUCHOPTION" in bad.text()


def test_rotation_truncation_kill9_and_restart_lose_nothing(server, kinesis, agents, tmp_path):
    """A log file rotated by rename, then by copy-truncate, then replaced by a new timestamped
    file while the agent runs; the agent killed with kill -9 while lines are written, and
    restarted. Every line arrives, in order; duplicates only from the batch in flight at the kill."""
    create_stream(kinesis, "agent-rotate", shards=1)
    logs = tmp_path / "files"
    logs.mkdir()
    log = logs / "app.log"
    counter = iter(range(1_000_000))

    def write(path: Path, n: int) -> None:
        append(path, [f"line-{next(counter):06d}" for _ in range(n)])

    write(log, 100)
    agent_config = config(server, tmp_path / "checkpoints", [{
        "filePattern": str(logs / "app.log*"), "kinesisStream": "agent-rotate",
        "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 100, "maxBufferSizeRecords": 50}])
    agent = agents("rotate", agent_config).start()
    wait_records(kinesis, "agent-rotate", 100, agent)
    write(log, 20)
    # Rotation by rename: the old file keeps its lines, a new file takes over.
    log.rename(logs / "app.log.1")
    write(logs / "app.log.1", 5)  # the writer had not reopened yet
    write(log, 100)
    wait_records(kinesis, "agent-rotate", 225, agent)
    # Copy-truncate: the copy holds what was written, the original starts again empty.
    write(log, 30)
    shutil.copyfile(log, logs / "app.log.2")
    with open(log, "r+") as f:
        f.truncate(0)
    write(log, 100)
    wait_records(kinesis, "agent-rotate", 355, agent)
    # A new timestamped file; the old one is no longer written.
    stamped = logs / "app.log.20261201-1200"
    write(stamped, 100)
    wait_records(kinesis, "agent-rotate", 455, agent)
    # kill -9 while lines are being written, more lines while it is down, then a restart.
    write(stamped, 200)
    deadline = time.monotonic() + 30
    while len(records(kinesis, "agent-rotate")) < 475:
        assert time.monotonic() < deadline, agent.text()
        time.sleep(0.05)
    agent.kill9()
    write(stamped, 100)
    restarted = agents("rotate-again", agent_config).start()
    got = wait_records(kinesis, "agent-rotate", 755, restarted)
    time.sleep(0.5)
    got = records(kinesis, "agent-rotate")
    lines = [r["Data"].decode() for r in got]
    expected = [f"line-{i:06d}\n" for i in range(755)]
    first_seen = list(dict.fromkeys(lines))
    assert first_seen == expected, "lost or out of order"
    duplicates = len(lines) - len(first_seen)
    assert duplicates <= 50 * 2, duplicates  # at most the batches in flight at the kill
    before_kill = lines[:455]
    assert before_kill == expected[:455], "duplicates before the crash"
    # A rotated file deleted: it leaves the checkpoint once everything of it is delivered.
    (logs / "app.log.1").unlink()
    deadline = time.monotonic() + 30
    while any(e["path"].endswith("app.log.1") for e in checkpointed(tmp_path / "checkpoints")):
        assert time.monotonic() < deadline, restarted.text()
        time.sleep(0.1)
    assert restarted.stop() == 0
    text = agent.text()
    assert "file truncated" in text and "new file is a copy of a" in text, text[-3000:]


APACHE_COMMON = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
APACHE_COMBINED = APACHE_COMMON + ' "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
APACHE_ERROR = "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico"
SYSLOG = "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351' (0.01878 seconds)"
RFC3339 = "2008-10-11T22:14:15.003Z mymachine.example.com su: 'su root' failed for lonvick on /dev/pts/8"


def test_every_data_processing_option(server, kinesis, agents, tmp_path):
    logs = tmp_path / "files"
    logs.mkdir()
    cases = {
        "single": ({"multiLineStartPattern": r"^\d{4}-", "dataProcessingOptions": [{"optionName": "SINGLELINE"}]},
                   "2024-01-01 first\n  at a\n  at b\n2024-01-02 second\n2024-01-03 third\n",
                   # The last record is complete only when the file has been quiet for maxBufferAgeMillis.
                   ["2024-01-01 firstat aat b\n", "2024-01-02 second\n", "2024-01-03 third\n"]),
        "csv": ({"skipHeaderLines": 1, "dataProcessingOptions": [
                    {"optionName": "CSVTOJSON", "customFieldNames": ["id", "name", "city"], "delimiter": "\\t"}]},
                "id\tname\tcity\n1\tann\tparis\n2\tbob\n",
                ['{"id":"1","name":"ann","city":"paris"}\n', '{"id":"2","name":"bob","city":null}\n']),
        "common": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]},
                   f"{APACHE_COMMON}\nnot an access log line\n{APACHE_COMMON}\n",
                   ['{"host":"127.0.0.1","ident":null,"authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700",'
                    '"request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326"}\n'] * 2),
        "combined": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}]},
                     f"{APACHE_COMBINED}\n",
                     ['{"host":"127.0.0.1","ident":null,"authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700",'
                      '"request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326",'
                      '"referer":"http://www.example.com/start.html","agent":"Mozilla/4.08 [en] (Win98; I ;Nav)"}\n']),
        "error": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "APACHEERRORLOG"}]},
                  f"{APACHE_ERROR}\n",
                  ['{"timestamp":"Fri Sep 09 10:42:29.902022 2011","module":"core","severity":"error",'
                   '"processid":"35708","threadid":"4328636416","client":"72.15.99.187",'
                   '"message":"File does not exist: /usr/local/apache2/htdocs/favicon.ico"}\n']),
        "syslog": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "SYSLOG"}]},
                   f"{SYSLOG}\n",
                   ['{"timestamp":"Mar 12 12:00:08","hostname":"server2","program":"rcd","processid":"308",'
                    '"message":"Loaded 12 packages in \'ximian-red-carpet|351\' (0.01878 seconds)"}\n']),
        "rfc3339": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "RFC3339SYSLOG"}]},
                    f"{RFC3339}\n",
                    ['{"timestamp":"2008-10-11T22:14:15.003Z","hostname":"mymachine.example.com","program":"su",'
                     '"processid":null,"message":"\'su root\' failed for lonvick on /dev/pts/8"}\n']),
        "custom": ({"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "SYSLOG",
                                               "matchPattern": r"^(\w+) (\d+)$", "customFieldNames": ["word", "number"]}]},
                   "abc 42\n",
                   ['{"word":"abc","number":"42"}\n']),
        "metadata": ({"dataProcessingOptions": [{"optionName": "ADDMETADATA", "metadata": {"host": "h1", "n": 2}}]},
                     "payload\n",
                     ['{"metadata":{"host":"h1","n":2},"data":"payload"}\n']),
        "brackets": ({"dataProcessingOptions": [
                        {"optionName": "CSVTOJSON", "customFieldNames": ["a"]},
                        {"optionName": "ADDBRACKETS"}]},
                     "x\n",
                     ['{{"a":"x"}\n}']),
        "truncated": ({"truncatedRecordTerminator": "<cut>\n", "partitionKeyOption": "DETERMINISTIC"},
                      "y" * (1024 * 1024 + 10) + "\nafter\n",
                      None),
    }
    flows = []
    for name, (settings, content, _) in cases.items():
        create_stream(kinesis, f"opt-{name}", shards=1)
        flows.append({"filePattern": str(logs / f"{name}.log"), "kinesisStream": f"opt-{name}",
                      "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 100, **settings})
    for name, (_, content, _) in cases.items():
        (logs / f"{name}.log").write_text(content)
    agent = agents("options", config(server, tmp_path / "checkpoints", flows)).start()
    for name, (_, _, expected) in cases.items():
        if expected is None:
            continue
        got = wait_records(kinesis, f"opt-{name}", len(expected), agent)
        assert [r["Data"].decode() for r in got] == expected, name
    stamped = wait_records(kinesis, "opt-metadata", 1, agent)
    assert "ts" not in json.loads(stamped[0]["Data"])
    long_line, after = wait_records(kinesis, "opt-truncated", 2, agent)
    assert long_line["Data"].endswith(b"y<cut>\n")
    assert len(long_line["Data"]) + len(long_line["PartitionKey"]) == 1024 * 1024
    assert after["Data"] == b"after\n"
    assert agent.stop() == 0


def firehose_served(server) -> bool:
    fh = boto3.client("firehose", endpoint_url=server.endpoint, region_name=REGION,
                      aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"], aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    try:
        fh.list_delivery_streams()
        return True
    except botocore.exceptions.ClientError:
        return False


def test_delivery_stream_flow(server, agents, tmp_path):
    """deliveryStream flows send Firehose PutRecordBatch requests. Where the server serves
    Firehose, the lines reach the delivery stream's S3 objects; where it does not, the agent
    reports the failed calls and checkpoints nothing."""
    log = tmp_path / "fh.log"
    lines = [f"to firehose {i}" for i in range(20)]
    log.write_text("".join(f"{line}\n" for line in lines))
    served = firehose_served(server)
    if served:
        keys = {"region_name": REGION, "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"]}
        fh = boto3.client("firehose", endpoint_url=server.endpoint, **keys)
        fh.create_delivery_stream(
            DeliveryStreamName="fh", DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::000000000000:role/firehose", "BucketARN": "arn:aws:s3:::agent-fh",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0}})
        deadline = time.monotonic() + 30
        while fh.describe_delivery_stream(DeliveryStreamName="fh")["DeliveryStreamDescription"]["DeliveryStreamStatus"] != "ACTIVE":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    agent = agents("firehose", {"checkpointFile": str(tmp_path / "checkpoints"), "firehose.endpoint": server.endpoint,
                                "flows": [{"filePattern": str(log), "deliveryStream": "fh", "initialPosition": "START_OF_FILE",
                                           "maxBufferAgeMillis": 100}]}).start()
    deadline = time.monotonic() + 30
    if not served:
        while "PutRecordBatch failed" not in agent.text():
            assert time.monotonic() < deadline, agent.text()
            time.sleep(0.1)
        assert agent.stop() == 0
        (entry,) = checkpointed(tmp_path / "checkpoints")
        assert entry["offset"] == 0
        return
    while [e["offset"] for e in checkpointed(tmp_path / "checkpoints")] != [log.stat().st_size]:
        assert time.monotonic() < deadline, agent.text()
        time.sleep(0.1)
    assert agent.stop() == 0
    s3 = boto3.client("s3", endpoint_url=server.endpoint, **keys)
    delivered: list[str] = []
    while sorted(delivered) != sorted(lines):
        assert time.monotonic() < deadline + 30, delivered
        time.sleep(0.2)
        try:
            objects = s3.list_objects_v2(Bucket="agent-fh").get("Contents", [])
        except s3.exceptions.NoSuchBucket:
            continue
        delivered = [line for o in objects
                     for line in s3.get_object(Bucket="agent-fh", Key=o["Key"])["Body"].read().decode().splitlines()]
