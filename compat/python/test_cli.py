"""The AWS CLI (v1, from the project venv) against millrace, parsing its JSON output."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from millrace_testlib import ACCOUNT, AWS_ENV, REGION, not_found


def aws_cli() -> str:
    # The venv's `aws` sits next to the interpreter running pytest.
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    return str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws")


def run_aws(endpoint: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(AWS_ENV)
    cmd = [aws_cli(), "--endpoint-url", endpoint, "--output", "json", "--region", REGION, "kinesis", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def run_json(endpoint: str, *args: str):
    out = run_aws(endpoint, *args).stdout
    return json.loads(out) if out.strip() else None


@pytest.mark.slow
def test_cli_stream_lifecycle(server_factory):
    server = server_factory(args=["--create-stream-ms", "500", "--delete-stream-ms", "200"], name="cli")
    ep = server.endpoint

    assert run_json(ep, "create-stream", "--stream-name", "cli-stream", "--shard-count", "2") is None
    run_aws(ep, "wait", "stream-exists", "--stream-name", "cli-stream")
    desc = run_json(ep, "describe-stream", "--stream-name", "cli-stream")["StreamDescription"]
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/cli-stream"
    assert [s["ShardId"] for s in desc["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]

    # CLI v1 sends --data as the raw bytes of the argument (it base64-encodes them itself).
    put = run_json(ep, "put-record", "--stream-name", "cli-stream", "--partition-key", "a", "--data", "hello cli")
    assert put["ShardId"] == "shardId-000000000000"  # md5('a') is in the lower half
    assert put["SequenceNumber"].isdigit()
    put2 = run_json(ep, "put-record", "--stream-name", "cli-stream", "--partition-key", "a", "--data", "second")
    assert int(put2["SequenceNumber"]) > int(put["SequenceNumber"])

    it = run_json(ep, "get-shard-iterator", "--stream-name", "cli-stream", "--shard-id", put["ShardId"],
                  "--shard-iterator-type", "AT_SEQUENCE_NUMBER", "--starting-sequence-number",
                  put["SequenceNumber"])["ShardIterator"]
    got = run_json(ep, "get-records", "--shard-iterator", it)
    records = got["Records"]
    assert [r["SequenceNumber"] for r in records] == [put["SequenceNumber"], put2["SequenceNumber"]]
    assert [base64.b64decode(r["Data"]) for r in records] == [b"hello cli", b"second"]
    assert [r["PartitionKey"] for r in records] == ["a", "a"]
    assert "NextShardIterator" in got and "MillisBehindLatest" in got

    listed = run_json(ep, "list-streams")
    assert listed["StreamNames"] == ["cli-stream"]

    shards = run_json(ep, "list-shards", "--stream-name", "cli-stream")
    assert len(shards["Shards"]) == 2

    assert run_json(ep, "delete-stream", "--stream-name", "cli-stream") is None
    run_aws(ep, "wait", "stream-not-exists", "--stream-name", "cli-stream")
    failed = run_aws(ep, "describe-stream", "--stream-name", "cli-stream", check=False)
    assert failed.returncode != 0
    assert "ResourceNotFoundException" in failed.stderr
    assert not_found("cli-stream") in failed.stderr
    assert run_json(ep, "list-streams")["StreamNames"] == []


def test_cli_error_output(server_factory):
    server = server_factory(name="cli-errors")
    failed = run_aws(server.endpoint, "describe-stream-summary", "--stream-name", "missing", check=False)
    assert failed.returncode in (254, 255), failed  # 255 in CLI v1, 254 in v2
    assert (
        "An error occurred (ResourceNotFoundException) when calling the DescribeStreamSummary operation: "
        + not_found("missing")
    ) in failed.stderr
