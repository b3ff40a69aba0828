"""Functions and event source mappings (the Lambda consumer) and CloudWatch Logs, through boto3 and
the AWS CLI against a real `millrace serve`, with real runtimes started by Millrace on 127.0.0.1:

- the seeds' tutorial step by step: on-demand stream, the tutorial's Python handler through the real
  `awslambdaric`, a Kinesis trigger (batch size 10, LATEST), three `aws kinesis put-record`, and the
  decoded lines found with `aws logs filter-log-events` in `/aws/lambda/<name>`;
- Invoke RequestResponse / Event / DryRun, function errors, `X-Amz-Log-Result`, timeouts, code
  updates, code from a local directory, the concurrency limit and warm reuse;
- a `provided.al2023` function whose `bootstrap` is a shell script speaking the Runtime API with curl;
- mappings: ReportBatchItemFailures, bisect with a poison record and retries ending in the OnFailure
  stream, record age, filters, ParallelizationFactor keeping per-key order, tumbling-window state,
  an enhanced fan-out consumer as the source, a split while the mapping runs, KPL aggregates passed
  through, stream and function deletion;
- kill -9 of Millrace mid-stream (no gaps) and of the function's process mid-batch; runtimes die with
  Millrace;
- `--auth enforce`: the execution role's session inside the function, the audit log without secrets;
- validation and not-found errors with AWS's codes and statuses; a clear error for a missing
  interpreter or awslambdaric.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import boto3
import botocore.config
import pytest

from millrace_testlib import AWS_ENV, REGION, MillraceServer, client_error, create_stream, wait_status

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-lambda-kinesis-role"

# The seeds' tutorial handler, verbatim.
TUTORIAL_HANDLER = '''import base64

def lambda_handler(event, context):
    # Kinesis event source mapping batches records
    records = event.get("Records", [])
    print(f"Received {len(records)} records")

    for r in records:
        kinesis = r.get("kinesis", {})
        b64_data = kinesis.get("data", "")
        partition_key = kinesis.get("partitionKey", "")
        sequence_number = kinesis.get("sequenceNumber", "")

        try:
            raw = base64.b64decode(b64_data).decode("utf-8", errors="replace")
        except Exception as e:
            raw = f"<decode_failed: {e}>"

        print(f"partitionKey={partition_key} sequenceNumber={sequence_number} data={raw}")

    return {"processed": len(records)}
'''

TOOLS_HANDLER = '''import json, os, time

def fail(event, context):
    raise ValueError("boom: " + json.dumps(event))

def slow(event, context):
    time.sleep(30)
    return "never"

def echo(event, context):
    print("echo", json.dumps(event))
    return {"event": event, "function": context.function_name, "memory": context.memory_limit_in_mb,
            "left_ms": context.get_remaining_time_in_millis(), "env": os.environ.get("GREETING")}
'''

# Fails each record whose data is `poison` the first time it is seen (state kept in the warm
# process), reporting it as a batch item failure; every record delivered is appended to OUT.
ITEM_FAILURES_HANDLER = '''import base64, os

seen = set()

def handler(event, context):
    failures = []
    with open(os.environ["OUT"], "a") as out:
        for r in event["Records"]:
            data = base64.b64decode(r["kinesis"]["data"]).decode()
            out.write(data + "\\n")
            if data == "poison" and data not in seen:
                seen.add(data)
                failures.append({"itemIdentifier": r["kinesis"]["sequenceNumber"]})
    return {"batchItemFailures": failures}
'''

# Appends every record's data to OUT (fsynced): the kill -9 test's witness.
RECORDER_HANDLER = '''import base64, os

def handler(event, context):
    with open(os.environ["OUT"], "a") as out:
        for r in event["Records"]:
            out.write(base64.b64decode(r["kinesis"]["data"]).decode() + "\\n")
        out.flush()
        os.fsync(out.fileno())
    return None
'''

# A provided.al2023 runtime: a shell `bootstrap` that speaks the Runtime API with curl.
BOOTSTRAP = '''#!/bin/sh
set -u
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "bootstrap starting with handler ${_HANDLER}"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -f -D "$HEADERS" "$API/invocation/next")" || exit 1
  ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | tr -d '\\r' | cut -d' ' -f2)"
  rm -f "$HEADERS"
  echo "handling $ID"
  case "$EVENT" in
    *fail*) curl -sS -f -X POST -H "Lambda-Runtime-Function-Error-Type: Custom.Failure" \\
              -d '{"errorMessage":"asked to fail","errorType":"Custom.Failure"}' "$API/invocation/$ID/error" >/dev/null || exit 1 ;;
    *) curl -sS -f -X POST -d "{\\"echo\\":$EVENT,\\"handler\\":\\"${_HANDLER}\\"}" "$API/invocation/$ID/response" >/dev/null || exit 1 ;;
  esac
done
'''


def zip_of(files: dict[str, str], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ((modes or {}).get(name, 0o644) & 0xFFFF) << 16
            z.writestr(info, text)
    return buf.getvalue()


def client(server: MillraceServer, service: str):
    session = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120)
    return session.client(service, endpoint_url=server.endpoint, config=config)


def aws_cli() -> str:
    candidate = Path(sys.executable).parent / "aws"
    return str(candidate) if candidate.exists() else "aws"


def run_aws(server: MillraceServer, *args: str):
    env = dict(os.environ)
    env.update(AWS_ENV)
    cmd = [aws_cli(), "--endpoint-url", server.endpoint, "--output", "json", "--region", REGION, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def lambda_args() -> list[str]:
    # The interpreter running the tests has awslambdaric (compat/python/requirements.txt).
    return ["--lambda-python", sys.executable]


@pytest.fixture(scope="module")
def lambda_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("lambda")
    server = MillraceServer(base / "data", base / "logs", lambda_args(), name="lambda")
    server.start()
    yield server
    server.close()


def wait_for(condition, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout}s")
        time.sleep(0.2)


def create_function(lam, name: str, files: dict[str, str], handler: str, runtime: str = "python3.12", **kwargs):
    return lam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": zip_of(files, kwargs.pop("modes", None))},
        **kwargs,
    )


def test_seeds_tutorial_step_by_step(lambda_server):
    server = lambda_server
    # Step 2: an on-demand stream, waited for with describe-stream-summary.
    run_aws(server, "kinesis", "create-stream", "--stream-name", "demo-kinesis-stream",
            "--stream-mode-details", "StreamMode=ON_DEMAND")
    status = wait_for(lambda: run_aws(server, "kinesis", "describe-stream-summary", "--stream-name",
                                      "demo-kinesis-stream")["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE",
                      what="stream ACTIVE")
    assert status
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/demo-kinesis-stream"
    # Step 4: the tutorial's function (Python 3.12, through awslambdaric).
    lam = client(server, "lambda")
    created = create_function(lam, "demo-kinesis-consumer", {"lambda_function.py": TUTORIAL_HANDLER},
                              "lambda_function.lambda_handler")
    assert created["FunctionName"] == "demo-kinesis-consumer"
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-kinesis-consumer"
    assert created["Runtime"] == "python3.12" and created["Role"] == ROLE
    assert created["Timeout"] == 3 and created["MemorySize"] == 128 and created["State"] == "Active"
    assert created["CodeSha256"] and created["CodeSize"] > 0
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    # Step 5: the Kinesis trigger, batch size 10, starting position LATEST.
    mapping = run_aws(server, "lambda", "create-event-source-mapping", "--function-name", "demo-kinesis-consumer",
                      "--event-source-arn", arn, "--batch-size", "10", "--starting-position", "LATEST")
    assert mapping["State"] == "Creating"
    assert mapping["BatchSize"] == 10 and mapping["StartingPosition"] == "LATEST"
    assert mapping["EventSourceArn"] == arn
    assert mapping["MaximumRetryAttempts"] == -1 and mapping["MaximumRecordAgeInSeconds"] == -1
    assert mapping["BisectBatchOnFunctionError"] is False and mapping["ParallelizationFactor"] == 1
    assert mapping["MaximumBatchingWindowInSeconds"] == 0
    got = lam.get_event_source_mapping(UUID=mapping["UUID"])
    assert got["State"] == "Enabled" and got["FunctionArn"] == created["FunctionArn"]
    listed = run_aws(server, "lambda", "list-event-source-mappings", "--function-name", "demo-kinesis-consumer")
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [mapping["UUID"]]
    # Step 6: three records with the CLI, exactly as the tutorial writes them.
    for key, data in [("user-1", "hello from user-1"), ("user-2", "hello from user-2"),
                      ("user-1", "another event for user-1")]:
        run_aws(server, "kinesis", "put-record", "--stream-name", "demo-kinesis-stream",
                "--partition-key", key, "--data", data)
    # Step 7: the log group of the function shows the decoded records.
    wanted = ["partitionKey=user-1", "data=hello from user-1", "data=hello from user-2",
              "data=another event for user-1"]

    def messages():
        out = run_aws(server, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/demo-kinesis-consumer")
        lines = [e["message"] for e in out["events"]]
        return lines if all(any(w in line for line in lines) for w in wanted) else None

    lines = wait_for(messages, what="tutorial log lines")
    received = sum(int(line.split()[1]) for line in lines if line.startswith("Received "))
    assert received == 3, lines
    assert any(line.startswith("START RequestId: ") for line in lines)
    assert any(line.startswith("REPORT RequestId: ") and "Billed Duration" in line for line in lines)
    # A quoted phrase and a term as filter patterns.
    phrase = run_aws(server, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/demo-kinesis-consumer",
                     "--filter-pattern", '"another event"')
    assert [e["message"].split(" data=")[1] for e in phrase["events"]] == ["another event for user-1"]
    groups = run_aws(server, "logs", "describe-log-groups", "--log-group-name-prefix", "/aws/lambda/")
    assert [g["logGroupName"] for g in groups["logGroups"]] == ["/aws/lambda/demo-kinesis-consumer"]
    assert wait_for(lambda: lam.get_event_source_mapping(UUID=mapping["UUID"])["LastProcessingResult"] == "OK")
    # Cleanup as the tutorial does it.
    deleted = lam.delete_event_source_mapping(UUID=mapping["UUID"])
    assert deleted["State"] == "Deleting"
    run_aws(server, "lambda", "delete-function", "--function-name", "demo-kinesis-consumer")
    run_aws(server, "kinesis", "delete-stream", "--stream-name", "demo-kinesis-stream")
    err = client_error(lam.get_function, FunctionName="demo-kinesis-consumer")
    assert err.response["Error"]["Code"] == "ResourceNotFoundException"


def test_invoke_request_response_errors_tail_and_timeouts(lambda_server):
    lam = client(lambda_server, "lambda")
    create_function(lam, "tools-echo", {"tools.py": TOOLS_HANDLER}, "tools.echo", MemorySize=256,
                    Environment={"Variables": {"GREETING": "hi"}})
    out = lam.invoke(FunctionName="tools-echo", Payload=json.dumps({"a": 1}), LogType="Tail")
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    body = json.loads(out["Payload"].read())
    assert body["event"] == {"a": 1} and body["function"] == "tools-echo"
    assert body["memory"] == "256" and body["env"] == "hi" and 0 < body["left_ms"] <= 3000
    tail = base64.b64decode(out["LogResult"]).decode()
    assert 'echo {"a": 1}' in tail and "START RequestId:" in tail and "END RequestId:" in tail
    assert "Memory Size: 256 MB" in tail and "Init Duration: " in tail
    assert lam.invoke(FunctionName="tools-echo", InvocationType="DryRun")["StatusCode"] == 204
    assert lam.invoke(FunctionName="tools-echo", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
    # An unhandled exception: 200 with X-Amz-Function-Error and the runtime's error document.
    lam.update_function_configuration(FunctionName="tools-echo", Handler="tools.fail")
    failed = lam.invoke(FunctionName="tools-echo", Payload=b'{"x": 2}')
    assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == 'boom: {"x": 2}'
    # A timeout kills the process and says so; the next invocation gets a fresh environment.
    lam.update_function_configuration(FunctionName="tools-echo", Handler="tools.slow", Timeout=1)
    started = time.monotonic()
    timed_out = lam.invoke(FunctionName="tools-echo", Payload=b"{}", LogType="Tail")
    assert time.monotonic() - started < 25
    assert timed_out["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(timed_out["Payload"].read())["errorMessage"]
    assert "Task timed out after 1.00 seconds" in base64.b64decode(timed_out["LogResult"]).decode()
    lam.update_function_configuration(FunctionName="tools-echo", Handler="tools.echo", Timeout=3)
    again = lam.invoke(FunctionName="tools-echo", Payload=b'{"b": 2}')
    assert json.loads(again["Payload"].read())["event"] == {"b": 2}
    config = lam.get_function_configuration(FunctionName="tools-echo")
    assert config["Handler"] == "tools.echo" and config["Timeout"] == 3
    assert config["Environment"] == {"Variables": {"GREETING": "hi"}}
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert "tools-echo" in names
    # Not JSON: refused before anything runs.
    bad = client_error(lam.invoke, FunctionName="tools-echo", Payload=b"not json")
    assert bad.response["Error"]["Code"] == "InvalidRequestContentException"
    assert bad.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_provided_al2023_shell_bootstrap(lambda_server):
    lam = client(lambda_server, "lambda")
    create_function(lam, "shell-fn", {"bootstrap": BOOTSTRAP}, "function.handler", runtime="provided.al2023",
                    modes={"bootstrap": 0o755})
    out = lam.invoke(FunctionName="shell-fn", Payload=b'{"n": 1}', LogType="Tail")
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert json.loads(out["Payload"].read()) == {"echo": {"n": 1}, "handler": "function.handler"}
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "bootstrap starting with handler function.handler" in tail and "handling " in tail
    # Warm reuse: the second invocation does not start the bootstrap again.
    second = lam.invoke(FunctionName="shell-fn", Payload=b'{"n": 2}', LogType="Tail")
    assert json.loads(second["Payload"].read())["echo"] == {"n": 2}
    assert "bootstrap starting" not in base64.b64decode(second["LogResult"]).decode()
    failed = lam.invoke(FunctionName="shell-fn", Payload=b'{"fail": true}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "Custom.Failure"


def test_report_batch_item_failures_retries_from_the_failed_record(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "items", shards=1)
    out = tmp_path / "items.txt"
    create_function(lam, "items-fn", {"items.py": ITEM_FAILURES_HANDLER}, "items.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    arn = kinesis.describe_stream_summary(StreamName="items")["StreamDescriptionSummary"]["StreamARN"]
    kinesis.put_records(StreamName="items", Records=[
        {"PartitionKey": "k", "Data": d.encode()} for d in ["a", "b", "poison", "c", "d"]])
    mapping = lam.create_event_source_mapping(FunctionName="items-fn", EventSourceArn=arn, BatchSize=10,
                                              StartingPosition="TRIM_HORIZON",
                                              FunctionResponseTypes=["ReportBatchItemFailures"])
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    def delivered():
        lines = out.read_text().split() if out.exists() else []
        return lines if lines.count("d") >= 2 else None

    lines = wait_for(delivered, what="the retried batch")
    # The first batch, then a retry from the failed record on.
    assert lines == ["a", "b", "poison", "c", "d", "poison", "c", "d"]
    lam.delete_event_source_mapping(UUID=mapping["UUID"])


def test_kill9_mid_stream_resumes_without_gaps(server_factory, tmp_path):
    server = server_factory(args=lambda_args(), name="lambda-crash")
    kinesis = server.client()
    lam = client(server, "lambda")
    create_stream(kinesis, "crash", shards=2)
    out = tmp_path / "crash.txt"
    create_function(lam, "recorder", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    arn = kinesis.describe_stream_summary(StreamName="crash")["StreamDescriptionSummary"]["StreamARN"]
    lam.create_event_source_mapping(FunctionName="recorder", EventSourceArn=arn, BatchSize=5,
                                    StartingPosition="TRIM_HORIZON")
    sent = [f"r{i}" for i in range(200)]
    for start in range(0, 100, 20):
        kinesis.put_records(StreamName="crash", Records=[
            {"PartitionKey": f"k{i % 7}", "Data": d.encode()} for i, d in enumerate(sent[start:start + 20])])

    def seen():
        return set(out.read_text().split()) if out.exists() else set()

    wait_for(lambda: len(seen()) >= 30, what="some batches before the crash")
    server.kill9()
    server.start()
    kinesis = server.client()
    # The function's log lines written before the crash are still there.
    logs = client(server, "logs")
    before = logs.filter_log_events(logGroupName="/aws/lambda/recorder", filterPattern="REPORT")["events"]
    assert before and all(e["message"].startswith("REPORT RequestId: ") for e in before)
    for start in range(100, 200, 20):
        kinesis.put_records(StreamName="crash", Records=[
            {"PartitionKey": f"k{i % 7}", "Data": d.encode()} for i, d in enumerate(sent[start:start + 20])])
    wait_for(lambda: seen() >= set(sent), what="every record after the restart")
    lines = out.read_text().split()
    # At least once: a batch in flight at the crash may come twice, nothing is missing, and each
    # record's first delivery keeps its shard's order.
    assert set(lines) == set(sent)
    assert len(lines) - len(sent) <= 2 * 5 * 2


def test_validation_and_not_found_errors(lambda_server):
    lam = client(lambda_server, "lambda")
    kinesis = lambda_server.client()
    err = client_error(lam.get_function, FunctionName="missing-fn")
    assert err.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert err.response["Error"]["Message"] == f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:missing-fn"
    lam_raw = boto3.client("lambda", endpoint_url=lambda_server.endpoint, region_name=REGION,
                           config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    bad_runtime = client_error(lam_raw.create_function, FunctionName="v1", Runtime="python9", Role=ROLE,
                               Handler="a.b", Code={"ZipFile": zip_of({"a.py": ""})})
    assert bad_runtime.response["Error"]["Code"] == "ValidationException"
    assert bad_runtime.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Value 'python9' at 'runtime' failed to satisfy constraint: Member must satisfy enum value set" in \
        bad_runtime.response["Error"]["Message"]
    not_zip = client_error(lam.create_function, FunctionName="v2", Runtime="python3.12", Role=ROLE, Handler="a.b",
                           Code={"ZipFile": b"not a zip"})
    assert not_zip.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Could not unzip uploaded file" in not_zip.response["Error"]["Message"]
    node = client_error(lam.create_function, FunctionName="v4", Runtime="nodejs20.x", Role=ROLE,
                        Handler="index.handler", Code={"ZipFile": zip_of({"index.js": ""})})
    assert node.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "--lambda-node-ric" in node.response["Error"]["Message"]
    err = client_error(lam.get_function, FunctionName="v2")
    assert err.response["Error"]["Code"] == "ResourceNotFoundException"
    create_function(lam, "v3", {"a.py": "def h(e, c):\n    return e\n"}, "a.h")
    dup = client_error(create_function, lam, "v3", {"a.py": ""}, "a.h")
    assert dup.response["Error"]["Code"] == "ResourceConflictException"
    assert dup.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    missing_stream = client_error(lam.create_event_source_mapping, FunctionName="v3",
                                  EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/nope",
                                  StartingPosition="LATEST")
    assert missing_stream.response["Error"]["Code"] == "InvalidParameterValueException"
    create_stream(kinesis, "errs", shards=1)
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/errs"
    too_big = client_error(lam_raw.create_event_source_mapping, FunctionName="v3", EventSourceArn=arn,
                           StartingPosition="LATEST", BatchSize=10001)
    assert too_big.response["Error"]["Code"] == "ValidationException"
    age = client_error(lam.create_event_source_mapping, FunctionName="v3", EventSourceArn=arn,
                       StartingPosition="LATEST", MaximumRecordAgeInSeconds=30)
    assert age.response["Error"]["Code"] == "InvalidParameterValueException"
    no_function = client_error(lam.create_event_source_mapping, FunctionName="ghost", EventSourceArn=arn,
                               StartingPosition="LATEST")
    assert no_function.response["Error"]["Code"] == "ResourceNotFoundException"
    mapping = lam.create_event_source_mapping(FunctionName="v3", EventSourceArn=arn, StartingPosition="LATEST",
                                              Enabled=False)
    assert mapping["State"] == "Disabled"
    again = client_error(lam.create_event_source_mapping, FunctionName="v3", EventSourceArn=arn,
                         StartingPosition="LATEST")
    assert again.response["Error"]["Code"] == "ResourceConflictException"
    assert mapping["UUID"] in again.response["Error"]["Message"]
    updated = lam.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=50, Enabled=True)
    assert updated["State"] == "Enabling" and updated["BatchSize"] == 50
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
    assert lam.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=60)["State"] == "Updating"
    assert lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)["State"] == "Disabling"
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Disabled"
    unknown = client_error(lam.get_event_source_mapping, UUID="00000000-0000-0000-0000-000000000000")
    assert unknown.response["Error"]["Code"] == "ResourceNotFoundException"
    assert unknown.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    lam.delete_event_source_mapping(UUID=mapping["UUID"])
    gone = client_error(lam.delete_event_source_mapping, UUID=mapping["UUID"])
    assert gone.response["Error"]["Code"] == "ResourceNotFoundException"
    logs = client(lambda_server, "logs")
    missing_group = client_error(logs.filter_log_events, logGroupName="/aws/lambda/none")
    assert missing_group.response["Error"]["Code"] == "ResourceNotFoundException"
    logs.create_log_group(logGroupName="/custom/group")
    exists = client_error(logs.create_log_group, logGroupName="/custom/group")
    assert exists.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    bad_days = client_error(logs.put_retention_policy, logGroupName="/custom/group", retentionInDays=2)
    assert bad_days.response["Error"]["Code"] == "InvalidParameterException"
    logs.put_retention_policy(logGroupName="/custom/group", retentionInDays=7)
    logs.create_log_stream(logGroupName="/custom/group", logStreamName="s")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName="/custom/group", logStreamName="s",
                        logEvents=[{"timestamp": now, "message": "one two"}, {"timestamp": now + 1, "message": "three"}])
    events = logs.get_log_events(logGroupName="/custom/group", logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["one two", "three"]
    group = logs.describe_log_groups(logGroupNamePrefix="/custom/")["logGroups"][0]
    assert group["retentionInDays"] == 7
    streams = logs.describe_log_streams(logGroupName="/custom/group")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["s"]
    logs.delete_log_group(logGroupName="/custom/group")
    assert logs.describe_log_groups(logGroupNamePrefix="/custom/")["logGroups"] == []


# Fails a batch holding `poison`; every batch's data is appended to OUT as one line.
BATCH_RECORDER_HANDLER = '''import base64, os

def handler(event, context):
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]
    with open(os.environ["OUT"], "a") as out:
        out.write(" ".join(data) + "\\n")
    if "poison" in data:
        raise RuntimeError("poison in batch")
    return None
'''


def read_all(kinesis, stream: str) -> list[dict]:
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return kinesis.get_records(ShardIterator=iterator)["Records"]


def test_bisect_retries_and_on_failure_destination(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "bisect-src", shards=1)
    create_stream(kinesis, "bisect-dlq", shards=1)
    src = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/bisect-src"
    dlq = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/bisect-dlq"
    out = tmp_path / "bisect.txt"
    create_function(lam, "bisect-fn", {"b.py": BATCH_RECORDER_HANDLER}, "b.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    data = ["r0", "r1", "r2", "r3", "r4", "poison", "r6", "r7"]
    put = kinesis.put_records(StreamName="bisect-src", Records=[{"PartitionKey": "k", "Data": d.encode()} for d in data])
    poison_seq = put["Records"][5]["SequenceNumber"]
    lam.create_event_source_mapping(FunctionName="bisect-fn", EventSourceArn=src, BatchSize=8,
                                    StartingPosition="TRIM_HORIZON", BisectBatchOnFunctionError=True,
                                    MaximumRetryAttempts=1,
                                    DestinationConfig={"OnFailure": {"Destination": dlq}})
    failures = wait_for(lambda: read_all(kinesis, "bisect-dlq"), what="the OnFailure record")
    assert len(failures) == 1
    record = json.loads(failures[0]["Data"])
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bisect-fn"
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["version"] == "1.0"
    info = record["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == src and info["shardId"] == "shardId-000000000000"
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_seq
    batches = wait_for(lambda: [line.split() for line in out.read_text().splitlines()]
                       if "r6 r7" in out.read_text() else None, what="the last half")
    # The whole batch, then halves of the failing half down to the poison record, retried once.
    assert batches == [data, data[:4], data[4:], data[4:6], data[4:5], ["poison"], ["poison"], data[6:]]


def test_filter_criteria_and_parallelization_keep_key_order(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "filtered", shards=1)
    out = tmp_path / "filtered.txt"
    create_function(lam, "filtered-fn", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    bad = client_error(lam.create_event_source_mapping, FunctionName="filtered-fn",
                       EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/filtered",
                       StartingPosition="TRIM_HORIZON", FilterCriteria={"Filters": [{"Pattern": "not json"}]})
    assert bad.response["Error"]["Code"] == "InvalidParameterValueException"
    records = []
    for i in range(60):
        key = f"key{i % 6}"
        kind = "drop" if i % 4 == 0 else "keep"
        records.append({"PartitionKey": key, "Data": json.dumps({"kind": kind, "key": key, "n": i}).encode()})
    records.append({"PartitionKey": "raw", "Data": b"not json at all"})
    kinesis.put_records(StreamName="filtered", Records=records)
    mapping = lam.create_event_source_mapping(
        FunctionName="filtered-fn", EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/filtered",
        StartingPosition="TRIM_HORIZON", BatchSize=20, ParallelizationFactor=5,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"kind": ["keep"]}})}]})
    assert mapping["ParallelizationFactor"] == 5
    assert mapping["FilterCriteria"]["Filters"][0]["Pattern"] == '{"data": {"kind": ["keep"]}}'
    wanted = {json.dumps({"kind": "keep", "key": f"key{i % 6}", "n": i}) for i in range(60) if i % 4}

    def lines():
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    wait_for(lambda: len(lines()) >= len(wanted), what="the kept records")
    got = lines()
    assert all(d["kind"] == "keep" for d in got)
    assert {json.dumps(d) for d in got} == wanted
    for key in {d["key"] for d in got}:
        numbers = [d["n"] for d in got if d["key"] == key]
        assert numbers == sorted(numbers), f"{key} out of order: {numbers}"


# Kills its own process (like an OOM kill) the first time it sees a batch, then records.
SELF_KILL_HANDLER = '''import base64, os, signal

def handler(event, context):
    marker = os.environ["OUT"] + ".killed"
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    with open(os.environ["OUT"], "a") as out:
        for r in event["Records"]:
            out.write(base64.b64decode(r["kinesis"]["data"]).decode() + "\\n")
    return None
'''


def test_function_process_killed_mid_batch_is_retried(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "selfkill", shards=1)
    out = tmp_path / "selfkill.txt"
    create_function(lam, "selfkill-fn", {"k.py": SELF_KILL_HANDLER}, "k.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    direct = lam.invoke(FunctionName="selfkill-fn", Payload=json.dumps({"Records": []}))
    assert direct["FunctionError"] == "Unhandled"
    assert json.loads(direct["Payload"].read())["errorType"] == "Runtime.ExitError"
    os.remove(str(out) + ".killed")
    kinesis.put_records(StreamName="selfkill", Records=[{"PartitionKey": "k", "Data": f"m{i}".encode()}
                                                        for i in range(5)])
    lam.create_event_source_mapping(FunctionName="selfkill-fn", StartingPosition="TRIM_HORIZON",
                                    EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/selfkill")
    lines = wait_for(lambda: out.read_text().split() if out.exists() else None, what="the retried batch")
    assert lines == [f"m{i}" for i in range(5)]


def test_split_while_the_mapping_runs_parents_before_children(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "resharded", shards=1)
    out = tmp_path / "resharded.txt"
    create_function(lam, "reshard-fn", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    keys = [f"key{i}" for i in range(8)]
    kinesis.put_records(StreamName="resharded", Records=[{"PartitionKey": k, "Data": f"{k}:0".encode()} for k in keys])
    lam.create_event_source_mapping(FunctionName="reshard-fn", StartingPosition="TRIM_HORIZON", BatchSize=3,
                                    EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/resharded")
    kinesis.split_shard(StreamName="resharded", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2**127))
    wait_status(kinesis, "resharded")
    for n in range(1, 4):
        kinesis.put_records(StreamName="resharded",
                            Records=[{"PartitionKey": k, "Data": f"{k}:{n}".encode()} for k in keys])
    wanted = {f"{k}:{n}" for k in keys for n in range(4)}
    wait_for(lambda: out.exists() and set(out.read_text().split()) >= wanted, what="parent and child records")
    lines = out.read_text().split()
    for k in keys:
        order = [int(line.split(":")[1]) for line in lines if line.split(":")[0] == k]
        assert order == sorted(order), f"{k}: {order}"


# Sums the records' numbers in the window's state; the final invocation writes the total to OUT.
TUMBLING_HANDLER = '''import base64, json, os

def handler(event, context):
    state = event.get("state") or {}
    total = state.get("sum", 0) + sum(int(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"])
    calls = state.get("calls", 0) + 1
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps({"final": event["isFinalInvokeForWindow"], "records": len(event["Records"]),
                              "sum": total, "shard": event["shardId"], "window": event["window"],
                              "early": event["isWindowTerminatedEarly"]}) + "\\n")
    return {"state": {"sum": total, "calls": calls}}
'''


def test_tumbling_window_state_sums(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "tumbling", shards=1)
    out = tmp_path / "tumbling.txt"
    create_function(lam, "tumbling-fn", {"t.py": TUMBLING_HANDLER}, "t.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    mapping = lam.create_event_source_mapping(FunctionName="tumbling-fn", StartingPosition="TRIM_HORIZON",
                                              BatchSize=2, TumblingWindowInSeconds=2,
                                              EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/tumbling")
    assert mapping["TumblingWindowInSeconds"] == 2
    # One PutRecords call: one arrival time, so one window.
    kinesis.put_records(StreamName="tumbling", Records=[{"PartitionKey": "k", "Data": str(n).encode()}
                                                        for n in range(1, 7)])

    def calls():
        lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        return lines if any(c["final"] for c in lines) else None

    lines = wait_for(calls, what="the final window invocation")
    assert [c["records"] for c in lines] == [2, 2, 2, 0]
    assert [c["sum"] for c in lines] == [3, 10, 21, 21]
    assert [c["final"] for c in lines] == [False, False, False, True]
    assert all(c["shard"] == "shardId-000000000000" and c["early"] is False for c in lines)
    assert len({json.dumps(c["window"]) for c in lines}) == 1
    window = lines[0]["window"]
    assert window["start"] < window["end"] and window["end"].endswith("Z")


def test_enhanced_fan_out_consumer_as_the_source(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "efo-src", shards=2)
    stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/efo-src"
    consumer = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="lambda-efo")["Consumer"]
    wait_for(lambda: kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
             ["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE", what="consumer ACTIVE")
    out = tmp_path / "efo.txt"
    create_function(lam, "efo-fn", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    missing = client_error(lam.create_event_source_mapping, FunctionName="efo-fn", StartingPosition="LATEST",
                           EventSourceArn=f"{stream_arn}/consumer/nobody:1")
    assert missing.response["Error"]["Code"] == "InvalidParameterValueException"
    mapping = lam.create_event_source_mapping(FunctionName="efo-fn", StartingPosition="LATEST",
                                              EventSourceArn=consumer["ConsumerARN"])
    assert mapping["EventSourceArn"] == consumer["ConsumerARN"]
    sent = [f"e{i}" for i in range(20)]
    kinesis.put_records(StreamName="efo-src", Records=[{"PartitionKey": f"k{i}", "Data": d.encode()}
                                                       for i, d in enumerate(sent)])
    wait_for(lambda: out.exists() and sorted(out.read_text().split()) == sorted(sent), what="pushed records")


def test_update_function_code_runs_the_new_code(lambda_server):
    lam = client(lambda_server, "lambda")
    first = create_function(lam, "versions-fn", {"v.py": "def h(e, c):\n    return 'one'\n"}, "v.h")
    assert json.loads(lam.invoke(FunctionName="versions-fn")["Payload"].read()) == "one"
    updated = lam.update_function_code(FunctionName="versions-fn",
                                       ZipFile=zip_of({"v.py": "def h(e, c):\n    return 'two'\n"}))
    assert updated["CodeSha256"] != first["CodeSha256"] and updated["RevisionId"] != first["RevisionId"]
    assert json.loads(lam.invoke(FunctionName="versions-fn")["Payload"].read()) == "two"
    stale = client_error(lam.update_function_configuration, FunctionName="versions-fn", Timeout=5,
                         RevisionId=first["RevisionId"])
    assert stale.response["Error"]["Code"] == "PreconditionFailedException"
    assert stale.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    got = lam.get_function(FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:versions-fn")
    assert got["Configuration"]["CodeSha256"] == updated["CodeSha256"]
    lam.delete_function(FunctionName="versions-fn")
    assert client_error(lam.invoke, FunctionName="versions-fn").response["Error"]["Code"] == "ResourceNotFoundException"


def test_missing_interpreter_or_awslambdaric_is_a_clear_error(server_factory, tmp_path):
    # An interpreter that cannot import awslambdaric, as Python would say it.
    fake = tmp_path / "python-without-ric"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'awslambdaric'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    for interpreter, wanted in [(str(fake), "cannot import awslambdaric"),
                                (str(tmp_path / "no-such-python"), "cannot be started")]:
        server = server_factory(args=["--lambda-python", interpreter])
        lam = client(server, "lambda")
        create_function(lam, "py-fn", {"a.py": "def h(e, c):\n    return 1\n"}, "a.h")
        err = client_error(lam.invoke, FunctionName="py-fn")
        assert err.response["Error"]["Code"] == "InvalidRuntimeException"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 502
        message = err.response["Error"]["Message"]
        assert wanted in message and interpreter in message and "--lambda-python" in message
        server.stop()


def test_code_from_a_local_directory(lambda_server, tmp_path):
    lam = client(lambda_server, "lambda")
    code = tmp_path / "src"
    code.mkdir()
    (code / "local.py").write_text("def h(e, c):\n    return 'from disk'\n")
    lam.create_function(FunctionName="local-fn", Runtime="python3.12", Role=ROLE, Handler="local.h",
                        Code={"S3Bucket": "millrace-local", "S3Key": str(code)})
    assert json.loads(lam.invoke(FunctionName="local-fn")["Payload"].read()) == "from disk"
    (code / "local.py").write_text("def h(e, c):\n    return 'edited'\n")
    lam.update_function_configuration(FunctionName="local-fn", Description="restart")  # retires warm ones
    assert json.loads(lam.invoke(FunctionName="local-fn")["Payload"].read()) == "edited"
    relative = client_error(lam.create_function, FunctionName="local-2", Runtime="python3.12", Role=ROLE,
                            Handler="local.h", Code={"S3Bucket": "millrace-local", "S3Key": "src"})
    assert relative.response["Error"]["Code"] == "InvalidParameterValueException"
    other = client_error(lam.create_function, FunctionName="local-3", Runtime="python3.12", Role=ROLE,
                         Handler="local.h", Code={"S3Bucket": "some-bucket", "S3Key": "k.zip"})
    assert other.response["Error"]["Code"] == "InvalidParameterValueException"
    lam.delete_function(FunctionName="local-fn")
    assert (code / "local.py").exists()


ROLE_CALLER_HANDLER = '''import boto3

def handler(event, context):
    # AWS_ENDPOINT_URL points at Millrace; the credentials are the execution role's session.
    identity = boto3.client("sts").get_caller_identity()
    kinesis = boto3.client("kinesis")
    kinesis.put_record(StreamName=event["stream"], PartitionKey="p", Data=b"from the function")
    try:
        kinesis.delete_stream(StreamName=event["stream"])
        deleted = True
    except Exception as error:
        deleted = type(error).__name__ + ": " + str(error)
    return {"arn": identity["Arn"], "deleted": deleted}
'''


def test_enforced_authorization_and_the_execution_role(server_factory):
    key, secret = "AKIAMILLRACELAMBDA01", "root-secret-for-the-lambda-tests"
    server = server_factory(args=lambda_args() + ["--auth", "enforce", "--root-access-key-id", key,
                                                  "--root-secret-access-key", secret], name="lambda-enforce")

    def root(service):
        return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
                            aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 1}))

    iam, lam, kinesis = root("iam"), root("lambda"), root("kinesis")
    # Unsigned or wrongly signed calls are refused before anything runs.
    stranger = boto3.client("lambda", endpoint_url=server.endpoint, region_name=REGION,
                            aws_access_key_id="AKIANOBODY0000000000", aws_secret_access_key="x",
                            config=botocore.config.Config(retries={"max_attempts": 1}))
    refused = client_error(stranger.list_functions)
    assert refused.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert refused.response["Error"]["Code"] == "UnrecognizedClientException"
    create_stream(kinesis, "role-target", shards=1)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="fn-role", PolicyName="put-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:PutRecord",
                                               "Resource": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/role-target"}]}))
    lam.create_function(FunctionName="role-fn", Runtime="python3.12", Role=role, Handler="r.handler", Timeout=30,
                        Code={"ZipFile": zip_of({"r.py": ROLE_CALLER_HANDLER})},
                        Environment={"Variables": {"API_TOKEN": "tok-5ecret-value"}})
    out = lam.invoke(FunctionName="role-fn", Payload=json.dumps({"stream": "role-target"}))
    assert "FunctionError" not in out, out["Payload"].read()
    body = json.loads(out["Payload"].read())
    assert body["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/role-fn"
    assert isinstance(body["deleted"], str) and "AccessDenied" in body["deleted"]
    records = read_all(kinesis, "role-target")
    assert [r["Data"] for r in records] == [b"from the function"]
    # The audit log has the control-plane calls, without code, variables or payloads.
    log = server.data_dir / "audit" / "audit.log"
    events = wait_for(lambda: [json.loads(line) for line in log.read_text().splitlines()]
                      if log.exists() and "CreateFunction" in log.read_text() else None, what="audit lines")
    created = [e for e in events if e["eventName"] == "CreateFunction"]
    assert created and created[0]["eventSource"] == "lambda.amazonaws.com"
    assert created[0]["requestParameters"]["Code"]["ZipFile"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert not [e for e in events if e["eventName"] == "Invoke"]
    text = log.read_text()
    assert "tok-5ecret-value" not in text and secret not in text


def test_record_age_ends_in_the_on_failure_destination(server_factory, tmp_path):
    # One second of MaximumRecordAgeInSeconds lasts 10 ms: 60 s is 0.6 s.
    server = server_factory(args=lambda_args() + ["--lambda-record-age-second-ms", "10"], name="lambda-age")
    kinesis = server.client()
    lam = client(server, "lambda")
    create_stream(kinesis, "aged", shards=1)
    create_stream(kinesis, "aged-dlq", shards=1)
    out = tmp_path / "aged.txt"
    create_function(lam, "aged-fn", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    mapping = lam.create_event_source_mapping(
        FunctionName="aged-fn", EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/aged",
        StartingPosition="TRIM_HORIZON", Enabled=False, MaximumRecordAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/aged-dlq"}})
    old = kinesis.put_records(StreamName="aged", Records=[{"PartitionKey": "k", "Data": f"old{i}".encode()}
                                                          for i in range(3)])["Records"]
    time.sleep(1.5)
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
    failures = wait_for(lambda: read_all(kinesis, "aged-dlq"), what="the RecordAgeExceeded record")
    record = json.loads(failures[0]["Data"])
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    info = record["KinesisBatchInfo"]
    assert info["batchSize"] == 3
    assert info["startSequenceNumber"] == old[0]["SequenceNumber"]
    assert info["endSequenceNumber"] == old[2]["SequenceNumber"]
    kinesis.put_record(StreamName="aged", PartitionKey="k", Data=b"fresh")
    wait_for(lambda: out.exists() and out.read_text().split() == ["fresh"], what="the fresh record")


def test_stream_and_function_deletion_under_a_mapping(server_factory, tmp_path):
    # Streams go at once (no DELETING delay), so the shard's wake-up channel closes at once.
    server = server_factory(args=lambda_args() + ["--delete-stream-ms", "0"], name="lambda-deletion")
    kinesis = server.client()
    lam = client(server, "lambda")
    create_stream(kinesis, "doomed", shards=1)
    out = tmp_path / "doomed.txt"
    create_function(lam, "doomed-fn", {"rec.py": RECORDER_HANDLER}, "rec.handler",
                    Environment={"Variables": {"OUT": str(out)}})
    mapping = lam.create_event_source_mapping(FunctionName="doomed-fn", StartingPosition="TRIM_HORIZON",
                                              EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/doomed")
    kinesis.put_record(StreamName="doomed", PartitionKey="k", Data=b"before")
    wait_for(lambda: out.exists() and out.read_text().split() == ["before"], what="the first record")
    kinesis.delete_stream(StreamName="doomed")
    wait_for(lambda: lam.get_event_source_mapping(UUID=mapping["UUID"])["LastProcessingResult"]
             == "PROBLEM: Stream not found", what="the mapping noticing the deleted stream")
    # The mapping outlives its function, as on AWS, and can still be deleted.
    lam.delete_function(FunctionName="doomed-fn")
    assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
    assert lam.delete_event_source_mapping(UUID=mapping["UUID"])["State"] == "Deleting"


PID_HANDLER = '''import os, time

def handler(event, context):
    time.sleep(0.5)
    return os.getpid()
'''


def test_concurrency_limit_and_warm_reuse(server_factory):
    import concurrent.futures
    server = server_factory(args=lambda_args() + ["--lambda-concurrency", "2"], name="lambda-concurrency")
    lam = client(server, "lambda")
    create_function(lam, "pid-fn", {"p.py": PID_HANDLER}, "p.handler")

    def invoke(_):
        return json.loads(client(server, "lambda").invoke(FunctionName="pid-fn")["Payload"].read())

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        pids = list(pool.map(invoke, range(6)))
    # Six overlapping invocations share at most two environments, which stay warm.
    assert len(set(pids)) <= 2
    assert set([invoke(0)]) <= set(pids)


# A runtime that ignores the Runtime API going away (it would outlive a killed parent).
STUBBORN_BOOTSTRAP = '''#!/bin/sh
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo $$ > "$PID_FILE"
while true; do
  HEADERS="$(mktemp)"
  if curl -sS -f -D "$HEADERS" -o /dev/null "$API/invocation/next"; then
    ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | tr -d '\\r' | cut -d' ' -f2)"
    curl -sS -f -X POST -d '"ok"' "$API/invocation/$ID/response" >/dev/null
  else
    sleep 1
  fi
  rm -f "$HEADERS"
done
'''


@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists(), reason="needs util-linux setpriv")
def test_runtimes_die_with_millrace_after_kill9(server_factory, tmp_path):
    server = server_factory(args=lambda_args(), name="lambda-orphans")
    lam = client(server, "lambda")
    pid_file = tmp_path / "runtime.pid"
    create_function(lam, "stubborn", {"bootstrap": STUBBORN_BOOTSTRAP}, "x", runtime="provided.al2023",
                    modes={"bootstrap": 0o755}, Environment={"Variables": {"PID_FILE": str(pid_file)}})
    assert json.loads(lam.invoke(FunctionName="stubborn")["Payload"].read()) == "ok"
    pid = int(pid_file.read_text())
    os.kill(pid, 0)
    server.kill9()

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for its reaper is gone too.
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(gone, timeout=30, what="the runtime exiting with its parent")


# Writes each record's data as hex (the event exactly as delivered).
HEX_HANDLER = '''import base64, json, os

def handler(event, context):
    with open(os.environ["OUT"], "a") as out:
        for r in event["Records"]:
            out.write(json.dumps({"pk": r["kinesis"]["partitionKey"],
                                  "hex": base64.b64decode(r["kinesis"]["data"]).hex()}) + "\\n")
'''


def test_kpl_aggregated_records_are_passed_through(lambda_server, tmp_path):
    from aws_kinesis_agg.aggregator import RecordAggregator
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "aggregated", shards=1)
    out = tmp_path / "aggregated.txt"
    create_function(lam, "agg-fn", {"h.py": HEX_HANDLER}, "h.handler", Environment={"Variables": {"OUT": str(out)}})
    aggregator = RecordAggregator()
    aggregator.add_user_record("a", b"one")
    aggregator.add_user_record("b", b"two")
    pk, _, data = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName="aggregated", PartitionKey=pk, Data=data)
    lam.create_event_source_mapping(FunctionName="agg-fn", StartingPosition="TRIM_HORIZON",
                                    EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/aggregated")
    got = wait_for(lambda: [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else None,
                   what="the aggregated record")
    # One record, the aggregate as stored (magic F3 89 9A C2 first), as Lambda delivers it.
    assert got == [{"pk": pk, "hex": data.hex()}]
    assert got[0]["hex"].startswith("f3899ac2")


# Returns a state past 1 MB on every call that has records.
BIG_STATE_HANDLER = '''import json, os

def handler(event, context):
    with open(os.environ["OUT"], "a") as out:
        out.write(json.dumps({"records": len(event["Records"]), "final": event["isFinalInvokeForWindow"],
                              "early": event["isWindowTerminatedEarly"],
                              "fresh": "blob" not in (event.get("state") or {})}) + "\\n")
    if event["Records"]:
        return {"state": {"blob": "x" * 1100000}}
    return {}
'''


def test_tumbling_window_terminated_early_past_1_mb(lambda_server, tmp_path):
    kinesis = lambda_server.client()
    lam = client(lambda_server, "lambda")
    create_stream(kinesis, "bigstate", shards=1)
    out = tmp_path / "bigstate.txt"
    create_function(lam, "bigstate-fn", {"b.py": BIG_STATE_HANDLER}, "b.handler", MemorySize=512,
                    Environment={"Variables": {"OUT": str(out)}})
    kinesis.put_records(StreamName="bigstate", Records=[{"PartitionKey": "k", "Data": b"1"} for _ in range(4)])
    lam.create_event_source_mapping(FunctionName="bigstate-fn", StartingPosition="TRIM_HORIZON", BatchSize=2,
                                    TumblingWindowInSeconds=900,
                                    EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/bigstate")

    def calls():
        lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        return lines if len(lines) >= 4 else None

    lines = wait_for(calls, what="two early-terminated windows")
    assert lines[:4] == [
        {"records": 2, "final": False, "early": False, "fresh": True},
        {"records": 0, "final": True, "early": True, "fresh": False},
        {"records": 2, "final": False, "early": False, "fresh": True},
        {"records": 0, "final": True, "early": True, "fresh": False},
    ]
