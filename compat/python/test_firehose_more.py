"""More Data Firehose against the real binary, on one module-scoped server: multipart uploads into
the embedded store and into moto_server (a bucket with an endpoint of its own), CustomTimeZone,
the DELETING state, encryption of the buffered records with Millrace's KMS, and Kinesis arrival
times in the prefixes of stream-sourced objects."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import _Factory
from millrace_testlib import client_error
from test_firehose import (
    KEY_RE,
    ROLE,
    client,
    create,
    free_port,
    read_object,
    records,
    s3_destination,
    wait_objects,
)

PART = 5 << 20  # AWS's smallest part, which moto_server and s3s-fs both insist on


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    import socket

    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory, request, moto):
    base = tmp_path_factory.mktemp("firehose_more")
    key_file = base / "master.key"
    key_file.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    factory = _Factory(base)
    server = factory(
        name="more",
        args=[
            "--master-key-file", str(key_file),
            "--delete-stream-ms", "3000",
            "--s3-multipart-part-bytes", str(PART),
            "--s3-bucket-endpoint", f"outside-bucket={moto}",
        ],
    )
    yield server
    factory.close(failed=request.session.testsfailed > 0)


@pytest.fixture(scope="module")
def fh(server):
    return client(server, "firehose")


@pytest.fixture(scope="module")
def s3(server):
    return client(server, "s3")


def wait_bytes(s3, bucket: str, size: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        objects = wait_objects(s3, bucket, 1, timeout=timeout)
        if sum(o["Size"] for o in objects) >= size:
            return objects
        assert time.monotonic() < deadline, f"{bucket}: {sum(o['Size'] for o in objects)} of {size} bytes"
        time.sleep(0.2)


def test_large_objects_go_up_in_parts_to_the_embedded_store_and_a_bucket_endpoint(fh, s3, moto):
    outside = client(None, "s3", moto)
    outside.create_bucket(Bucket="outside-bucket")
    # 12 records of 512 KiB: with SizeInMBs 6 (and a long interval) exactly one 6 MiB object,
    # uploaded as a 5 MiB part and a 1 MiB part.
    sent = [os.urandom(512 << 10) for _ in range(12)]
    for name, bucket in (("parts-local", "local-parts-bucket"), ("parts-outside", "outside-bucket")):
        create(fh, DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_destination(bucket, size=6, interval=900))
        for start in (0, 6):
            reply = fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in sent[start : start + 6]])
            assert reply["FailedPutCount"] == 0
    for store, bucket, name in ((s3, "local-parts-bucket", "parts-local"), (outside, "outside-bucket", "parts-outside")):
        objects = wait_bytes(store, bucket, 6 << 20)
        assert len(objects) == 1
        obj = objects[0]
        assert re.fullmatch(KEY_RE.format(name=name), obj["Key"])
        assert read_object(store, bucket, obj["Key"]) == b"".join(sent)
        # A multipart object's ETag is the MD5 of its parts' MD5s, followed by the part count.
        etag = store.head_object(Bucket=bucket, Key=obj["Key"])["ETag"].strip('"')
        assert etag.endswith("-2"), etag
        whole = b"".join(sent)
        parts = hashlib.md5(hashlib.md5(whole[:PART]).digest() + hashlib.md5(whole[PART:]).digest()).hexdigest()
        assert etag == f"{parts}-2"
    # Each bucket went only to its own store.
    assert "outside-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "local-parts-bucket" not in [b["Name"] for b in outside.list_buckets()["Buckets"]]
    # No multipart upload was left behind.
    assert not outside.list_multipart_uploads(Bucket="outside-bucket").get("Uploads")


def key_time(key: str, name: str) -> datetime.datetime:
    stamp = re.fullmatch(KEY_RE.format(name=name), key)["ts"]
    return datetime.datetime.strptime(stamp, "%Y-%m-%d-%H-%M-%S")


def test_custom_time_zone_evaluates_prefixes_and_names_in_the_zone(fh, s3):
    for zone in ("EST", "Mars/Olympus_Mons"):
        err = client_error(
            fh.create_delivery_stream, DeliveryStreamName="bad-zone",
            ExtendedS3DestinationConfiguration=s3_destination("zone-bucket", CustomTimeZone=zone),
        )
        assert err.response["Error"]["Code"] == "InvalidArgumentException"
        assert zone in err.response["Error"]["Message"]
    assert "bad-zone" not in fh.list_delivery_streams(Limit=100)["DeliveryStreamNames"]

    create(
        fh, DeliveryStreamName="kolkata",
        ExtendedS3DestinationConfiguration=s3_destination("zone-bucket", CustomTimeZone="Asia/Kolkata"),
    )
    create(
        fh, DeliveryStreamName="kolkata-expr",
        ExtendedS3DestinationConfiguration=s3_destination(
            "zone-bucket", CustomTimeZone="Asia/Kolkata",
            Prefix="expr/!{timestamp:yyyy-MM-dd'T'HH}/", ErrorOutputPrefix="err/!{firehose:error-output-type}/",
        ),
    )
    described = fh.describe_delivery_stream(DeliveryStreamName="kolkata")["DeliveryStreamDescription"]
    assert described["Destinations"][0]["ExtendedS3DestinationDescription"]["CustomTimeZone"] == "Asia/Kolkata"
    before = datetime.datetime.now(datetime.timezone.utc)
    fh.put_record(DeliveryStreamName="kolkata", Record={"Data": b"namaste\n"})
    fh.put_record(DeliveryStreamName="kolkata-expr", Record={"Data": b"namaste\n"})
    objects = wait_objects(s3, "zone-bucket", 2)
    after = datetime.datetime.now(datetime.timezone.utc)
    offset = datetime.timedelta(hours=5, minutes=30)  # Kolkata has no summer time
    low = (before + offset).replace(tzinfo=None, microsecond=0) - datetime.timedelta(seconds=1)
    high = (after + offset).replace(tzinfo=None)
    plain = next(o["Key"] for o in objects if not o["Key"].startswith("expr/"))
    local = key_time(plain, "kolkata")
    assert low <= local <= high, (plain, low, high)
    assert plain.startswith(local.strftime("%Y/%m/%d/%H/"))
    expr = next(o["Key"] for o in objects if o["Key"].startswith("expr/"))
    local = key_time(expr, "kolkata-expr")
    assert low <= local <= high, (expr, low, high)
    assert expr.startswith(local.strftime("expr/%Y-%m-%dT%H/"))


def test_deleting_state_then_gone_without_delivering(fh, s3):
    create(fh, DeliveryStreamName="doomed", ExtendedS3DestinationConfiguration=s3_destination("doomed-bucket", size=5, interval=900))
    fh.put_record_batch(DeliveryStreamName="doomed", Records=[{"Data": r} for r in records(20, "doomed")])
    assert fh.delete_delivery_stream(DeliveryStreamName="doomed", AllowForceDelete=False)["ResponseMetadata"]["HTTPStatusCode"] == 200
    description = fh.describe_delivery_stream(DeliveryStreamName="doomed")["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "DELETING"
    assert "doomed" in fh.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    err = client_error(fh.put_record, DeliveryStreamName="doomed", Record={"Data": b"late"})
    assert err.response["Error"]["Code"] == "ResourceNotFoundException"
    err = client_error(
        fh.update_destination, DeliveryStreamName="doomed", CurrentDeliveryStreamVersionId="1",
        DestinationId="destinationId-000000000001", ExtendedS3DestinationUpdate={"Prefix": "x/"},
    )
    assert err.response["Error"]["Code"] == "ResourceInUseException"
    err = client_error(fh.create_delivery_stream, DeliveryStreamName="doomed", ExtendedS3DestinationConfiguration=s3_destination("doomed-bucket"))
    assert err.response["Error"]["Code"] == "ResourceInUseException"
    fh.delete_delivery_stream(DeliveryStreamName="doomed")  # deleting a DELETING stream is allowed
    deadline = time.monotonic() + 30
    while True:
        try:
            fh.describe_delivery_stream(DeliveryStreamName="doomed")
        except fh.exceptions.ResourceNotFoundException as error:
            assert error.response["Error"]["Message"] == "Firehose doomed under account 000000000000 not found."
            break
        assert time.monotonic() < deadline, "still DELETING"
        time.sleep(0.1)
    assert "doomed" not in fh.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    # The buffered records were deleted with the stream, not delivered.
    with pytest.raises(Exception):
        s3.list_objects_v2(Bucket="doomed-bucket")["Contents"]
    # The name can be used again.
    create(fh, DeliveryStreamName="doomed", ExtendedS3DestinationConfiguration=s3_destination("doomed-bucket"))


def firehose_files(server) -> list[Path]:
    return [p for p in (server.data_dir / "firehose").rglob("*") if p.is_file()]


def test_buffered_records_are_encrypted_at_rest(server, fh, s3):
    kms = client(server, "kms")
    key_arn = kms.create_key(Description="firehose at rest")["KeyMetadata"]["Arn"]
    for name, config in (
        ("at-rest-cmk", {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": key_arn}),
        ("at-rest-owned", {"KeyType": "AWS_OWNED_CMK"}),
    ):
        bucket = f"{name}-bucket"
        create(fh, DeliveryStreamName=name, ExtendedS3DestinationConfiguration=s3_destination(bucket, size=5, interval=900))
        before = records(20, f"cleartext-{name}")
        reply = fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in before])
        assert reply["Encrypted"] is False
        fh.start_delivery_stream_encryption(DeliveryStreamName=name, DeliveryStreamEncryptionConfigurationInput=config)
        secret = records(30, f"secretmark-{name}")
        reply = fh.put_record_batch(DeliveryStreamName=name, Records=[{"Data": r} for r in secret])
        assert reply["Encrypted"] is True
        assert fh.put_record(DeliveryStreamName=name, Record={"Data": secret[0]})["Encrypted"] is True
        stored = b"".join(p.read_bytes() for p in firehose_files(server))
        assert b"secretmark" not in stored, "an encrypted stream's records reached the disk in the clear"
        assert f"cleartext-{name}".encode() in stored, "records written before Start stay as they were"
        # Delivery opens them: the objects hold the plaintext, in order. A shorter interval
        # makes the buffered records due.
        fh.update_destination(
            DeliveryStreamName=name, CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
            ExtendedS3DestinationUpdate={"BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 0}},
        )
        wanted = before + secret + secret[:1]
        objects = wait_bytes(s3, bucket, len(b"".join(wanted)))
        lines = b"".join(read_object(s3, bucket, o["Key"]) for o in objects).splitlines(keepends=True)
        assert sorted(lines) == sorted(wanted)
    # A disabled key stops writes with KMS's reason; nothing is appended.
    kms.disable_key(KeyId=key_arn)
    err = client_error(fh.put_record, DeliveryStreamName="at-rest-cmk", Record={"Data": b"refused"})
    assert err.response["Error"]["Code"] == "InvalidKMSResourceException"
    assert "disabled" in err.response["Error"]["Message"]
    kms.enable_key(KeyId=key_arn)


def test_stream_sourced_objects_use_the_kinesis_arrival_time(server, fh, s3):
    from millrace_testlib import create_stream

    kinesis = server.client()
    create_stream(kinesis, "arrivals", shards=2)
    stream_arn = kinesis.describe_stream_summary(StreamName="arrivals")["StreamDescriptionSummary"]["StreamARN"]
    create(
        fh, DeliveryStreamName="arrivals-delivery", DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": ROLE},
        ExtendedS3DestinationConfiguration=s3_destination(
            "arrivals-bucket", size=5, interval=2,
            Prefix="t=!{timestamp:yyyy-MM-dd-HH-mm-ss-SSS}/", ErrorOutputPrefix="err/!{firehose:error-output-type}/",
        ),
    )
    sent = records(20, "arrival")
    for i, r in enumerate(sent):
        kinesis.put_record(StreamName="arrivals", PartitionKey=f"k{i}", Data=r)
    arrivals = {}
    for shard in kinesis.list_shards(StreamName="arrivals")["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName="arrivals", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for record in kinesis.get_records(ShardIterator=iterator)["Records"]:
            arrivals[record["Data"]] = record["ApproximateArrivalTimestamp"]
    assert set(arrivals) == set(sent)
    deadline = time.monotonic() + 60
    while True:
        objects = wait_objects(s3, "arrivals-bucket", 1)
        by_key = {o["Key"]: read_object(s3, "arrivals-bucket", o["Key"]).splitlines(keepends=True) for o in objects}
        if sum(len(lines) for lines in by_key.values()) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(line for lines in by_key.values() for line in lines) == sorted(sent)
    for key, lines in by_key.items():
        ms = min(round(arrivals[line].timestamp() * 1000) for line in lines)
        oldest = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
        expected = oldest.strftime("t=%Y-%m-%d-%H-%M-%S-") + f"{ms % 1000:03d}/"
        assert key.startswith(expected), (key, expected)
        # The name's time is the same instant, to the second.
        assert key[len(expected):].startswith(f"arrivals-delivery-1-{oldest.strftime('%Y-%m-%d-%H-%M-%S')}-")


def test_creating_cannot_be_deleted_and_restarts_keep_deleting_and_sealed_records(server_factory, tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(bytes(range(1, 33))).decode() + "\n")
    server = server_factory(
        name="more-restart",
        args=["--master-key-file", str(key_file), "--create-stream-ms", "1500", "--delete-stream-ms", "2000"],
    )
    fh = client(server, "firehose")
    fh.create_delivery_stream(DeliveryStreamName="early", ExtendedS3DestinationConfiguration=s3_destination("early-bucket"))
    err = client_error(fh.delete_delivery_stream, DeliveryStreamName="early")
    assert err.response["Error"]["Code"] == "ResourceInUseException"
    assert fh.describe_delivery_stream(DeliveryStreamName="early")["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "CREATING"

    create(fh, DeliveryStreamName="sealed-restart", ExtendedS3DestinationConfiguration=s3_destination("sealed-restart-bucket", size=5, interval=900))
    fh.start_delivery_stream_encryption(DeliveryStreamName="sealed-restart", DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"})
    sent = records(40, "restartmark")
    assert fh.put_record_batch(DeliveryStreamName="sealed-restart", Records=[{"Data": r} for r in sent])["Encrypted"] is True
    # "early" is ACTIVE by now: delete it, and kill the server while it is DELETING.
    deadline = time.monotonic() + 30
    while fh.describe_delivery_stream(DeliveryStreamName="early")["DeliveryStreamDescription"]["DeliveryStreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    fh.put_record(DeliveryStreamName="early", Record={"Data": b"gives it a log"})
    incarnations_before = {p.name for p in (server.data_dir / "firehose").iterdir()}
    assert len(incarnations_before) == 2
    fh.delete_delivery_stream(DeliveryStreamName="early")
    server.kill9()
    server.start()
    fh = client(server, "firehose")
    s3 = client(server, "s3")
    assert b"restartmark" not in b"".join(p.read_bytes() for p in firehose_files(server))
    deadline = time.monotonic() + 30
    while True:
        try:
            status = fh.describe_delivery_stream(DeliveryStreamName="early")["DeliveryStreamDescription"]["DeliveryStreamStatus"]
            assert status == "DELETING"
        except fh.exceptions.ResourceNotFoundException:
            break
        assert time.monotonic() < deadline, "the deletion was not finished after the restart"
        time.sleep(0.1)
    incarnations_after = {p.name for p in (server.data_dir / "firehose").iterdir()}
    assert len(incarnations_after) == 1 and incarnations_after < incarnations_before, "the deleted stream's log is gone"
    # The sealed records were rebuilt from the log after kill -9 and open with KMS.
    fh.update_destination(
        DeliveryStreamName="sealed-restart", CurrentDeliveryStreamVersionId="1", DestinationId="destinationId-000000000001",
        ExtendedS3DestinationUpdate={"BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 0}},
    )
    objects = wait_bytes(s3, "sealed-restart-bucket", len(b"".join(sent)))
    assert b"".join(read_object(s3, "sealed-restart-bucket", o["Key"]) for o in objects) == b"".join(sent)


def test_a_failed_multipart_upload_is_aborted_and_retried(server_factory, moto):
    outside = client(None, "s3", moto)
    outside.create_bucket(Bucket="refusing-bucket")
    # 1 MiB parts: moto_server refuses to complete an upload whose first part is under 5 MiB.
    server = server_factory(
        name="more-abort", args=["--s3-multipart-part-bytes", str(1 << 20), "--s3-bucket-endpoint", f"refusing-bucket={moto}"]
    )
    fh = client(server, "firehose")
    create(fh, DeliveryStreamName="refused-parts", ExtendedS3DestinationConfiguration=s3_destination("refusing-bucket", size=5, interval=0))
    fh.put_record_batch(DeliveryStreamName="refused-parts", Records=[{"Data": os.urandom(768 << 10)} for _ in range(4)])
    deadline = time.monotonic() + 60
    while server.stderr_path.read_text(errors="replace").count("EntityTooSmall") < 3:
        assert time.monotonic() < deadline, server.stderr_tail(20)
        time.sleep(0.1)
    server.kill9()
    # Every failed attempt aborted its upload: at most the one in flight at the kill is left.
    uploads = outside.list_multipart_uploads(Bucket="refusing-bucket").get("Uploads", [])
    assert len(uploads) <= 1, uploads
    assert not outside.list_objects_v2(Bucket="refusing-bucket").get("Contents")
