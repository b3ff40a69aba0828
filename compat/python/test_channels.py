"""Kinesis Channels through boto3: the channel lifecycle (CREATING, ACTIVE, UPDATING, DELETING,
gone), ListChannels with stream filters and pagination, records put to the source stream read back
byte for byte from objects in the embedded S3 store (boto3's s3 client against Millrace), across a
SplitShard and with a KPL aggregate, kill -9 after acknowledged puts, validation errors that change
nothing, and S3 Tables refused."""

from __future__ import annotations

import hashlib
import itertools
import os
import time

import boto3
import botocore.config
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from millrace_testlib import (
    ACCOUNT,
    AWS_ENV,
    REGION,
    assert_client_error,
    client_error,
    make_client,
    validation_entry,
    validation_message,
    wait_status,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/channel-delivery"
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{int(time.time() * 1000) % 100000}"


def s3_client(server):
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60),
    )


def on_demand_stream(kinesis, name: str) -> str:
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(kinesis, name)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def destination(bucket: str, freshness: int | None = 1, **storage) -> dict:
    config = {
        "StorageConfiguration": {
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "ExpectedBucketOwner": ACCOUNT,
            "CompressionType": "NONE",
            **storage,
        }
    }
    if freshness is not None:
        config["DataFreshnessInSeconds"] = freshness
    return config


def create_channel(kinesis, name: str, stream_arn: str, dest: dict, **extra) -> dict:
    return kinesis.create_channel(
        ChannelName=name,
        ServiceExecutionRoleARN=ROLE,
        StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "BYTE_ARRAY"}}],
        S3DestinationConfiguration=dest,
        **extra,
    )["ChannelDescription"]


def wait_channel(kinesis, arn: str, status: str = "ACTIVE", timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]
        if description["ChannelStatus"] == status:
            return description
        assert time.monotonic() < deadline, f"channel {arn} is {description['ChannelStatus']}, not {status}"
        time.sleep(0.25)


def records(n: int, tag: str) -> list[bytes]:
    return [f"{tag}-{i:05d}|".encode() + os.urandom(6).hex().encode() + b"\n" for i in range(n)]


def delivered(s3, bucket: str, want_bytes: int, timeout: float = 60.0) -> tuple[list[str], bytes]:
    """The objects of a bucket once they hold `want_bytes`; their contents joined in record order
    (objects are named by their oldest record's second, so key order is ambiguous within one)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        except s3.exceptions.NoSuchBucket:
            keys = []
        chunks = [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]
        total = sum(len(c) for c in chunks)
        if total >= want_bytes or time.monotonic() > deadline:
            return keys, b"".join(sorted(chunks))
        time.sleep(0.2)


@pytest.fixture(scope="module")
def kinesis(module_server):
    # The channel operations allow 5 calls a second; the SDK retries LimitExceededException.
    return module_server.client(max_attempts=10)


@pytest.fixture(scope="module")
def s3(module_server):
    return s3_client(module_server)


def test_channel_lifecycle_list_and_update(kinesis):
    stream = unique("life")
    stream_arn = on_demand_stream(kinesis, stream)
    other_arn = on_demand_stream(kinesis, unique("other"))
    name = unique("orders")
    created = create_channel(
        kinesis, name, stream_arn, destination("life-bucket", freshness=None, OutputKeyTemplate="orders/"),
        Tags={"team": "data"},
    )
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/{name}"
    assert created["ChannelARN"] == arn
    assert created["ChannelName"] == name
    assert created["ChannelStatus"] == "CREATING"
    assert created["ServiceExecutionRoleARN"] == ROLE
    [source] = created["StreamConfigurationList"]
    assert source["StreamARN"] == stream_arn
    assert source["RecordConfiguration"] == {"RecordFormatType": "BYTE_ARRAY"}
    summary = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert source["StreamCreationTimestamp"] == summary["StreamCreationTimestamp"]
    # The documented defaults: 300 s freshness, the dead-letter bucket is the destination bucket.
    assert created["S3DestinationConfiguration"] == {
        "DataFreshnessInSeconds": 300,
        "DeadLetterQueueS3Configuration": {
            "BucketARN": "arn:aws:s3:::life-bucket", "ExpectedBucketOwner": ACCOUNT, "ErrorOutputPrefix": "errors/",
        },
        "StorageConfiguration": {
            "BucketARN": "arn:aws:s3:::life-bucket", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "NONE",
            "OutputKeyTemplate": "orders/", "StorageClass": "STANDARD",
        },
    }
    assert created["LoggingConfiguration"] == {"CloudWatchLogs": {"Enabled": False}}
    active = wait_channel(kinesis, arn)
    assert active["ChannelId"] == created["ChannelId"]
    assert active["ChannelCreationTimestamp"] == created["ChannelCreationTimestamp"]

    # ListChannels: two more channels, one on another stream; filters and pages.
    second = unique("orders")
    create_channel(kinesis, second, stream_arn, destination("life-bucket"))
    third = unique("elsewhere")
    create_channel(kinesis, third, other_arn, destination("life-bucket"))
    on_stream = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn}])["ChannelSummaries"]
    assert sorted(c["ChannelName"] for c in on_stream) == sorted([name, second])
    first_summary = next(c for c in on_stream if c["ChannelName"] == name)
    assert first_summary["ChannelDestinationType"] == "S3"
    assert first_summary["Streams"] == [{"StreamARN": stream_arn, "StreamCreationTimestamp": summary["StreamCreationTimestamp"]}]
    timed = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn, "StreamCreationTimestamp": summary["StreamCreationTimestamp"]}])
    assert len(timed["ChannelSummaries"]) == 2
    stale = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn, "StreamCreationTimestamp": 1_000_000}])
    assert stale["ChannelSummaries"] == []
    both = kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn}, {"StreamARN": other_arn}])["ChannelSummaries"]
    assert sorted(c["ChannelName"] for c in both) == sorted([name, second, third])
    seen, token = [], None
    while True:
        page = kinesis.list_channels(MaxResults=1, **({"NextToken": token} if token else {}))
        assert len(page["ChannelSummaries"]) <= 1
        seen += [c["ChannelName"] for c in page["ChannelSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert {name, second, third} <= set(seen) and len(seen) == len(set(seen))
    err = client_error(kinesis.list_channels, NextToken="bogus")
    assert_client_error(err, "InvalidArgumentException", "Invalid NextToken bogus: not a ListChannels token.")

    # UpdateChannel: UPDATING, then ACTIVE with the new freshness and logging.
    updated = kinesis.update_channel(
        ChannelARN=arn, S3DestinationConfiguration={"DataFreshnessInSeconds": 60},
        LoggingConfiguration={"CloudWatchLogs": {"Enabled": True}},
    )["ChannelDescription"]
    assert updated["ChannelStatus"] == "UPDATING"
    assert updated["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 60
    assert updated["LoggingConfiguration"] == {"CloudWatchLogs": {
        "Enabled": True, "LogGroupName": f"/aws/kinesis/{name}/{created['ChannelId']}", "LogStreamName": "DestinationDelivery",
    }}
    assert wait_channel(kinesis, arn)["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 60
    err = client_error(kinesis.update_channel, ChannelARN=arn, S3TablesDestinationConfiguration={"DataFreshnessInSeconds": 5})
    assert_client_error(err, "InvalidArgumentException",
                        f"Channel {name} delivers to a general purpose bucket; update it with S3DestinationConfiguration.")

    # The stream cannot go while channels read it.
    err = client_error(kinesis.delete_stream, StreamName=stream)
    assert_client_error(err, "ResourceInUseException",
                        f"Stream {stream} under account {ACCOUNT} has channels; delete every channel on the stream first.")

    # DeleteChannel: DELETING, then gone.
    kinesis.delete_channel(ChannelARN=arn)
    kinesis.delete_channel(ChannelARN=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/{second}")
    deadline = time.monotonic() + 30
    while True:
        try:
            status = kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"]
            assert status == "DELETING"
        except kinesis.exceptions.ResourceNotFoundException as error:
            assert error.response["Error"]["Message"] == f"Channel {name} under account {ACCOUNT} not found."
            break
        assert time.monotonic() < deadline
        time.sleep(0.25)
    assert kinesis.list_channels(StreamFilter=[{"StreamARN": stream_arn}])["ChannelSummaries"] == []
    err = client_error(kinesis.update_channel, ChannelARN=arn, S3DestinationConfiguration={"DataFreshnessInSeconds": 5})
    assert_client_error(err, "ResourceNotFoundException", f"Channel {name} under account {ACCOUNT} not found.")
    # The name is free again, and the stream can go once its channels are gone.
    wait_channel(kinesis, create_channel(kinesis, name, other_arn, destination("life-bucket"))["ChannelARN"])
    kinesis.delete_stream(StreamName=stream)


def shard_of(kinesis, stream: str, key: str) -> dict:
    hashed = int(hashlib.md5(key.encode()).hexdigest(), 16)
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        hashes = shard["HashKeyRange"]
        if "EndingSequenceNumber" not in shard["SequenceNumberRange"] and \
                int(hashes["StartingHashKey"]) <= hashed <= int(hashes["EndingHashKey"]):
            return shard
    raise AssertionError(f"no open shard holds {key}")


def test_records_delivered_byte_identical_in_order_across_a_split(kinesis, s3):
    stream = unique("split")
    stream_arn = on_demand_stream(kinesis, stream)
    arn = create_channel(kinesis, unique("split-channel"), stream_arn, destination("split-bucket"))["ChannelARN"]
    wait_channel(kinesis, arn)
    before = records(60, "a1-before")
    for start in range(0, len(before), 20):
        result = kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": r} for r in before[start:start + 20]])
        assert result["FailedRecordCount"] == 0
    # A KPL aggregate: its user records are delivered, not the aggregate.
    aggregator = RecordAggregator()
    aggregated = records(5, "a2-aggregated")
    for r in aggregated:
        aggregator.add_user_record("k", r)
    _, _, data = aggregator.clear_and_get().get_contents()
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=data)
    # Channels need an on-demand stream to be created; split by hand after a switch to provisioned.
    kinesis.update_stream_mode(StreamARN=stream_arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_status(kinesis, stream)
    shard = shard_of(kinesis, stream, "k")
    low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
    kinesis.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2))
    wait_status(kinesis, stream)
    assert shard_of(kinesis, stream, "k")["ShardId"] != shard["ShardId"]
    after = records(60, "b-after")
    for r in after:
        kinesis.put_record(StreamName=stream, PartitionKey="k", Data=r)
    wanted = b"".join(before + aggregated + after)
    keys, data = delivered(s3, "split-bucket", len(wanted))
    assert data == wanted
    name = arn.rsplit("/", 1)[1]
    # Firehose's naming: <template, default YYYY/MM/dd/HH/><channel>-1-YYYY-MM-dd-HH-mm-ss-<uuid>
    for key in keys:
        prefix, _, file = key.rpartition("/")
        assert len(prefix.split("/")) == 4 and all(p.isdigit() for p in prefix.split("/")), key
        assert file.startswith(f"{name}-1-"), key


def test_killed_after_acknowledged_puts_delivers_after_restart(server_factory):
    server = server_factory(name="channel-kill")
    kinesis = server.client(max_attempts=10)
    stream = "durable-source"
    stream_arn = on_demand_stream(kinesis, stream)
    arn = create_channel(kinesis, "durable", stream_arn, destination("durable-bucket", freshness=3, CompressionType="GZIP"))[
        "ChannelARN"]
    wait_channel(kinesis, arn)
    first = records(100, "first")
    assert kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": r} for r in first])[
        "FailedRecordCount"] == 0
    server.kill9()
    server.start()
    kinesis = server.client(max_attempts=10)
    assert kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"] == "ACTIVE"
    second = records(50, "second")
    kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": r} for r in second])
    s3 = s3_client(server)
    import gzip
    wanted = set(first + second)
    deadline = time.monotonic() + 60
    while True:
        objects = s3.list_objects_v2(Bucket="durable-bucket").get("Contents", []) if _bucket_exists(s3, "durable-bucket") else []
        assert all(o["Key"].endswith(".gz") for o in objects)
        lines = b"".join(gzip.decompress(s3.get_object(Bucket="durable-bucket", Key=o["Key"])["Body"].read())
                         for o in objects).splitlines(keepends=True)
        if wanted <= set(lines) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # At least once: every acknowledged record, and nothing that was not sent.
    assert wanted <= set(lines)
    assert set(lines) <= wanted
    # DeleteChannel stops the delivery and removes the channel's buffered-record log.
    pipelines = server.data_dir / "firehose"
    assert [p for p in pipelines.iterdir() if p.is_dir()]
    kinesis.delete_channel(ChannelARN=arn)
    assert [p for p in pipelines.iterdir() if p.is_dir()] == []
    deadline = time.monotonic() + 30
    while kinesis.list_channels()["ChannelSummaries"]:
        assert time.monotonic() < deadline
        time.sleep(0.25)
    kinesis.delete_stream(StreamName=stream)


def _bucket_exists(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except Exception:
        return False


def test_bad_input_is_refused_and_changes_nothing(kinesis):
    raw = make_client(kinesis.meta.endpoint_url, validate=False, max_attempts=10)
    stream_arn = on_demand_stream(kinesis, unique("refusing"))
    provisioned = unique("provisioned")
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    wait_status(kinesis, provisioned)
    provisioned_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{provisioned}"
    good_stream = [{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}]
    base = {"ServiceExecutionRoleARN": ROLE, "StreamConfigurationList": good_stream,
            "S3DestinationConfiguration": destination("refused-bucket")}
    tables = {"DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::dlq-bucket", "ExpectedBucketOwner": ACCOUNT},
              "S3TablesConfigurationList": [{"TableBucketARN": f"arn:aws:s3tables:{REGION}:{ACCOUNT}:bucket/tables",
                                             "Namespace": "ns", "TableName": "events", "CompressionType": "ZSTD"}]}
    names = []

    def attempt(code, message, **changes):
        name = unique("bad")
        names.append(name)
        params = {**base, "ChannelName": name, **changes}
        params = {k: v for k, v in params.items() if v is not None}
        err = client_error(raw.create_channel, **params)
        assert_client_error(err, code, message)

    attempt("ValidationException", validation_message(validation_entry(
        "not-a-role", "serviceExecutionRoleARN",
        "Member must satisfy regular expression pattern: arn:aws[-a-z0-9]*:iam::\\d{12}:role/[a-zA-Z_0-9+=,.@\\-_/]+")),
        ServiceExecutionRoleARN="not-a-role")
    attempt("InvalidArgumentException",
            "S3TablesDestinationConfiguration is not supported by Millrace yet (streaming tables on Apache Iceberg "
            "need Iceberg support); deliver to a general purpose bucket with S3DestinationConfiguration.",
            S3DestinationConfiguration=None, S3TablesDestinationConfiguration=tables)
    attempt("InvalidArgumentException",
            "Specify either S3DestinationConfiguration or S3TablesDestinationConfiguration, not both.",
            S3TablesDestinationConfiguration=tables)
    attempt("InvalidArgumentException",
            "Specify either S3DestinationConfiguration or S3TablesDestinationConfiguration.",
            S3DestinationConfiguration=None)
    attempt("InvalidArgumentException",
            "StreamConfigurationList must contain exactly one entry, because a channel delivers records from a "
            "single data stream.", StreamConfigurationList=good_stream * 2)
    attempt("InvalidArgumentException",
            "RecordFormatType GSR_JSON is supported only for streaming table destinations; use JSON, STRING or "
            "BYTE_ARRAY for a general purpose bucket.",
            StreamConfigurationList=[{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "GSR_JSON"}}])
    attempt("InvalidArgumentException",
            "DataFreshnessInSeconds must be between 0 and 900 seconds; 901 is not.",
            S3DestinationConfiguration=destination("refused-bucket", freshness=901))
    attempt("InvalidArgumentException",
            "OutputKeyTemplate or ErrorOutputPrefix is not valid: Ths supplied prefix(es) do not satisfy the following "
            "constraint: Prefix contains an invalid timestamp format: nope",
            S3DestinationConfiguration=destination("refused-bucket", OutputKeyTemplate="x/!{timestamp:nope}/"))
    attempt("InvalidArgumentException",
            "The Amazon Kinesis Data Streams service key (aws/kinesis) cannot encrypt a channel's destination; use a "
            "customer managed KMS key.", EncryptionConfiguration={"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})
    missing = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/never-made"
    attempt("ResourceNotFoundException", f"Stream never-made under account {ACCOUNT} not found.",
            StreamConfigurationList=[{"StreamARN": missing, "RecordConfiguration": {"RecordFormatType": "JSON"}}])
    attempt("InvalidArgumentException",
            f"Channels are supported only on data streams in on-demand capacity mode. Stream {provisioned} under "
            f"account {ACCOUNT} is in provisioned mode.",
            StreamConfigurationList=[{"StreamARN": provisioned_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}])
    # A key that does not exist (this server has no master key: KMS is unavailable).
    err = client_error(raw.create_channel, **{**base, "ChannelName": unique("bad"),
                                              "EncryptionConfiguration": {"EncryptionType": "KMS", "KeyId": "alias/missing"}})
    assert err.response["Error"]["Code"] == "KMSNotFoundException"
    # Nothing was created.
    listed = {c["ChannelName"] for c in kinesis.list_channels()["ChannelSummaries"]}
    assert not listed & set(names)
    # A name taken, an unknown channel.
    taken = unique("taken")
    create_channel(kinesis, taken, stream_arn, destination("refused-bucket"))
    err = client_error(raw.create_channel, **{**base, "ChannelName": taken})
    assert_client_error(err, "ResourceInUseException", f"Channel {taken} under account {ACCOUNT} already exists.")
    unknown = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/never-made"
    for operation in (raw.describe_channel, raw.delete_channel):
        assert_client_error(client_error(operation, ChannelARN=unknown), "ResourceNotFoundException",
                            f"Channel never-made under account {ACCOUNT} not found.")
    err = client_error(raw.describe_channel, ChannelARN="arn:aws:kinesis:us-east-1:000000000000:stream/x")
    assert err.response["Error"]["Code"] == "ValidationException"


def test_channel_operations_in_cbor_match_json(module_server, kinesis):
    from test_cbor import CBOR_CT, Tag, call, to_json_shape

    endpoint = module_server.endpoint
    stream_arn = on_demand_stream(kinesis, unique("cbor-source"))
    descriptions = {}
    for fmt in ("json", "cbor"):
        name = unique(f"cbor-{fmt}")
        document = {
            "ChannelName": name, "ServiceExecutionRoleARN": ROLE,
            "StreamConfigurationList": [{"StreamARN": stream_arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
            "S3DestinationConfiguration": destination("cbor-bucket", freshness=5),
        }
        status, body, content_type = call(endpoint, "CreateChannel", document, fmt)
        assert status == 200, body
        assert content_type == (CBOR_CT if fmt == "cbor" else "application/x-amz-json-1.1")
        arn = body["ChannelDescription"]["ChannelARN"]
        wait_channel(kinesis, arn)
        status, body, _ = call(endpoint, "DescribeChannel", {"ChannelARN": arn}, fmt)
        assert status == 200, body
        description = body["ChannelDescription"]
        if fmt == "cbor":
            stamp = description["ChannelCreationTimestamp"]
            assert isinstance(stamp, Tag) and stamp.number == 1 and isinstance(stamp.value, int)
            description = to_json_shape(description)
        for volatile in ("ChannelName", "ChannelARN", "ChannelId", "ChannelCreationTimestamp"):
            assert volatile in description
            description.pop(volatile)
        descriptions[fmt] = description
        status, body, _ = call(endpoint, "DeleteChannel", {"ChannelARN": arn}, fmt)
        assert (status, body) == (200, None), body
    assert descriptions["json"] == descriptions["cbor"]


def test_zstd_objects_under_an_output_key_template(kinesis, s3):
    import zstandard

    stream = unique("zstd-source")
    stream_arn = on_demand_stream(kinesis, stream)
    name = unique("zstd")
    template = "events/year=!{timestamp:yyyy}/"
    arn = create_channel(kinesis, name, stream_arn, destination("zstd-bucket", CompressionType="ZSTD",
                                                               OutputKeyTemplate=template))["ChannelARN"]
    wait_channel(kinesis, arn)
    sent = records(50, "zstd")
    kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": r} for r in sent])
    wanted = b"".join(sent)
    deadline = time.monotonic() + 60
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="zstd-bucket").get("Contents", [])] \
            if _bucket_exists(s3, "zstd-bucket") else []
        chunks = [zstandard.ZstdDecompressor().decompressobj().decompress(
            s3.get_object(Bucket="zstd-bucket", Key=k)["Body"].read()) for k in keys]
        data = b"".join(sorted(chunks))
        if len(data) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert data == wanted
    year = time.strftime("%Y", time.gmtime())
    for key in keys:
        assert key.startswith(f"events/year={year}/{name}-1-") and key.endswith(".zst"), key


def test_encryption_key_is_checked_with_kms(server_factory, tmp_path):
    import base64

    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(bytes(range(32))).decode() + "\n")
    server = server_factory(args=["--master-key-file", str(key_file)], name="channel-cmk")
    kinesis = server.client(max_attempts=10)
    kms = boto3.client("kms", endpoint_url=server.endpoint, region_name=REGION,
                       aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    stream_arn = on_demand_stream(kinesis, "sealed-source")
    key_arn = kms.create_key(Description="channel")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/channel-key", TargetKeyId=key_arn)
    missing = key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"

    def create(name, key_id):
        return create_channel(kinesis, name, stream_arn, destination("sealed-bucket"),
                              EncryptionConfiguration={"EncryptionType": "KMS", "KeyId": key_id})

    assert client_error(create, "missing-key", missing).response["Error"]["Code"] == "KMSNotFoundException"
    kms.disable_key(KeyId=key_arn)
    assert client_error(create, "disabled-key", key_arn).response["Error"]["Code"] == "KMSDisabledException"
    assert kinesis.list_channels()["ChannelSummaries"] == []
    kms.enable_key(KeyId=key_arn)
    for name, key_id in (("by-arn", key_arn), ("by-alias", "alias/channel-key")):
        description = create(name, key_id)
        assert description["EncryptionConfiguration"] == {"EncryptionType": "KMS", "KeyId": key_id}
        assert wait_channel(kinesis, description["ChannelARN"])["EncryptionConfiguration"]["KeyId"] == key_id


def test_update_channel_freshness_applies_to_buffered_records(kinesis, s3):
    stream = unique("fresh-source")
    stream_arn = on_demand_stream(kinesis, stream)
    arn = create_channel(kinesis, unique("fresh"), stream_arn, destination("fresh-bucket", freshness=900))["ChannelARN"]
    wait_channel(kinesis, arn)
    sent = records(10, "fresh")
    kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": "k", "Data": r} for r in sent])
    time.sleep(1.0)
    assert not _bucket_exists(s3, "fresh-bucket") or not s3.list_objects_v2(Bucket="fresh-bucket").get("Contents")
    kinesis.update_channel(ChannelARN=arn, S3DestinationConfiguration={"DataFreshnessInSeconds": 0})
    _, data = delivered(s3, "fresh-bucket", len(b"".join(sent)), timeout=30)
    assert data == b"".join(sent)


def test_aws_cli_reads_a_channels_objects(module_server, kinesis):
    # The AWS CLI of the test environment (awscli 1.46.3) has no channel commands yet: the channel
    # is made with boto3, its objects are listed and fetched with `aws s3`.
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env.update(AWS_ENV)
    aws = str(Path(sys.executable).parent / "aws")
    base = [aws, "--endpoint-url", module_server.endpoint, "--region", REGION, "--output", "json"]
    stream = unique("cli-source")
    stream_arn = on_demand_stream(kinesis, stream)
    name = unique("cli")
    arn = create_channel(kinesis, name, stream_arn, destination("cli-channel-bucket"))["ChannelARN"]
    wait_channel(kinesis, arn)
    kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"hello channel\n")
    deadline = time.monotonic() + 60
    while True:
        ls = subprocess.run(base + ["s3", "ls", "--recursive", "s3://cli-channel-bucket/"], capture_output=True, text=True,
                            env=env, timeout=120)
        if ls.returncode == 0 and f"{name}-1-" in ls.stdout:
            break
        assert time.monotonic() < deadline, ls.stdout + ls.stderr
        time.sleep(0.2)
    key = ls.stdout.split()[-1]
    cp = subprocess.run(base + ["s3", "cp", f"s3://cli-channel-bucket/{key}", "-"], capture_output=True, env=env,
                        timeout=120, check=True)
    assert cp.stdout == b"hello channel\n"
    kinesis.delete_channel(ChannelARN=arn)
