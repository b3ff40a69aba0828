"""Data Firehose against the real binary: delivery streams with boto3 and the AWS CLI, objects read
back from the embedded S3 store (boto3's s3 client, `aws s3`) and from an external S3-compatible
server (moto_server, started here on 127.0.0.1), every compression decoded by a standard
decompressor, kill -9 with records buffered, a Kinesis stream as source across a split, and the
HTTP endpoint protocol against a receiver that checks every header."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.config
import pytest
import snappy

from millrace_testlib import AWS_ENV, REGION, assert_validation_message, client_error

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/firehose"

# <prefix><name>-<version>-YYYY-MM-dd-HH-mm-ss-<uuid><extension>
KEY_RE = r"(?P<prefix>.*?)(?P<name>{name})-(?P<version>\d+)-(?P<ts>\d{{4}}-\d\d-\d\d-\d\d-\d\d-\d\d)-(?P<uuid>[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}})(?P<ext>.*)"


def client(server, service: str, endpoint: str | None = None):
    return boto3.client(
        service,
        endpoint_url=endpoint or server.endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60),
    )


def s3_destination(bucket: str, size: int = 1, interval: int = 0, **extra) -> dict:
    config = {
        "RoleARN": ROLE,
        "BucketARN": f"arn:aws:s3:::{bucket}",
        "BufferingHints": {"SizeInMBs": size, "IntervalInSeconds": interval},
    }
    config.update(extra)
    return config


def create(fh, **kwargs) -> str:
    """CreateDeliveryStream, then waits for ACTIVE (the tests' servers keep streams CREATING 50 ms)."""
    arn = fh.create_delivery_stream(**kwargs)["DeliveryStreamARN"]
    deadline = time.monotonic() + 30
    while fh.describe_delivery_stream(DeliveryStreamName=kwargs["DeliveryStreamName"])["DeliveryStreamDescription"][
        "DeliveryStreamStatus"
    ] != "ACTIVE":
        assert time.monotonic() < deadline, "delivery stream not ACTIVE"
        time.sleep(0.02)
    return arn


def wait_objects(s3, bucket: str, count: int, timeout: float = 60.0, prefix: str = "") -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            contents = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        except s3.exceptions.NoSuchBucket:
            contents = []
        if len(contents) >= count:
            return sorted(contents, key=lambda o: o["Key"])
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(contents)} objects in {bucket} after {timeout}s, wanted {count}")
        time.sleep(0.1)


def read_object(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def records(n: int, tag: str) -> list[bytes]:
    return [f"{tag}-{i:05d}|".encode() + os.urandom(8).hex().encode() + b"\n" for i in range(n)]


def delivered_data(s3, bucket: str, objects: list[dict], decode=lambda b: b) -> bytes:
    # Objects are named after their oldest record's arrival time, so key order is delivery order
    # except within one second; order them by the records they hold instead.
    chunks = [decode(read_object(s3, bucket, o["Key"])) for o in objects]
    return b"".join(sorted(chunks))


@pytest.fixture(scope="module")
def fh_server(module_server):
    return module_server


@pytest.fixture(scope="module")
def firehose(fh_server):
    return client(fh_server, "firehose")


@pytest.fixture(scope="module")
def s3(fh_server):
    return client(fh_server, "s3")


def test_direct_put_zero_interval_delivers_objects_named_as_aws(firehose, s3):
    arn = create(firehose, DeliveryStreamName="plain", ExtendedS3DestinationConfiguration=s3_destination("plain-bucket"))
    assert arn == f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/plain"
    description = firehose.describe_delivery_stream(DeliveryStreamName="plain")["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["VersionId"] == "1"
    assert description["DeliveryStreamType"] == "DirectPut"
    destination = description["Destinations"][0]
    assert destination["DestinationId"] == "destinationId-000000000001"
    extended = destination["ExtendedS3DestinationDescription"]
    assert extended["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 0}
    assert extended["CompressionFormat"] == "UNCOMPRESSED"
    assert extended["EncryptionConfiguration"] == {"NoEncryptionConfig": "NoEncryption"}

    sent = records(300, "plain")
    for start in range(0, len(sent), 100):
        reply = firehose.put_record_batch(
            DeliveryStreamName="plain", Records=[{"Data": r} for r in sent[start : start + 100]]
        )
        assert reply["FailedPutCount"] == 0
        assert len(reply["RequestResponses"]) == 100
        assert all(r["RecordId"] for r in reply["RequestResponses"])
    objects = wait_objects(s3, "plain-bucket", 1)
    deadline = time.monotonic() + 60
    while sum(o["Size"] for o in objects) < len(b"".join(sent)):
        assert time.monotonic() < deadline, "not every record was delivered"
        time.sleep(0.1)
        objects = wait_objects(s3, "plain-bucket", 1)
    assert sum(o["Size"] for o in objects) == len(b"".join(sent))
    pattern = re.compile(KEY_RE.format(name="plain"))
    for obj in objects:
        m = pattern.fullmatch(obj["Key"])
        assert m, obj["Key"]
        assert m["version"] == "1"
        assert m["ext"] == ""
        # The default prefix: YYYY/MM/dd/HH/ of the same instant as the suffix, in UTC.
        ts = m["ts"].split("-")
        assert m["prefix"] == f"{ts[0]}/{ts[1]}/{ts[2]}/{ts[3]}/"
    # Each object holds records as sent, in order; together, every record exactly once.
    for obj in objects:
        body = read_object(s3, "plain-bucket", obj["Key"])
        lines = body.splitlines(keepends=True)
        indexes = [sent.index(line) for line in lines]
        assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    assert delivered_data(s3, "plain-bucket", objects) == b"".join(sent)


@pytest.mark.parametrize(
    "compression,extension,decode",
    [
        ("GZIP", ".gz", gzip.decompress),
        ("ZIP", ".zip", lambda b: zipfile.ZipFile(io.BytesIO(b)).read(zipfile.ZipFile(io.BytesIO(b)).namelist()[0])),
        ("Snappy", ".snappy", lambda b: snappy.StreamDecompressor().decompress(b)),
        ("HADOOP_SNAPPY", ".snappy", lambda b: snappy.HadoopStreamDecompressor().decompress(b)),
    ],
)
def test_compression_reads_back_with_standard_decompressors(firehose, s3, compression, extension, decode):
    name = f"comp-{compression.lower().replace('_', '-')}"
    bucket = f"{name}-bucket"
    create(firehose,
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration=s3_destination(bucket, size=1, interval=1, CompressionFormat=compression),
    )
    # Compressible data larger than a Hadoop block and a Snappy frame.
    sent = [(f"{compression}-{i:06d} " * 20).encode() + b"\n" for i in range(3000)]
    for start in range(0, len(sent), 500):
        firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in sent[start : start + 500]])
    whole = b"".join(sent)
    deadline = time.monotonic() + 60
    while True:
        objects = wait_objects(s3, bucket, 1)
        data = delivered_data(s3, bucket, objects, decode)
        if len(data) >= len(whole) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert data == whole
    pattern = re.compile(KEY_RE.format(name=re.escape(name)))
    for obj in objects:
        m = pattern.fullmatch(obj["Key"])
        assert m and m["ext"] == extension, obj["Key"]
        assert obj["Size"] < sum(len(r) for r in sent)


def test_size_hint_triggers_before_the_interval(firehose, s3):
    create(firehose,
        DeliveryStreamName="sized", ExtendedS3DestinationConfiguration=s3_destination("sized-bucket", size=1, interval=60)
    )
    record = b"x" * 1023 + b"\n"
    # 1,200 KiB: one object of exactly 1 MiB (1,024 records) right away, the rest waits for the
    # 60 s interval.
    for _ in range(4):
        firehose.put_record_batch(DeliveryStreamName="sized", Records=[{"Data": record}] * 300)
    objects = wait_objects(s3, "sized-bucket", 1, timeout=30)
    assert len(objects) == 1
    assert objects[0]["Size"] == 1024 * 1024
    time.sleep(1)
    assert len(wait_objects(s3, "sized-bucket", 1)) == 1


def test_custom_prefix_expressions_and_file_extension(firehose, s3):
    create(firehose,
        DeliveryStreamName="prefixed",
        ExtendedS3DestinationConfiguration=s3_destination(
            "prefixed-bucket",
            Prefix="data/year=!{timestamp:yyyy}/month=!{timestamp:MM}/!{firehose:random-string}/",
            ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
            FileExtension=".jsonl",
        ),
    )
    firehose.put_record(DeliveryStreamName="prefixed", Record={"Data": b'{"a":1}\n'})
    (obj,) = wait_objects(s3, "prefixed-bucket", 1)
    m = re.fullmatch(r"data/year=(\d{4})/month=(\d\d)/([a-z0-9]{11})/" + KEY_RE.format(name="prefixed"), obj["Key"])
    assert m, obj["Key"]
    assert obj["Key"].endswith(".jsonl")
    assert read_object(s3, "prefixed-bucket", obj["Key"]) == b'{"a":1}\n'


def test_validation_errors_change_nothing(firehose):
    before = firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    # Prefix rules: expressions need an error prefix.
    err = client_error(
        firehose.create_delivery_stream,
        DeliveryStreamName="bad-prefix",
        ExtendedS3DestinationConfiguration=s3_destination("b", Prefix="x/!{timestamp:yyyy}/"),
    )
    assert err.response["Error"]["Code"] == "InvalidArgumentException"
    assert err.response["Error"]["Message"] == (
        "Ths supplied prefix(es) do not satisfy the following constraint: "
        "ErrorOutputPrefix cannot be null or empty when Prefix contains expressions"
    )
    unchecked = boto3.client(
        "firehose",
        endpoint_url=firehose.meta.endpoint_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    # Buffering hints out of range: the model's constraints, AWS's validation text.
    err = client_error(
        unchecked.create_delivery_stream,
        DeliveryStreamName="bad-hints",
        ExtendedS3DestinationConfiguration=s3_destination("b", size=129, interval=901),
    )
    assert err.response["Error"]["Code"] == "ValidationException"
    assert_validation_message(
        err.response["Error"]["Message"],
        [
            "Value '129' at 'extendedS3DestinationConfiguration.bufferingHints.sizeInMBs' failed to satisfy constraint: Member must have value less than or equal to 128",
            "Value '901' at 'extendedS3DestinationConfiguration.bufferingHints.intervalInSeconds' failed to satisfy constraint: Member must have value less than or equal to 900",
        ],
    )
    # Missing role.
    err = client_error(
        unchecked.create_delivery_stream,
        DeliveryStreamName="no-role",
        ExtendedS3DestinationConfiguration={"BucketARN": "arn:aws:s3:::b"},
    )
    assert err.response["Error"]["Code"] == "ValidationException"
    assert err.response["Error"]["Message"] == (
        "1 validation error detected: Value null at 'extendedS3DestinationConfiguration.roleARN' "
        "failed to satisfy constraint: Member must not be null"
    )
    # Not found.
    err = client_error(firehose.describe_delivery_stream, DeliveryStreamName="bad-prefix")
    assert err.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.response["Error"]["Message"] == f"Firehose bad-prefix under account {ACCOUNT} not found."
    assert firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"] == before


def test_update_destination_versions_and_tags(firehose, s3):
    create(firehose,
        DeliveryStreamName="updated",
        ExtendedS3DestinationConfiguration=s3_destination("updated-one", size=5, interval=300),
        Tags=[{"Key": "team", "Value": "a"}],
    )
    err = client_error(
        firehose.update_destination,
        DeliveryStreamName="updated",
        CurrentDeliveryStreamVersionId="7",
        DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={"BucketARN": "arn:aws:s3:::updated-two"},
    )
    assert err.response["Error"]["Code"] == "ConcurrentModificationException"
    firehose.update_destination(
        DeliveryStreamName="updated",
        CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={
            "BucketARN": "arn:aws:s3:::updated-two",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        },
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName="updated")["DeliveryStreamDescription"]
    assert description["VersionId"] == "2"
    assert "LastUpdateTimestamp" in description
    extended = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    # Merged: the role stays, bucket and hints change.
    assert extended["RoleARN"] == ROLE
    assert extended["BucketARN"] == "arn:aws:s3:::updated-two"
    firehose.put_record(DeliveryStreamName="updated", Record={"Data": b"after update\n"})
    (obj,) = wait_objects(s3, "updated-two", 1)
    assert re.fullmatch(KEY_RE.format(name="updated"), obj["Key"])["version"] == "2"

    firehose.tag_delivery_stream(DeliveryStreamName="updated", Tags=[{"Key": "env", "Value": "test"}])
    firehose.untag_delivery_stream(DeliveryStreamName="updated", TagKeys=["team"])
    tags = firehose.list_tags_for_delivery_stream(DeliveryStreamName="updated")
    assert tags["Tags"] == [{"Key": "env", "Value": "test"}]
    assert tags["HasMoreTags"] is False

    # This server has no master key: encryption it could not do is refused, and nothing changes.
    before = firehose.describe_delivery_stream(DeliveryStreamName="updated")["DeliveryStreamDescription"]
    err = client_error(
        firehose.start_delivery_stream_encryption,
        DeliveryStreamName="updated", DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"},
    )
    assert err.response["Error"]["Code"] == "InvalidKMSResourceException"
    assert err.response["Error"]["Message"] == "KMS is not available on this server (no master key)."
    after = firehose.describe_delivery_stream(DeliveryStreamName="updated")["DeliveryStreamDescription"]
    assert after.get("DeliveryStreamEncryptionConfiguration") == before.get("DeliveryStreamEncryptionConfiguration")
    assert after["VersionId"] == before["VersionId"]
    assert firehose.put_record(DeliveryStreamName="updated", Record={"Data": b"x"})["Encrypted"] is False
    firehose.stop_delivery_stream_encryption(DeliveryStreamName="updated")

    firehose.delete_delivery_stream(DeliveryStreamName="updated")
    deadline = time.monotonic() + 30
    while "updated" in firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]:
        assert time.monotonic() < deadline, "still DELETING"
        time.sleep(0.05)


def test_aws_cli_put_record_and_s3_ls(fh_server, firehose):
    env = dict(os.environ)
    env.update(AWS_ENV)
    aws = str(Path(sys.executable).parent / "aws")
    base = [aws, "--endpoint-url", fh_server.endpoint, "--region", REGION, "--output", "json"]
    create(firehose, DeliveryStreamName="cli", ExtendedS3DestinationConfiguration=s3_destination("cli-bucket"))
    out = subprocess.run(
        base + ["firehose", "put-record", "--delivery-stream-name", "cli", "--record", "Data=hello cli"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    assert json.loads(out.stdout)["RecordId"]
    deadline = time.monotonic() + 60
    while True:
        ls = subprocess.run(base + ["s3", "ls", "--recursive", "s3://cli-bucket/"], capture_output=True, text=True, env=env, timeout=120)
        if ls.returncode == 0 and "cli-1-" in ls.stdout:
            break
        assert time.monotonic() < deadline, ls.stdout + ls.stderr
        time.sleep(0.2)
    key = ls.stdout.split()[-1]
    cp = subprocess.run(base + ["s3", "cp", f"s3://cli-bucket/{key}", "-"], capture_output=True, env=env, timeout=120, check=True)
    # AWS CLI v1 base64-encodes the blob it is given.
    assert cp.stdout == b"hello cli"


def test_killed_with_records_buffered_delivers_after_restart(server_factory):
    server = server_factory(name="killed")
    fh = client(server, "firehose")
    create(fh,
        DeliveryStreamName="durable", ExtendedS3DestinationConfiguration=s3_destination("durable-bucket", size=5, interval=3)
    )
    sent = records(200, "durable")
    fh.put_record_batch(DeliveryStreamName="durable", Records=[{"Data": r} for r in sent[:100]])
    fh.put_record_batch(DeliveryStreamName="durable", Records=[{"Data": r} for r in sent[100:]])
    server.kill9()
    server.start()
    s3 = client(server, "s3")
    objects = wait_objects(s3, "durable-bucket", 1, timeout=60)
    assert delivered_data(s3, "durable-bucket", objects) == b"".join(sent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_endpoint():
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "moto_server exited"
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_external_s3_compatible_endpoint(server_factory, moto_endpoint):
    external = client(None, "s3", moto_endpoint)
    external.create_bucket(Bucket="external-bucket")
    server = server_factory(args=["--s3-endpoint", moto_endpoint], name="external")
    fh = client(server, "firehose")
    create(fh,
        DeliveryStreamName="outside",
        ExtendedS3DestinationConfiguration=s3_destination("external-bucket", CompressionFormat="GZIP"),
    )
    sent = records(50, "outside")
    fh.put_record_batch(DeliveryStreamName="outside", Records=[{"Data": r} for r in sent])
    deadline = time.monotonic() + 60
    while True:
        objects = wait_objects(external, "external-bucket", 1)
        data = delivered_data(external, "external-bucket", objects, gzip.decompress)
        if len(data) >= len(b"".join(sent)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert data == b"".join(sent)
    for obj in objects:
        assert re.fullmatch(KEY_RE.format(name="outside"), obj["Key"])["ext"] == ".gz"
    # Nothing went to the embedded store.
    with pytest.raises(Exception):
        client(server, "s3").list_objects_v2(Bucket="external-bucket")["Contents"]


def test_kinesis_stream_as_source_across_a_split(fh_server, firehose, s3):
    from aws_kinesis_agg.aggregator import RecordAggregator

    from millrace_testlib import create_stream, wait_status

    kinesis = fh_server.client()
    create_stream(kinesis, "fh-source", shards=1)
    stream_arn = kinesis.describe_stream_summary(StreamName="fh-source")["StreamDescriptionSummary"]["StreamARN"]
    create(
        firehose,
        DeliveryStreamName="from-stream",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration=s3_destination("source-bucket", interval=1),
    )
    description = firehose.describe_delivery_stream(DeliveryStreamName="from-stream")["DeliveryStreamDescription"]
    assert description["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"] == stream_arn
    err = client_error(firehose.put_record, DeliveryStreamName="from-stream", Record={"Data": b"x"})
    assert err.response["Error"]["Code"] == "InvalidArgumentException"
    assert err.response["Error"]["Message"] == "This operation is not permitted on KinesisStreamAsSource delivery stream type."
    err = client_error(firehose.put_record_batch, DeliveryStreamName="from-stream", Records=[{"Data": b"x"}])
    assert err.response["Error"]["Code"] == "InvalidArgumentException"

    before = records(40, "before")
    for i, r in enumerate(before):
        kinesis.put_record(StreamName="fh-source", PartitionKey=f"k{i % 7}", Data=r)
    # A KPL aggregate: its user records are delivered, not the aggregate.
    aggregator = RecordAggregator()
    aggregated = records(5, "aggregated")
    for r in aggregated:
        aggregator.add_user_record("agg", r)
    pk, ehk, data = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName="fh-source", PartitionKey=pk, Data=data)

    shard = kinesis.list_shards(StreamName="fh-source")["Shards"][0]
    kinesis.split_shard(StreamName="fh-source", ShardToSplit=shard["ShardId"], NewStartingHashKey=str(2**127))
    wait_status(kinesis, "fh-source")
    after = records(40, "after")
    for i, r in enumerate(after):
        kinesis.put_record(StreamName="fh-source", PartitionKey=f"k{i % 7}", Data=r)

    wanted = sorted(before + aggregated + after)
    deadline = time.monotonic() + 60
    while True:
        objects = wait_objects(s3, "source-bucket", 1)
        lines = sorted(b"".join(read_object(s3, "source-bucket", o["Key"]) for o in objects).splitlines(keepends=True))
        if lines == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lines == wanted


class Receiver:
    """An HTTP endpoint destination: records every request and answers from a script (500s first,
    then success, then one 413), as the service's delivery protocol expects."""

    def __init__(self, script: list[int]):
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body), "status": status})
                document = json.loads(body)
                reply = json.dumps({"requestId": document["requestId"], "timestamp": int(time.time() * 1000)}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ingest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            assert time.monotonic() < deadline, f"{len(self.requests)} requests, wanted {count}"
            time.sleep(0.05)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_destination(url: str, **extra) -> dict:
    config = {
        "EndpointConfiguration": {"Url": url, "Name": "receiver", "AccessKey": "secret-access-key"},
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        "RequestConfiguration": {
            "ContentEncoding": "GZIP",
            "CommonAttributes": [{"AttributeName": "team", "AttributeValue": "ingest"}],
        },
        "RetryOptions": {"DurationInSeconds": 60},
        "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::http-backup", "ErrorOutputPrefix": "failed/"},
        "RoleARN": ROLE,
    }
    config.update(extra)
    return config


def test_http_endpoint_refused_without_the_loopback_flag(firehose):
    err = client_error(
        firehose.create_delivery_stream,
        DeliveryStreamName="plain-http",
        HttpEndpointDestinationConfiguration=http_destination("http://127.0.0.1:9/ingest"),
    )
    assert err.response["Error"]["Code"] == "ValidationException"
    assert "https://.*" in err.response["Error"]["Message"]
    assert "plain-http" not in firehose.list_delivery_streams(Limit=100)["DeliveryStreamNames"]


def test_http_endpoint_protocol_retries_and_error_prefix(server_factory):
    receiver = Receiver([500, 503, 200, 413])
    try:
        server = server_factory(args=["--firehose-allow-http-loopback"], name="http")
        fh = client(server, "firehose")
        arn = create(fh, DeliveryStreamName="to-http", HttpEndpointDestinationConfiguration=http_destination(receiver.url))
        described = fh.describe_delivery_stream(DeliveryStreamName="to-http")["DeliveryStreamDescription"]
        endpoint = described["Destinations"][0]["HttpEndpointDestinationDescription"]["EndpointConfiguration"]
        assert endpoint == {"Url": receiver.url, "Name": "receiver"}, "the access key is never described"

        first = records(20, "first")
        fh.put_record_batch(DeliveryStreamName="to-http", Records=[{"Data": r} for r in first])
        requests = receiver.wait(3)
        ids = {r["headers"]["x-amz-firehose-request-id"] for r in requests[:3]}
        assert len(ids) == 1, "the request id is kept on every retry"
        for request in requests[:3]:
            headers = request["headers"]
            assert headers["x-amz-firehose-protocol-version"] == "1.0"
            assert headers["x-amz-firehose-source-arn"] == arn
            assert headers["x-amz-firehose-access-key"] == "secret-access-key"
            assert json.loads(headers["x-amz-firehose-common-attributes"]) == {"commonAttributes": {"team": "ingest"}}
            assert headers["content-type"] == "application/json"
            assert headers["content-encoding"] == "gzip"
            body = request["body"]
            assert body["requestId"] == headers["x-amz-firehose-request-id"]
            assert isinstance(body["timestamp"], int) and body["timestamp"] > 1_600_000_000_000
            assert [base64.b64decode(r["data"]) for r in body["records"]] == first

        # The next batch is answered 413 once: permanent, so it goes to the error prefix.
        second = records(5, "second")
        fh.put_record_batch(DeliveryStreamName="to-http", Records=[{"Data": r} for r in second])
        requests = receiver.wait(4)
        assert requests[3]["status"] == 413
        s3 = client(server, "s3")
        (obj,) = wait_objects(s3, "http-backup", 1, prefix="failed/")
        assert re.fullmatch(r"failed/http-endpoint-failed/\d{4}/\d\d/\d\d/\d\d/" + KEY_RE.format(name="to-http"), obj["Key"]), obj["Key"]
        lines = [json.loads(line) for line in read_object(s3, "http-backup", obj["Key"]).splitlines()]
        assert [base64.b64decode(line["rawData"]) for line in lines] == second
        assert all(line["attemptsMade"] == 1 and line["errorCode"] for line in lines)
        time.sleep(1)
        assert len(receiver.requests) == 4, "a 413 is not retried"

        # An endpoint that keeps failing: retried for RetryOptions.DurationInSeconds, then the
        # records go to the error prefix.
        failing = Receiver([500] * 1000)
        try:
            create(fh, DeliveryStreamName="to-failing", HttpEndpointDestinationConfiguration=http_destination(
                failing.url, RetryOptions={"DurationInSeconds": 1},
                S3Configuration={"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::failing-backup"},
            ))
            third = records(3, "third")
            fh.put_record_batch(DeliveryStreamName="to-failing", Records=[{"Data": r} for r in third])
            (obj,) = wait_objects(s3, "failing-backup", 1)
            assert obj["Key"].startswith("http-endpoint-failed/"), obj["Key"]
            lines = [json.loads(line) for line in read_object(s3, "failing-backup", obj["Key"]).splitlines()]
            assert [base64.b64decode(line["rawData"]) for line in lines] == third
            assert lines[0]["attemptsMade"] >= 2
            assert len(failing.requests) == lines[0]["attemptsMade"]
            assert len({r["headers"]["x-amz-firehose-request-id"] for r in failing.requests}) == 1
        finally:
            failing.close()
        # The access key never reaches the audit log or the server's log.
        server.stop()
        audit = (server.data_dir / "audit" / "audit.log").read_text()
        assert "CreateDeliveryStream" in audit
        assert "secret-access-key" not in audit
        assert "secret-access-key" not in server.stderr_path.read_text()
    finally:
        receiver.close()


def test_enforce_mode_authorizes_firehose_and_the_embedded_store(server_factory):
    root_key, root_secret = "AKIAMILLRACEFHROOT01", "firehose-root-secret"
    server = server_factory(
        args=["--auth", "enforce", "--root-access-key-id", root_key, "--root-secret-access-key", root_secret],
        name="enforce",
    )

    def as_(service, key, secret):
        return boto3.client(
            service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
            aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 1}),
        )

    iam = as_("iam", root_key, root_secret)
    iam.create_user(UserName="writer")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "firehose:PutRecord", "Resource": f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/guarded"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::guarded-bucket/*"},
        ],
    }
    iam.put_user_policy(UserName="writer", PolicyName="inline", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="writer")["AccessKey"]
    writer_fh = as_("firehose", key["AccessKeyId"], key["SecretAccessKey"])
    writer_s3 = as_("s3", key["AccessKeyId"], key["SecretAccessKey"])

    root_fh = as_("firehose", root_key, root_secret)
    create(root_fh, DeliveryStreamName="guarded", ExtendedS3DestinationConfiguration=s3_destination("guarded-bucket"))
    err = client_error(writer_fh.describe_delivery_stream, DeliveryStreamName="guarded")
    assert err.response["Error"]["Code"] == "AccessDeniedException"
    writer_fh.put_record(DeliveryStreamName="guarded", Record={"Data": b"allowed\n"})
    # The delivery is signed with the root credentials; the writer may read objects but not list.
    root_s3 = as_("s3", root_key, root_secret)
    (obj,) = wait_objects(root_s3, "guarded-bucket", 1)
    assert read_object(writer_s3, "guarded-bucket", obj["Key"]) == b"allowed\n"
    err = client_error(writer_s3.list_objects_v2, Bucket="guarded-bucket")
    assert err.response["Error"]["Code"] == "AccessDenied"
    # A caller without policies is denied every operation, and nothing changes.
    iam.create_user(UserName="nobody")
    nobody_key = iam.create_access_key(UserName="nobody")["AccessKey"]
    nobody = as_("firehose", nobody_key["AccessKeyId"], nobody_key["SecretAccessKey"])
    name = {"DeliveryStreamName": "guarded"}
    calls = [
        ("create_delivery_stream", {"DeliveryStreamName": "other", "ExtendedS3DestinationConfiguration": s3_destination("x")}),
        ("delete_delivery_stream", name),
        ("describe_delivery_stream", name),
        ("list_delivery_streams", {}),
        ("update_destination", {**name, "CurrentDeliveryStreamVersionId": "1", "DestinationId": "destinationId-000000000001",
                                "ExtendedS3DestinationUpdate": {"BucketARN": "arn:aws:s3:::y"}}),
        ("put_record", {**name, "Record": {"Data": b"x"}}),
        ("put_record_batch", {**name, "Records": [{"Data": b"x"}]}),
        ("tag_delivery_stream", {**name, "Tags": [{"Key": "k", "Value": "v"}]}),
        ("untag_delivery_stream", {**name, "TagKeys": ["k"]}),
        ("list_tags_for_delivery_stream", name),
        ("start_delivery_stream_encryption", name),
        ("stop_delivery_stream_encryption", name),
    ]
    for operation, params in calls:
        err = client_error(getattr(nobody, operation), **params)
        assert err.response["Error"]["Code"] == "AccessDeniedException", operation
    assert root_fh.list_delivery_streams()["DeliveryStreamNames"] == ["guarded"]
    assert root_fh.describe_delivery_stream(**name)["DeliveryStreamDescription"]["VersionId"] == "1"
    bad = as_("s3", root_key, "not-the-secret")
    err = client_error(bad.list_objects_v2, Bucket="guarded-bucket")
    assert err.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_deliveries_retry_until_the_store_is_back(server_factory):
    # The external store is down when the records arrive; they are delivered once it is up.
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = server_factory(args=["--s3-endpoint", endpoint], name="outage")
    fh = client(server, "firehose")
    create(fh, DeliveryStreamName="patient", ExtendedS3DestinationConfiguration=s3_destination("late-bucket"))
    sent = records(30, "patient")
    fh.put_record_batch(DeliveryStreamName="patient", Records=[{"Data": r} for r in sent])
    time.sleep(2)  # a few failed attempts
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        external = client(None, "s3", endpoint)
        deadline = time.monotonic() + 60
        while True:
            try:
                external.create_bucket(Bucket="late-bucket")
                break
            except Exception:
                assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        objects = wait_objects(external, "late-bucket", 1, timeout=60)
        assert delivered_data(external, "late-bucket", objects) == b"".join(sent)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_firehose_metrics_in_cloudwatch(server_factory):
    import datetime

    server = server_factory(name="metrics")
    fh = client(server, "firehose")
    create(fh, DeliveryStreamName="counted", ExtendedS3DestinationConfiguration=s3_destination("counted-bucket"))
    sent = records(40, "counted")
    fh.put_record_batch(DeliveryStreamName="counted", Records=[{"Data": r} for r in sent[:30]])
    fh.put_record(DeliveryStreamName="counted", Record={"Data": sent[30]})
    fh.put_record_batch(DeliveryStreamName="counted", Records=[{"Data": r} for r in sent[31:]])
    s3 = client(server, "s3")
    deadline = time.monotonic() + 60
    while sum(o["Size"] for o in wait_objects(s3, "counted-bucket", 1)) < len(b"".join(sent)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Minutes are handed to CloudWatch when they end, and at shutdown.
    server.restart()
    cw = client(server, "cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)

    def total(metric: str, statistic: str = "Sum") -> float:
        points = cw.get_metric_statistics(
            Namespace="AWS/Firehose", MetricName=metric,
            Dimensions=[{"Name": "DeliveryStreamName", "Value": "counted"}],
            StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=2),
            Period=60, Statistics=[statistic],
        )["Datapoints"]
        return sum(p[statistic] for p in points)

    assert total("IncomingRecords") == 40
    assert total("IncomingBytes") == len(b"".join(sent))
    assert total("IncomingPutRequests", "SampleCount") == 3
    assert total("PutRecordBatch.Records") == 39
    assert total("PutRecord.Requests", "SampleCount") == 1
    assert total("DeliveryToS3.Records") == 40
    assert total("DeliveryToS3.Bytes") == len(b"".join(sent))
    assert total("DeliveryToS3.ObjectCount") >= 1
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/Firehose")["Metrics"]}
    assert {"IncomingRecords", "DeliveryToS3.Success", "DeliveryToS3.DataFreshness"} <= names


def test_encryption_with_a_customer_managed_key(server_factory, tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    server = server_factory(args=["--master-key-file", str(key_file)], name="cmk")
    fh = client(server, "firehose")
    kms = client(server, "kms")
    create(fh, DeliveryStreamName="sealed", ExtendedS3DestinationConfiguration=s3_destination("sealed-bucket"))
    key_arn = kms.create_key(Description="firehose")["KeyMetadata"]["Arn"]
    err = client_error(
        fh.start_delivery_stream_encryption, DeliveryStreamName="sealed",
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK"},
    )
    assert err.response["Error"]["Code"] == "InvalidArgumentException"
    missing = key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    err = client_error(
        fh.start_delivery_stream_encryption, DeliveryStreamName="sealed",
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": missing},
    )
    assert err.response["Error"]["Code"] == "InvalidKMSResourceException"
    kms.disable_key(KeyId=key_arn)
    err = client_error(
        fh.start_delivery_stream_encryption, DeliveryStreamName="sealed",
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key_arn},
    )
    assert err.response["Error"]["Code"] == "InvalidKMSResourceException"
    description = fh.describe_delivery_stream(DeliveryStreamName="sealed")["DeliveryStreamDescription"]
    assert description["DeliveryStreamEncryptionConfiguration"] == {"Status": "DISABLED"}, "nothing changed"
    kms.enable_key(KeyId=key_arn)
    fh.start_delivery_stream_encryption(
        DeliveryStreamName="sealed",
        DeliveryStreamEncryptionConfigurationInput={"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key_arn},
    )
    encryption = fh.describe_delivery_stream(DeliveryStreamName="sealed")["DeliveryStreamDescription"][
        "DeliveryStreamEncryptionConfiguration"
    ]
    assert encryption == {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key_arn, "Status": "ENABLED"}


def test_stream_source_resumes_after_kill9(server_factory):
    from millrace_testlib import create_stream

    server = server_factory(name="source-kill")
    kinesis = server.client()
    create_stream(kinesis, "resumed", shards=2)
    stream_arn = kinesis.describe_stream_summary(StreamName="resumed")["StreamDescriptionSummary"]["StreamARN"]
    fh = client(server, "firehose")
    create(
        fh,
        DeliveryStreamName="resumed-delivery",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration=s3_destination("resumed-bucket", size=5, interval=2),
    )
    first = records(50, "first")
    kinesis.put_records(StreamName="resumed", Records=[{"Data": r, "PartitionKey": str(i)} for i, r in enumerate(first)])
    time.sleep(0.5)  # some or all of them taken into the delivery stream's log, none delivered yet
    server.kill9()
    server.start()
    kinesis = server.client()
    second = records(50, "second")
    kinesis.put_records(StreamName="resumed", Records=[{"Data": r, "PartitionKey": str(i)} for i, r in enumerate(second)])
    s3 = client(server, "s3")
    wanted = set(first + second)
    deadline = time.monotonic() + 60
    while True:
        objects = wait_objects(s3, "resumed-bucket", 1)
        lines = b"".join(read_object(s3, "resumed-bucket", o["Key"]) for o in objects).splitlines(keepends=True)
        if wanted <= set(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # At least once: every record, and nothing that was not sent.
    assert wanted <= set(lines)
    assert set(lines) <= wanted
