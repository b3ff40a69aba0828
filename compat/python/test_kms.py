"""KMS on the same endpoint and stream encryption at rest, through boto3 and the AWS CLI.

- the KMS API (`TrentService.*`): keys, aliases, states, deletion windows, rotation, tags, policies,
  data keys, Encrypt/Decrypt/ReEncrypt with self-describing ciphertexts;
- StartStreamEncryption / StopStreamEncryption with every KeyId form, `alias/aws/kinesis` created on
  first use; records written before the change stay readable; `EncryptionType: KMS` on records;
- key state errors on PutRecord(s), GetRecords and SubscribeToShard, recovering when the key is enabled;
- no marker byte of an encrypted stream anywhere in the data directory; a flipped bit is corruption;
- kill -9 under encrypted load; the master key is needed to read, and can be re-wrapped.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from millrace_testlib import (
    AWS_ENV,
    REGION,
    assert_client_error,
    client_error,
    create_stream,
    millrace_bin,
    read_iterator,
    wait_status,
)

ACCOUNT = "000000000000"
SHARD0 = "shardId-000000000000"
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "master.key"
    path.write_text(MASTER_KEY + "\n")
    return path


@pytest.fixture
def kms_server(server_factory, key_file):
    return server_factory(args=["--master-key-file", str(key_file)], name="kms")


def kms_client(server):
    return boto3.client(
        "kms",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def key_arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def encrypted_stream(kinesis, name: str, key: str, shards: int = 1) -> None:
    create_stream(kinesis, name, shards)
    kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key)
    wait_status(kinesis, name)


def read_all(kinesis, name: str, shard: str = SHARD0, **position) -> list[dict]:
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard,
                                          **(position or {"ShardIteratorType": "TRIM_HORIZON"}))["ShardIterator"]
    return read_iterator(kinesis, iterator)


# --- the KMS API ----------------------------------------------------------------------------------


def test_key_lifecycle_aliases_and_ciphertexts(kms_server):
    kms = kms_client(kms_server)
    meta = kms.create_key(Description="orders", Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]
    key_id = meta["KeyId"]
    assert meta["Arn"] == key_arn(key_id)
    assert (meta["KeyState"], meta["Enabled"], meta["KeyManager"], meta["KeySpec"], meta["KeyUsage"]) == \
        ("Enabled", True, "CUSTOMER", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert any(k["KeyId"] == key_id and k["KeyArn"] == meta["Arn"] for k in kms.list_keys()["Keys"])

    kms.create_alias(AliasName="alias/orders", TargetKeyId=key_id)
    err = client_error(kms.create_alias, AliasName="alias/orders", TargetKeyId=key_id)
    assert_client_error(err, "AlreadyExistsException",
                        f"An alias with the name arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders already exists")
    aliases = {a["AliasName"]: a for a in kms.list_aliases(KeyId=key_id)["Aliases"]}
    assert aliases["alias/orders"]["TargetKeyId"] == key_id
    assert aliases["alias/orders"]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"
    for form in (key_id, meta["Arn"], "alias/orders", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"):
        assert kms.describe_key(KeyId=form)["KeyMetadata"]["KeyId"] == key_id
    err = client_error(kms.describe_key, KeyId="alias/missing")
    assert_client_error(err, "NotFoundException", f"Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/missing is not found.")
    missing = str(uuid.uuid4())
    err = client_error(kms.describe_key, KeyId=missing)
    assert_client_error(err, "NotFoundException", f"Key '{key_arn(missing)}' does not exist")

    context = {"purpose": "test"}
    out = kms.encrypt(KeyId="alias/orders", Plaintext=b"secret bytes", EncryptionContext=context)
    assert out["KeyId"] == meta["Arn"]
    blob = out["CiphertextBlob"]
    assert b"secret bytes" not in blob
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert (plain["Plaintext"], plain["KeyId"]) == (b"secret bytes", meta["Arn"])
    assert_client_error(client_error(kms.decrypt, CiphertextBlob=blob), "InvalidCiphertextException")
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    assert_client_error(client_error(kms.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext=context),
                        "InvalidCiphertextException")

    other = kms.create_key()["KeyMetadata"]["KeyId"]
    assert_client_error(client_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext=context, KeyId=other),
                        "IncorrectKeyException")
    moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=context, DestinationKeyId=other)
    assert (moved["SourceKeyId"], moved["KeyId"]) == (meta["Arn"], key_arn(other))
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"secret bytes"

    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    bare = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 16

    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    assert_client_error(client_error(kms.encrypt, KeyId=key_id, Plaintext=b"x"), "DisabledException",
                        f"{meta['Arn']} is disabled.")
    assert_client_error(client_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext=context),
                        "DisabledException", f"{meta['Arn']} is disabled.")
    kms.enable_key(KeyId=key_id)

    kms.enable_key_rotation(KeyId=key_id)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365
    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False

    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "test"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["team"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "env", "TagValue": "test"}]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    policy["Statement"][0]["Sid"] = "Changed"
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Statement"][0]["Sid"] == "Changed"

    err = client_error(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=6)
    assert err.response["Error"]["Code"] == "ValidationException"
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert scheduled["DeletionDate"].timestamp() == pytest.approx(time.time() + 7 * 86400, abs=120)
    assert_client_error(client_error(kms.encrypt, KeyId=key_id, Plaintext=b"x"), "KMSInvalidStateException",
                        f"{meta['Arn']} is pending deletion.")
    assert_client_error(client_error(kms.enable_key, KeyId=key_id), "KMSInvalidStateException")
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    assert_client_error(client_error(kms.cancel_key_deletion, KeyId=key_id), "KMSInvalidStateException",
                        f"{meta['Arn']} is not pending deletion.")

    kms.update_alias(AliasName="alias/orders", TargetKeyId=other)
    assert kms.describe_key(KeyId="alias/orders")["KeyMetadata"]["KeyId"] == other
    kms.delete_alias(AliasName="alias/orders")
    assert_client_error(client_error(kms.delete_alias, AliasName="alias/orders"), "NotFoundException")
    assert_client_error(client_error(kms.create_alias, AliasName="alias/aws/mine", TargetKeyId=other),
                        "NotAuthorizedException")


def test_keys_survive_restart_and_need_the_master_key(server_factory, key_file, tmp_path):
    server = server_factory(args=["--master-key-file", str(key_file)], name="restart")
    kms = kms_client(server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    encrypted_stream(server.client(), "kept", key_id)
    server.client().put_record(StreamName="kept", PartitionKey="k", Data=b"kept record")
    server.stop()
    assert MASTER_KEY.encode() not in b"".join(p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file())

    # Without the master key nothing opens: KMS is unavailable and the records stay sealed.
    with_key = server.args
    server.args = [a for a in server.args if a not in ("--master-key-file", str(key_file))]
    server.start()
    err = client_error(kms_client(server).decrypt, CiphertextBlob=blob)
    assert (err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("KMSInternalException", 500)
    kinesis = server.client()
    iterator = kinesis.get_shard_iterator(StreamName="kept", ShardId=SHARD0,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert_client_error(client_error(kinesis.get_records, ShardIterator=iterator), "KMSNotFoundException")
    assert_client_error(client_error(kinesis.put_record, StreamName="kept", PartitionKey="k", Data=b"x"),
                        "KMSNotFoundException")
    server.stop()
    server.args = with_key

    wrong = tmp_path / "wrong.key"
    wrong.write_text(base64.b64encode(b"\x01" * 32).decode())
    proc = subprocess.run([str(millrace_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(server.data_dir),
                           "--master-key-file", str(wrong)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "master key" in proc.stderr

    new_key = tmp_path / "new.key"
    new_key.write_text(base64.b64encode(os.urandom(32)).decode())
    subprocess.run([str(millrace_bin()), "rewrap-master-key", "--data-dir", str(server.data_dir),
                    "--master-key-file", str(key_file), "--new-master-key-file", str(new_key)],
                   check=True, capture_output=True, timeout=30)
    server.args = [a if a != str(key_file) else str(new_key) for a in server.args]
    server.start()
    assert kms_client(server).decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"
    assert [r["Data"] for r in read_all(server.client(), "kept")] == [b"kept record"]


def test_aws_cli_creates_a_key_and_an_alias(kms_server):
    aws = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws"
    env = dict(os.environ, **AWS_ENV)

    def run(*args: str) -> dict:
        out = subprocess.run([str(aws), "--endpoint-url", kms_server.endpoint, "--region", REGION, "--output", "json",
                              *args], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    key_id = run("kms", "create-key", "--description", "cli")["KeyMetadata"]["KeyId"]
    run("kms", "create-alias", "--alias-name", "alias/cli", "--target-key-id", key_id)
    assert run("kms", "describe-key", "--key-id", "alias/cli")["KeyMetadata"]["KeyId"] == key_id
    run("kinesis", "create-stream", "--stream-name", "cli-encrypted", "--shard-count", "1")
    wait_status(kms_server.client(), "cli-encrypted")
    run("kinesis", "start-stream-encryption", "--stream-name", "cli-encrypted", "--encryption-type", "KMS",
        "--key-id", "alias/cli")
    wait_status(kms_server.client(), "cli-encrypted")
    summary = run("kinesis", "describe-stream-summary", "--stream-name", "cli-encrypted")["StreamDescriptionSummary"]
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/cli")
    run("kinesis", "put-record", "--stream-name", "cli-encrypted", "--partition-key", "k", "--data", "hello")
    records = read_all(kms_server.client(), "cli-encrypted")
    assert [(r["Data"], r["EncryptionType"]) for r in records] == [(b"hello", "KMS")]


# --- stream encryption ----------------------------------------------------------------------------


def test_encrypted_stream_through_every_iterator_type(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/stream", TargetKeyId=key_id)
    name = unique("enc")
    create_stream(kinesis, name, 1)
    before = kinesis.put_record(StreamName=name, PartitionKey="plain", Data=b"written before")
    kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/stream")
    wait_status(kinesis, name)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", "alias/stream")
    start = time.time()
    written = []
    for i in range(5):
        written.append(kinesis.put_record(StreamName=name, PartitionKey=f"pk-{i}", Data=f"rec-{i}".encode()))
    out = kinesis.put_records(StreamName=name, Records=[{"PartitionKey": f"batch-{i}", "Data": bytes([i]) * 300}
                                                         for i in range(20)])
    assert out["FailedRecordCount"] == 0

    records = read_all(kinesis, name)
    assert len(records) == 26
    assert (records[0]["Data"], records[0]["PartitionKey"], "EncryptionType" in records[0]) == \
        (b"written before", "plain", False)
    assert all(r["EncryptionType"] == "KMS" for r in records[1:])
    assert [r["Data"] for r in records[1:6]] == [f"rec-{i}".encode() for i in range(5)]
    assert [r["PartitionKey"] for r in records[6:]] == [f"batch-{i}" for i in range(20)]
    assert [r["Data"] for r in records[6:]] == [bytes([i]) * 300 for i in range(20)]

    third = written[2]["SequenceNumber"]
    at = read_all(kinesis, name, ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=third)
    assert at[0]["Data"] == b"rec-2"
    after = read_all(kinesis, name, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=third)
    assert after[0]["Data"] == b"rec-3"
    stamped = read_all(kinesis, name, ShardIteratorType="AT_TIMESTAMP", Timestamp=start - 0.001)
    assert stamped[0]["Data"] == b"rec-0"
    latest = kinesis.get_shard_iterator(StreamName=name, ShardId=SHARD0, ShardIteratorType="LATEST")["ShardIterator"]
    kinesis.put_record(StreamName=name, PartitionKey="late", Data=b"after latest")
    got = read_iterator(kinesis, latest, expected=1)
    assert [(r["Data"], r["EncryptionType"]) for r in got] == [(b"after latest", "KMS")]
    assert before["SequenceNumber"] < third

    kinesis.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/stream")
    wait_status(kinesis, name)
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["EncryptionType"] == "NONE"
    kinesis.put_record(StreamName=name, PartitionKey="plain-again", Data=b"after stop")
    records = read_all(kinesis, name)
    assert records[-1]["Data"] == b"after stop" and "EncryptionType" not in records[-1]
    assert records[-2]["EncryptionType"] == "KMS"


def test_every_key_id_form_and_the_aws_managed_key(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    meta = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/forms", TargetKeyId=meta["KeyId"])
    forms = [meta["KeyId"], meta["Arn"], "alias/forms", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/forms"]
    for index, form in enumerate(forms):
        name = unique(f"form{index}")
        encrypted_stream(kinesis, name, form)
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"v")
        assert [(r["Data"], r["EncryptionType"]) for r in read_all(kinesis, name)] == [(b"v", "KMS")]

    assert not [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/kinesis"]
    name = unique("managed")
    encrypted_stream(kinesis, name, "alias/aws/kinesis")
    kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"managed")
    assert read_all(kinesis, name)[0]["Data"] == b"managed"
    managed = kms.describe_key(KeyId="alias/aws/kinesis")["KeyMetadata"]
    assert managed["KeyManager"] == "AWS"
    assert kms.get_key_rotation_status(KeyId=managed["KeyId"])["KeyRotationEnabled"] is True
    for call in (lambda: kms.disable_key(KeyId="alias/aws/kinesis"),
                 lambda: kms.schedule_key_deletion(KeyId=managed["KeyId"], PendingWindowInDays=7)):
        assert client_error(call).response["Error"]["Code"] == "AccessDeniedException"

    name = unique("nokey")
    create_stream(kinesis, name, 1)
    missing = str(uuid.uuid4())
    err = client_error(kinesis.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId=missing)
    assert_client_error(err, "KMSNotFoundException", f"Key '{key_arn(missing)}' does not exist")
    err = client_error(kinesis.start_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId="alias/nope")
    assert_client_error(err, "KMSNotFoundException")
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["EncryptionType"] == "NONE"


def test_key_states_drive_the_stream_errors_and_nothing_is_lost(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    meta = kms.create_key()["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    name = unique("states")
    encrypted_stream(kinesis, name, key_id)
    kinesis.put_record(StreamName=name, PartitionKey="a", Data=b"one")
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=SHARD0,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    kms.disable_key(KeyId=key_id)
    for call in (lambda: kinesis.put_record(StreamName=name, PartitionKey="a", Data=b"x"),
                 lambda: kinesis.put_records(StreamName=name, Records=[{"PartitionKey": "a", "Data": b"x"}]),
                 lambda: kinesis.get_records(ShardIterator=iterator)):
        assert_client_error(client_error(call), "KMSDisabledException", f"{arn} is disabled.")

    kms.enable_key(KeyId=key_id)
    kinesis.put_record(StreamName=name, PartitionKey="a", Data=b"two")
    got = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in got] == [b"one", b"two"]

    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert_client_error(client_error(kinesis.put_record, StreamName=name, PartitionKey="a", Data=b"x"),
                        "KMSInvalidStateException", f"{arn} is pending deletion.")
    assert_client_error(client_error(kinesis.get_records, ShardIterator=iterator), "KMSInvalidStateException")
    kms.cancel_key_deletion(KeyId=key_id)
    kms.enable_key(KeyId=key_id)
    assert [r["Data"] for r in read_all(kinesis, name)] == [b"one", b"two"]


def test_subscribe_to_shard_delivers_decrypted_records_and_key_errors(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    name = unique("efo")
    encrypted_stream(kinesis, name, key_id)
    for i in range(3):
        kinesis.put_record(StreamName=name, PartitionKey=f"k{i}", Data=f"efo-{i}".encode())
    stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName="c")["Consumer"]["ConsumerARN"]
    deadline = time.monotonic() + 30
    while kinesis.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    response = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=SHARD0,
                                          StartingPosition={"Type": "TRIM_HORIZON"})
    got = []
    for event in response["EventStream"]:
        got.extend(event["SubscribeToShardEvent"]["Records"])
        if len(got) >= 3:
            break
    assert [(r["Data"], r["PartitionKey"], r["EncryptionType"]) for r in got] == \
        [(f"efo-{i}".encode(), f"k{i}", "KMS") for i in range(3)]
    response["EventStream"].close()

    kms.disable_key(KeyId=key_id)
    time.sleep(0.2)
    try:
        response = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=SHARD0,
                                              StartingPosition={"Type": "TRIM_HORIZON"})
        with pytest.raises(botocore.exceptions.EventStreamError) as failure:
            for _ in response["EventStream"]:
                pass
        assert failure.value.response["Error"]["Code"] == "KMSDisabledException"
    except botocore.exceptions.ClientError as err:
        assert err.response["Error"]["Code"] in ("KMSDisabledException", "ResourceInUseException")


def test_encryption_changes_are_limited_to_25_a_day(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    name = unique("limit")
    create_stream(kinesis, name, 1)
    for i in range(25):
        call = kinesis.start_stream_encryption if i % 2 == 0 else kinesis.stop_stream_encryption
        call(StreamName=name, EncryptionType="KMS", KeyId=key_id)
        wait_status(kinesis, name)
    err = client_error(kinesis.stop_stream_encryption, StreamName=name, EncryptionType="KMS", KeyId=key_id)
    assert err.response["Error"]["Code"] == "LimitExceededException"
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["EncryptionType"] == "KMS"


# --- at rest --------------------------------------------------------------------------------------


def data_dir_contains(server, marker: bytes) -> list[Path]:
    return [p for p in server.data_dir.rglob("*") if p.is_file() and marker in p.read_bytes()]


def test_no_marker_byte_reaches_the_disk_of_an_encrypted_stream(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    secret = b"MARKER-" + uuid.uuid4().hex.encode()
    secret_key = "PKMARK-" + uuid.uuid4().hex
    encrypted_stream(kinesis, "secret", key_id, shards=2)
    create_stream(kinesis, "open", 1)
    plain = b"PLAIN-" + uuid.uuid4().hex.encode()
    for i in range(50):
        kinesis.put_record(StreamName="secret", PartitionKey=f"{secret_key}-{i}", Data=secret + bytes([i]))
    kinesis.put_records(StreamName="secret", Records=[{"PartitionKey": secret_key, "Data": secret * 10}] * 100)
    kinesis.put_record(StreamName="open", PartitionKey="p", Data=plain)
    kms_server.stop()
    assert data_dir_contains(kms_server, plain), "the scan finds an unencrypted stream's bytes"
    assert data_dir_contains(kms_server, secret) == []
    assert data_dir_contains(kms_server, secret_key.encode()) == []
    kms_server.start()
    assert read_all(kms_server.client(), "secret", shard=SHARD0) or \
        read_all(kms_server.client(), "secret", shard="shardId-000000000001")


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def test_a_flipped_bit_in_an_encrypted_frame_is_corruption(kms_server):
    kinesis, kms = kms_server.client(), kms_client(kms_server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    encrypted_stream(kinesis, "tamper", key_id)
    kinesis.put_record(StreamName="tamper", PartitionKey="k", Data=b"original data bytes")
    kms_server.stop()
    # The frame lives in the shard's segment and/or the shared journal (16-byte file header,
    # then a 16-byte record header); the frame checksum is the only one covering the payload,
    # so it is recomputed: only the AES-GCM tag can tell.
    tampered = 0
    for path in [*kms_server.data_dir.glob("**/*.seg"), *kms_server.data_dir.glob("**/*.wal")]:
        raw = bytearray(path.read_bytes())
        frame = 16 if path.suffix == ".seg" else 32
        if len(raw) < frame + 24:
            continue
        length = int.from_bytes(raw[frame + 4:frame + 8], "little")
        payload = frame + 24
        if len(raw) < payload + length or raw[payload] != 2:
            continue
        raw[payload + length - 20] ^= 0x04  # inside the ciphertext
        covered = bytes(raw[frame + 4:frame + 24]) + bytes(raw[payload:payload + length])
        raw[frame:frame + 4] = crc32c(covered).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
        tampered += 1
    assert tampered, "no copy of the encrypted frame found"
    kms_server.start()
    kinesis = kms_server.client()
    iterator = kinesis.get_shard_iterator(StreamName="tamper", ShardId=SHARD0,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    err = client_error(kinesis.get_records, ShardIterator=iterator)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert err.response["Error"]["Code"] == "InternalFailure"
    # The log layer accepted the frame (its checksum is valid); the authentication tag refused it.
    assert "does not authenticate" in kms_server.stderr_path.read_text()


def test_kill9_under_encrypted_load_loses_no_acknowledged_record(server_factory, key_file, request):
    seed = int(os.environ.get("MILLRACE_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n{request.node.name}: seed {seed} (rerun with MILLRACE_TEST_SEED={seed})")
    rng = random.Random(seed)
    server = server_factory(args=["--master-key-file", str(key_file)], name="crash")
    key_id = kms_client(server).create_key()["KeyMetadata"]["KeyId"]
    encrypted_stream(server.client(), "crash", key_id, shards=2)
    acked: dict[str, tuple[str, bytes]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    for round_ in range(2):
        stop = threading.Event()

        def writer(wid: int) -> None:
            client = server.client(read_timeout=10, connect_timeout=2)
            n = 0
            while not stop.is_set():
                batch = [(f"w{wid}-{round_}-{n}-{i}", os.urandom(rng.randrange(1, 400))) for i in range(20)]
                n += 1
                try:
                    out = client.put_records(StreamName="crash",
                                             Records=[{"PartitionKey": k, "Data": d} for k, d in batch])
                except Exception as error:  # the kill ends every writer
                    errors.append(repr(error))
                    return
                with lock:
                    for (k, d), r in zip(batch, out["Records"]):
                        if "SequenceNumber" in r:
                            acked[r["SequenceNumber"]] = (k, d)

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while not acked and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert acked, f"nothing was acknowledged before the kill: {errors[:3]}"
        server.start()
        client = server.client()
        seen = {}
        for shard in ("shardId-000000000000", "shardId-000000000001"):
            for r in read_all(client, "crash", shard=shard):
                assert r["EncryptionType"] == "KMS"
                seen[r["SequenceNumber"]] = (r["PartitionKey"], r["Data"])
        missing = [s for s in acked if s not in seen]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost"
        assert all(seen[s] == acked[s] for s in acked)


# --- authorization --------------------------------------------------------------------------------

ROOT_KEY, ROOT_SECRET = "AKIAMILLRACEKMSROOT1", "kms-root-secret-for-tests"


def signed(server, service, key, secret):
    return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 1}))


def test_enforce_needs_kms_permissions_on_the_stream_key(server_factory, key_file):
    server = server_factory(args=["--master-key-file", str(key_file), "--auth", "enforce",
                                  "--root-access-key-id", ROOT_KEY, "--root-secret-access-key", ROOT_SECRET],
                            name="enforce")
    kinesis, kms, iam = (signed(server, s, ROOT_KEY, ROOT_SECRET) for s in ("kinesis", "kms", "iam"))
    meta = kms.create_key()["KeyMetadata"]
    encrypted_stream(kinesis, "guarded", meta["KeyId"])
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/guarded"

    def user(name, actions):
        iam.create_user(UserName=name)
        statements = [{"Effect": "Allow", "Action": actions, "Resource": "*"}]
        iam.put_user_policy(UserName=name, PolicyName="p",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    plain_key = user("plain", ["kinesis:PutRecord", "kinesis:GetShardIterator", "kinesis:GetRecords"])
    plain = signed(server, "kinesis", *plain_key)
    err = client_error(plain.put_record, StreamName="guarded", PartitionKey="k", Data=b"x")
    assert_client_error(err, "KMSAccessDeniedException",
                        f"User: arn:aws:iam::{ACCOUNT}:user/plain is not authorized to perform: kms:GenerateDataKey "
                        f"on resource: {meta['Arn']}")
    err = client_error(signed(server, "kms", *plain_key).create_key)
    assert err.response["Error"]["Code"] == "AccessDeniedException"

    trusted = signed(server, "kinesis", *user("trusted", ["kinesis:*", "kms:GenerateDataKey", "kms:Decrypt"]))
    trusted.put_record(StreamName="guarded", PartitionKey="k", Data=b"allowed")
    assert [r["Data"] for r in read_all(trusted, "guarded")] == [b"allowed"]
    iterator = plain.get_shard_iterator(StreamName="guarded", ShardId=SHARD0,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    err = client_error(plain.get_records, ShardIterator=iterator)
    assert_client_error(err, "KMSAccessDeniedException",
                        f"User arn:aws:iam::{ACCOUNT}:user/plain is not authorized to decrypt records in stream guarded.")
    assert stream

    nobody = signed(server, "kms", *user("nobody", ["kinesis:ListStreams"]))
    blob = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    key = meta["KeyId"]
    calls = {
        "CreateKey": lambda: nobody.create_key(),
        "DescribeKey": lambda: nobody.describe_key(KeyId=key),
        "ListKeys": lambda: nobody.list_keys(),
        "CreateAlias": lambda: nobody.create_alias(AliasName="alias/nobody", TargetKeyId=key),
        "UpdateAlias": lambda: nobody.update_alias(AliasName="alias/nobody", TargetKeyId=key),
        "DeleteAlias": lambda: nobody.delete_alias(AliasName="alias/nobody"),
        "ListAliases": lambda: nobody.list_aliases(),
        "EnableKey": lambda: nobody.enable_key(KeyId=key),
        "DisableKey": lambda: nobody.disable_key(KeyId=key),
        "ScheduleKeyDeletion": lambda: nobody.schedule_key_deletion(KeyId=key, PendingWindowInDays=7),
        "CancelKeyDeletion": lambda: nobody.cancel_key_deletion(KeyId=key),
        "EnableKeyRotation": lambda: nobody.enable_key_rotation(KeyId=key),
        "DisableKeyRotation": lambda: nobody.disable_key_rotation(KeyId=key),
        "GetKeyRotationStatus": lambda: nobody.get_key_rotation_status(KeyId=key),
        "GenerateDataKey": lambda: nobody.generate_data_key(KeyId=key, KeySpec="AES_256"),
        "GenerateDataKeyWithoutPlaintext": lambda: nobody.generate_data_key_without_plaintext(KeyId=key,
                                                                                            KeySpec="AES_256"),
        "Encrypt": lambda: nobody.encrypt(KeyId=key, Plaintext=b"x"),
        "Decrypt": lambda: nobody.decrypt(CiphertextBlob=blob),
        "ReEncrypt": lambda: nobody.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key),
        "TagResource": lambda: nobody.tag_resource(KeyId=key, Tags=[{"TagKey": "a", "TagValue": "b"}]),
        "UntagResource": lambda: nobody.untag_resource(KeyId=key, TagKeys=["a"]),
        "ListResourceTags": lambda: nobody.list_resource_tags(KeyId=key),
        "GetKeyPolicy": lambda: nobody.get_key_policy(KeyId=key, PolicyName="default"),
        "PutKeyPolicy": lambda: nobody.put_key_policy(KeyId=key, PolicyName="default", Policy="{}"),
    }
    for operation, call in calls.items():
        code = client_error(call).response["Error"]["Code"]
        assert code == "AccessDeniedException", f"{operation}: {code}"
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
