"""Authentication and authorization through boto3, the AWS CLI and raw signed HTTP.

One module server runs in `enforce` with the default account's root credentials and a second
account (111111111111); every test creates its own users, roles and streams there. Errors are
checked for AWS's code, HTTP status and message, and refused requests must change nothing.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import subprocess
import time
import urllib.parse
import uuid

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest

from millrace_testlib import REGION, MillraceServer, client_error, wait_status

ROOT_KEY = "AKIAMILLRACEROOT0001"
ROOT_SECRET = "root-secret-for-the-auth-tests"
OTHER_ACCOUNT = "111111111111"
OTHER_KEY = "AKIAMILLRACEOTHER001"
OTHER_SECRET = "other-account-root-secret"
ACCOUNT = "000000000000"

MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)

ENFORCE_ARGS = [
    "--auth", "enforce",
    "--root-access-key-id", ROOT_KEY,
    "--root-secret-access-key", ROOT_SECRET,
    "--account", f"{OTHER_ACCOUNT}:{OTHER_KEY}:{OTHER_SECRET}",
]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    server = MillraceServer(base / "data", base / "logs", ENFORCE_ARGS, name="auth")
    server.start()
    yield server
    server.close()


def client(server, service, key, secret, token=None, **config):
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(retries={"max_attempts": 1}, **config),
    )


def root(server, service="kinesis"):
    return client(server, service, ROOT_KEY, ROOT_SECRET)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stream_arn(name, account=ACCOUNT):
    return f"arn:aws:kinesis:{REGION}:{account}:stream/{name}"


def make_stream(server, name, shards=1):
    kinesis = root(server)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_status(kinesis, name)
    return kinesis


def make_user(server, name, policy=None):
    iam = root(server, "iam")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def allow(actions, resources, **extra):
    statement = {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}
    return {"Version": "2012-10-17", "Statement": [statement]}


def error_of(fn, *args, **kwargs):
    err = client_error(fn, *args, **kwargs)
    return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"], err.response["Error"].get("Message")


def denied_message(caller_arn, action, resource, reason=None):
    reason = reason or f"because no identity-based policy allows the {action} action"
    return f"User: {caller_arn} is not authorized to perform: {action} on resource: {resource} {reason}"


# --- signatures ---------------------------------------------------------------------------------


def signed_request(server, target, body, key=ROOT_KEY, secret=ROOT_SECRET, when=None, token=None):
    """A Kinesis request signed by botocore's SigV4 signer, optionally at another time."""
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=server.endpoint + "/",
        data=body,
        headers={
            "X-Amz-Target": f"Kinesis_20131202.{target}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    credentials = botocore.credentials.Credentials(key, secret, token)
    signer = botocore.auth.SigV4Auth(credentials, "kinesis", REGION)
    if when is None:
        signer.add_auth(request)
    else:
        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: when
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.get_current_datetime = original
    return request


def send(server, request, body=None):
    parsed = urllib.parse.urlsplit(server.endpoint)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    url = urllib.parse.urlsplit(request.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    payload = request.body if body is None else body
    connection.request(request.method, path, body=payload, headers=dict(request.headers.items()))
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else {})


def test_wrong_secret_and_unknown_key(auth_server):
    wrong = client(auth_server, "kinesis", ROOT_KEY, "not-the-secret")
    assert error_of(wrong.list_streams) == ("InvalidSignatureException", 400, MISMATCH)
    unknown = client(auth_server, "kinesis", "AKIAUNKNOWNUNKNOWN00", ROOT_SECRET)
    assert error_of(unknown.list_streams) == (
        "UnrecognizedClientException", 400, "The security token included in the request is invalid.")
    # The query services answer in their own shape.
    sts = client(auth_server, "sts", "AKIAUNKNOWNUNKNOWN00", ROOT_SECRET)
    assert error_of(sts.get_caller_identity) == (
        "InvalidClientTokenId", 403, "The security token included in the request is invalid.")
    sts = client(auth_server, "sts", ROOT_KEY, "wrong")
    code, status, message = error_of(sts.get_caller_identity)
    assert (code, status, message) == ("SignatureDoesNotMatch", 403, MISMATCH)


def test_tampered_body_is_refused_and_stores_nothing(auth_server):
    name = unique("tamper")
    kinesis = make_stream(auth_server, name)
    body = json.dumps({"StreamName": name, "PartitionKey": "k", "Data": "aGVsbG8="}).encode()
    request = signed_request(auth_server, "PutRecord", body)
    tampered = body.replace(b"aGVsbG8=", b"ZXZpbCE=")
    status, reply = send(auth_server, request, tampered)
    assert (status, reply.get("__type"), reply.get("message")) == (400, "InvalidSignatureException", MISMATCH)
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert kinesis.get_records(ShardIterator=iterator)["Records"] == []
    # The same request untouched goes through.
    status, reply = send(auth_server, request)
    assert status == 200 and reply["ShardId"] == "shardId-000000000000"


@pytest.mark.parametrize("minutes", [-6, 6])
def test_clock_skew_beyond_five_minutes(auth_server, minutes):
    when = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    request = signed_request(auth_server, "ListStreams", b"{}", when=when)
    status, reply = send(auth_server, request)
    assert status == 400 and reply["__type"] == "InvalidSignatureException"
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    if minutes < 0:
        assert reply["message"].startswith(f"Signature expired: {stamp} is now earlier than ")
        assert reply["message"].endswith(" - 5 min.)")
    else:
        assert reply["message"].startswith(f"Signature not yet current: {stamp} is still later than ")
        assert reply["message"].endswith(" + 5 min.)")
    # Four minutes off is inside the window.
    near = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=4 if minutes > 0 else -4)
    status, _ = send(auth_server, signed_request(auth_server, "ListStreams", b"{}", when=near))
    assert status == 200


def test_session_tokens_and_expiry(server_factory):
    server = server_factory(args=ENFORCE_ARGS + ["--session-second-ms", "2"])
    sts = root(server, "sts")
    creds = sts.get_session_token(DurationSeconds=900)["Credentials"]
    session = client(server, "kinesis", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert "StreamNames" in session.list_streams()
    # The right key with a wrong or missing token is refused.
    forged = client(server, "kinesis", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"] + "x")
    assert error_of(forged.list_streams)[0] == "UnrecognizedClientException"
    tokenless = client(server, "kinesis", creds["AccessKeyId"], creds["SecretAccessKey"])
    assert error_of(tokenless.list_streams)[0] == "UnrecognizedClientException"
    time.sleep(2.2)  # 900 session seconds at 2 ms each
    assert error_of(session.list_streams) == (
        "ExpiredTokenException", 400, "The security token included in the request is expired")
    expired_sts = client(server, "sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    assert error_of(expired_sts.get_caller_identity)[:2] == ("ExpiredToken", 403)


def test_presigned_get_records(auth_server):
    name = unique("presign")
    kinesis = make_stream(auth_server, name)
    kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"presigned")
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    url = kinesis.generate_presigned_url("get_records", Params={"ShardIterator": iterator}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    parsed = urllib.parse.urlsplit(url)
    body = json.dumps({"ShardIterator": iterator}).encode()
    headers = {"X-Amz-Target": "Kinesis_20131202.GetRecords", "Content-Type": "application/x-amz-json-1.1"}

    def post(query, payload):
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        connection.request("POST", f"{parsed.path or '/'}?{query}", body=payload, headers=headers)
        response = connection.getresponse()
        data = json.loads(response.read() or b"{}")
        connection.close()
        return response.status, data

    status, reply = post(parsed.query, body)
    assert status == 200, reply
    assert [r["Data"] for r in reply["Records"]] == ["cHJlc2lnbmVk"]
    # A body that asks for something the URL did not sign is refused.
    other = json.dumps({"ShardIterator": iterator, "Limit": 1}).encode()
    status, reply = post(parsed.query, other)
    assert (status, reply["__type"]) == (400, "InvalidSignatureException")
    # So is a URL whose signature was changed.
    query = parsed.query.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    status, reply = post(query, body)
    assert (status, reply["__type"], reply["message"]) == (400, "InvalidSignatureException", MISMATCH)


def test_aws_cli_against_enforce(auth_server):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY, AWS_SECRET_ACCESS_KEY=ROOT_SECRET)
    from test_cli import aws_cli
    cli = aws_cli()

    def run(*args, **overrides):
        return subprocess.run(
            [cli, "--endpoint-url", auth_server.endpoint, "--output", "json", *args],
            env=dict(env, **overrides), capture_output=True, text=True, timeout=60)

    out = run("sts", "get-caller-identity")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    user = unique("cli-user")
    out = run("iam", "create-user", "--user-name", user)
    assert out.returncode == 0, out.stderr
    out = run("iam", "list-users")
    assert user in [u["UserName"] for u in json.loads(out.stdout)["Users"]]
    out = run("kinesis", "list-streams", AWS_SECRET_ACCESS_KEY="wrong")
    assert out.returncode != 0
    assert "InvalidSignatureException" in out.stderr and "does not match the signature" in out.stderr
    out = run("iam", "get-user", "--user-name", "nobody-here")
    assert out.returncode != 0 and "NoSuchEntity" in out.stderr
    assert "The user with name nobody-here cannot be found." in out.stderr


# --- identities ---------------------------------------------------------------------------------


def test_identities_survive_restart(server_factory):
    server = server_factory(args=ENFORCE_ARGS)
    key, secret = make_user(server, "durable", allow("kinesis:ListStreams", "*"))
    server.restart(kill=True)
    user = client(server, "kinesis", key, secret)
    assert "StreamNames" in user.list_streams()
    sts = client(server, "sts", key, secret)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/durable"
    iam = root(server, "iam")
    assert iam.get_user_policy(UserName="durable", PolicyName="inline")["PolicyDocument"]["Statement"][0]["Action"] == "kinesis:ListStreams"
    # Secrets never reach the log.
    log = server.stderr_path.read_text() if server.stderr_path.exists() else ""
    assert secret not in log and ROOT_SECRET not in log


def test_iam_errors_and_conflicts(auth_server):
    iam = root(auth_server, "iam")
    name = unique("dup")
    iam.create_user(UserName=name)
    assert error_of(iam.create_user, UserName=name) == (
        "EntityAlreadyExists", 409, f"User with name {name} already exists.")
    iam.create_access_key(UserName=name)
    assert error_of(iam.delete_user, UserName=name) == (
        "DeleteConflict", 409, "Cannot delete entity, must delete access keys first.")
    iam.create_access_key(UserName=name)
    assert error_of(iam.create_access_key, UserName=name)[:2] == ("LimitExceeded", 409)
    code, status, message = error_of(
        iam.put_user_policy, UserName=name, PolicyName="bad", PolicyDocument="{not json")
    assert (code, status) == ("MalformedPolicyDocument", 400)
    assert error_of(iam.create_user, UserName="bad name!")[:2] == ("ValidationError", 400)
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []


def test_access_key_status_and_deletion(auth_server):
    key, secret = make_user(auth_server, unique("keys"), allow("kinesis:ListStreams", "*"))
    iam = root(auth_server, "iam")
    user = client(auth_server, "kinesis", key, secret)
    user.list_streams()
    name = client(auth_server, "sts", key, secret).get_caller_identity()["Arn"].rsplit("/", 1)[1]
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
    assert error_of(user.list_streams)[0] == "UnrecognizedClientException"
    iam.update_access_key(UserName=name, AccessKeyId=key, Status="Active")
    user.list_streams()
    iam.delete_access_key(UserName=name, AccessKeyId=key)
    assert error_of(user.list_streams)[0] == "UnrecognizedClientException"


# --- the policy table ---------------------------------------------------------------------------


def test_producer_may_only_put_to_its_stream(auth_server):
    mine, other = unique("prod"), unique("other")
    make_stream(auth_server, mine)
    kinesis = make_stream(auth_server, other)
    user = unique("producer")
    key, secret = make_user(auth_server, user, allow(["kinesis:PutRecord", "kinesis:PutRecords"], stream_arn(mine)))
    producer = client(auth_server, "kinesis", key, secret)
    producer.put_record(StreamName=mine, PartitionKey="k", Data=b"1")
    result = producer.put_records(StreamName=mine, Records=[{"PartitionKey": "k", "Data": b"2"}])
    assert result["FailedRecordCount"] == 0
    caller = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    assert error_of(producer.put_record, StreamName=other, PartitionKey="k", Data=b"x") == (
        "AccessDeniedException", 400, denied_message(caller, "kinesis:PutRecord", stream_arn(other)))
    assert error_of(producer.get_shard_iterator, StreamName=mine, ShardId="shardId-000000000000",
                    ShardIteratorType="TRIM_HORIZON")[0] == "AccessDeniedException"
    assert error_of(producer.list_streams) == (
        "AccessDeniedException", 400, denied_message(caller, "kinesis:ListStreams", "*"))
    assert error_of(producer.delete_stream, StreamName=mine)[0] == "AccessDeniedException"
    # The refused put stored nothing; the refused delete deleted nothing.
    records = kinesis.get_records(ShardIterator=kinesis.get_shard_iterator(
        StreamName=other, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"]
    assert records == []
    assert kinesis.describe_stream_summary(StreamName=mine)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_consumer_role_reads_and_subscribes_to_one_consumer(auth_server):
    name = unique("consume")
    kinesis = make_stream(auth_server, name)
    kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"for the role")
    arn = stream_arn(name)
    mine = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="mine")["Consumer"]["ConsumerARN"]
    theirs = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="theirs")["Consumer"]["ConsumerARN"]
    iam = root(auth_server, "iam")
    user = unique("assumer")
    key, secret = make_user(auth_server, user, allow("sts:AssumeRole", "*"))
    role = unique("reader")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["kinesis:GetShardIterator", "kinesis:GetRecords",
                                           "kinesis:DescribeStreamSummary", "kinesis:ListShards"],
             "Resource": arn},
            {"Effect": "Allow", "Action": ["kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer"],
             "Resource": f"{arn}/consumer/mine:*"},
        ]}))
    assumed = client(auth_server, "sts", key, secret).assume_role(
        RoleArn=role_arn, RoleSessionName="reader-session", DurationSeconds=3600)
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/reader-session"
    assert assumed["AssumedRoleUser"]["Arn"] == session_arn
    creds = assumed["Credentials"]
    reader = client(auth_server, "kinesis", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    shard = reader.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = reader.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in reader.get_records(ShardIterator=iterator)["Records"]] == [b"for the role"]
    wait = time.monotonic() + 10
    while reader.describe_stream_consumer(ConsumerARN=mine)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < wait
        time.sleep(0.05)
    events = reader.subscribe_to_shard(ConsumerARN=mine, ShardId=shard, StartingPosition={"Type": "TRIM_HORIZON"})
    for event in events["EventStream"]:
        records = event["SubscribeToShardEvent"]["Records"]
        if records:
            assert records[0]["Data"] == b"for the role"
            break
    events["EventStream"].close()
    code, status, message = error_of(reader.subscribe_to_shard, ConsumerARN=theirs, ShardId=shard,
                                     StartingPosition={"Type": "TRIM_HORIZON"})
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == denied_message(session_arn, "kinesis:SubscribeToShard", theirs)
    assert error_of(reader.put_record, StreamName=name, PartitionKey="k", Data=b"x")[0] == "AccessDeniedException"
    # A user the role's trust policy admits only through identity policies needs one.
    bare_key, bare_secret = make_user(auth_server, unique("bare"))
    code, status, _ = error_of(client(auth_server, "sts", bare_key, bare_secret).assume_role,
                               RoleArn=role_arn, RoleSessionName="nope")
    assert (code, status) == ("AccessDenied", 403)


def test_explicit_deny_beats_allow(auth_server):
    name = unique("deny")
    kinesis = make_stream(auth_server, name)
    user = unique("almost-admin")
    key, secret = make_user(auth_server, user, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["kinesis:DeleteStream", "kinesis:AddTagsToStream"], "Resource": stream_arn(name)},
    ]})
    admin = client(auth_server, "kinesis", key, secret)
    admin.describe_stream_summary(StreamName=name)
    caller = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    assert error_of(admin.delete_stream, StreamName=name) == (
        "AccessDeniedException", 400,
        denied_message(caller, "kinesis:DeleteStream", stream_arn(name),
                       "with an explicit deny in an identity-based policy"))
    assert error_of(admin.add_tags_to_stream, StreamName=name, Tags={"a": "b"})[0] == "AccessDeniedException"
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []
    assert kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


def test_second_account_reads_through_a_resource_policy(auth_server):
    name = unique("shared")
    kinesis = make_stream(auth_server, name)
    kinesis.put_record(StreamName=name, PartitionKey="k", Data=b"cross-account")
    arn = stream_arn(name)
    other = client(auth_server, "kinesis", OTHER_KEY, OTHER_SECRET)
    other_root = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    assert error_of(other.describe_stream_summary, StreamARN=arn) == (
        "AccessDeniedException", 400,
        denied_message(other_root, "kinesis:DescribeStreamSummary", arn,
                       "because no resource-based policy allows the kinesis:DescribeStreamSummary action"))
    # The other account's own streams are its own.
    assert name not in other.list_streams()["StreamNames"]
    kinesis.put_resource_policy(ResourceARN=arn, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": other_root},
                       "Action": ["kinesis:DescribeStreamSummary", "kinesis:GetShardIterator",
                                  "kinesis:GetRecords", "kinesis:ListShards"],
                       "Resource": arn}]}))
    summary = other.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    assert summary["StreamARN"] == arn
    iterator = other.get_shard_iterator(StreamARN=arn, ShardId="shardId-000000000000",
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = other.get_records(StreamARN=arn, ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"cross-account"]
    assert error_of(other.put_record, StreamARN=arn, PartitionKey="k", Data=b"x")[0] == "AccessDeniedException"


def test_queue_actions_on_the_queue_arn_and_through_a_queue_resource_policy(auth_server):
    name = unique("queued")
    kinesis = root(auth_server)
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(kinesis, name)
    arn = stream_arn(name)
    queue = kinesis.create_queue(QueueName=unique("q"), StreamConfigurationList=[{"StreamARN": arn}])[
        "QueueDescription"]["QueueARN"]
    for i in range(2):
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=f"queued-{i}".encode())
    # A user allowed to receive and acknowledge on the queue ARN can do that, and no more.
    worker_name = unique("worker")
    key, secret = make_user(auth_server, worker_name, allow(
        ["kinesis:ReceiveQueueRecords", "kinesis:AcknowledgeQueueRecords"], queue))
    worker = client(auth_server, "kinesis", key, secret)
    [record] = worker.receive_queue_records(QueueARN=queue, Limit=1, WaitTimeSeconds=10)["QueueRecords"]
    assert worker.acknowledge_queue_records(
        QueueARN=queue, Entries=[{"ReceiptHandle": record["ReceiptHandle"]}])["Failed"] == []
    assert error_of(worker.delete_queue, QueueARN=queue) == (
        "AccessDeniedException", 400,
        denied_message(f"arn:aws:iam::{ACCOUNT}:user/{worker_name}", "kinesis:DeleteQueue", queue))
    # Another account receives through a resource policy on the queue.
    other = client(auth_server, "kinesis", OTHER_KEY, OTHER_SECRET)
    other_root = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    assert error_of(other.receive_queue_records, QueueARN=queue, WaitTimeSeconds=1)[0] == "AccessDeniedException"
    kinesis.put_resource_policy(ResourceARN=queue, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": other_root},
                       "Action": ["kinesis:ReceiveQueueRecords", "kinesis:AcknowledgeQueueRecords"],
                       "Resource": queue}]}))
    assert json.loads(kinesis.get_resource_policy(ResourceARN=queue)["Policy"])["Statement"][0]["Resource"] == queue
    [record] = other.receive_queue_records(QueueARN=queue, WaitTimeSeconds=10)["QueueRecords"]
    assert record["Data"] == b"queued-1"
    assert other.acknowledge_queue_records(
        QueueARN=queue, Entries=[{"ReceiptHandle": record["ReceiptHandle"]}])["Failed"] == []
    assert error_of(other.delete_queue, QueueARN=queue)[0] == "AccessDeniedException"
    kinesis.delete_queue(QueueARN=queue)
    kinesis.delete_stream(StreamName=name)


def test_source_ip_condition(auth_server):
    name = unique("ip")
    make_stream(auth_server, name)
    lan_key, lan_secret = make_user(auth_server, unique("lan"), allow(
        "kinesis:DescribeStreamSummary", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    loop_key, loop_secret = make_user(auth_server, unique("loop"), allow(
        "kinesis:DescribeStreamSummary", "*", Condition={"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}))
    lan = client(auth_server, "kinesis", lan_key, lan_secret)
    assert error_of(lan.describe_stream_summary, StreamName=name)[0] == "AccessDeniedException"
    loop = client(auth_server, "kinesis", loop_key, loop_secret)
    loop.describe_stream_summary(StreamName=name)


def test_policy_variables_and_managed_policies(auth_server):
    iam = root(auth_server, "iam")
    user = unique("self")
    make_stream(auth_server, user)
    key, secret = make_user(auth_server, user, allow("kinesis:DescribeStreamSummary",
                                                      f"arn:aws:kinesis:*:*:stream/${{aws:username}}"))
    mine = client(auth_server, "kinesis", key, secret)
    mine.describe_stream_summary(StreamName=user)
    other = unique("notmine")
    make_stream(auth_server, other)
    assert error_of(mine.describe_stream_summary, StreamName=other)[0] == "AccessDeniedException"
    # A customer managed policy attached through a group.
    policy = iam.create_policy(PolicyName=unique("lister"),
                               PolicyDocument=json.dumps(allow("kinesis:ListStreams", "*")))["Policy"]
    group = unique("group")
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn=policy["Arn"])
    assert error_of(mine.list_streams)[0] == "AccessDeniedException"
    iam.add_user_to_group(GroupName=group, UserName=user)
    mine.list_streams()
    iam.remove_user_from_group(GroupName=group, UserName=user)
    assert error_of(mine.list_streams)[0] == "AccessDeniedException"
    # An AWS managed policy.
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonKinesisReadOnlyAccess")
    mine.list_streams()
    assert error_of(mine.put_record, StreamName=user, PartitionKey="k", Data=b"x")[0] == "AccessDeniedException"


def test_request_tag_conditions(auth_server):
    key, secret = make_user(auth_server, unique("tagger"), allow(
        "kinesis:CreateStream", "*",
        Condition={"StringEquals": {"aws:RequestTag/team": "data"},
                   "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}))
    tagger = client(auth_server, "kinesis", key, secret)
    name = unique("tagged")
    assert error_of(tagger.create_stream, StreamName=name, ShardCount=1, Tags={"team": "web"})[0] == "AccessDeniedException"
    assert error_of(tagger.create_stream, StreamName=name, ShardCount=1)[0] == "AccessDeniedException"
    assert name not in root(auth_server).list_streams()["StreamNames"]
    tagger.create_stream(StreamName=name, ShardCount=1, Tags={"team": "data"})
    wait_status(root(auth_server), name)


# Every served operation with arguments that pass validation: a caller with no policies is
# refused each of them (an operation that skipped its check would answer something else).
def operation_calls(name, arn, consumer_arn):
    shard = "shardId-000000000000"
    return [
        ("create_stream", {"StreamName": name + "-new", "ShardCount": 1}),
        ("delete_stream", {"StreamName": name}),
        ("describe_stream", {"StreamName": name}),
        ("describe_stream_summary", {"StreamName": name}),
        ("list_streams", {}),
        ("list_shards", {"StreamName": name}),
        ("increase_stream_retention_period", {"StreamName": name, "RetentionPeriodHours": 48}),
        ("decrease_stream_retention_period", {"StreamName": name, "RetentionPeriodHours": 24}),
        ("describe_limits", {}),
        ("split_shard", {"StreamName": name, "ShardToSplit": shard, "NewStartingHashKey": "1000"}),
        ("merge_shards", {"StreamName": name, "ShardToMerge": shard, "AdjacentShardToMerge": "shardId-000000000001"}),
        ("update_shard_count", {"StreamName": name, "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
        ("update_stream_mode", {"StreamARN": arn, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        ("register_stream_consumer", {"StreamARN": arn, "ConsumerName": "c2"}),
        ("deregister_stream_consumer", {"ConsumerARN": consumer_arn}),
        ("describe_stream_consumer", {"StreamARN": arn, "ConsumerName": "c1"}),
        ("list_stream_consumers", {"StreamARN": arn}),
        ("put_record", {"StreamName": name, "PartitionKey": "k", "Data": b"x"}),
        ("put_records", {"StreamName": name, "Records": [{"PartitionKey": "k", "Data": b"x"}]}),
        ("get_shard_iterator", {"StreamName": name, "ShardId": shard, "ShardIteratorType": "LATEST"}),
        ("add_tags_to_stream", {"StreamName": name, "Tags": {"a": "b"}}),
        ("remove_tags_from_stream", {"StreamName": name, "TagKeys": ["a"]}),
        ("list_tags_for_stream", {"StreamName": name}),
        ("tag_resource", {"ResourceARN": arn, "Tags": {"a": "b"}}),
        ("untag_resource", {"ResourceARN": arn, "TagKeys": ["a"]}),
        ("list_tags_for_resource", {"ResourceARN": arn}),
        ("enable_enhanced_monitoring", {"StreamName": name, "ShardLevelMetrics": ["ALL"]}),
        ("disable_enhanced_monitoring", {"StreamName": name, "ShardLevelMetrics": ["ALL"]}),
        ("start_stream_encryption", {"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        ("stop_stream_encryption", {"StreamName": name, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
        ("put_resource_policy", {"ResourceARN": arn, "Policy": "{}"}),
        ("get_resource_policy", {"ResourceARN": arn}),
        ("delete_resource_policy", {"ResourceARN": arn}),
        ("describe_account_settings", {}),
        ("update_max_record_size", {"StreamARN": arn, "MaxRecordSizeInKiB": 2048}),
        ("subscribe_to_shard", {"ConsumerARN": consumer_arn, "ShardId": shard, "StartingPosition": {"Type": "LATEST"}}),
        *queue_operation_calls(arn),
        *channel_operation_calls(arn),
    ]


def queue_operation_calls(arn):
    """The queue operations: CreateQueue is authorized on the stream, ListQueues on `*`, the
    others on the queue ARN (which need not exist for the refusal)."""
    queue = arn.split(":stream/")[0] + ":queue/0123456789abcdef01234567"
    entries = [{"ReceiptHandle": "handle"}]
    visibility = [{"ReceiptHandle": "handle", "VisibilityTimeoutSeconds": 0}]
    return [
        ("create_queue", {"QueueName": "q", "StreamConfigurationList": [{"StreamARN": arn}]}),
        ("describe_queue", {"QueueARN": queue}),
        ("list_queues", {}),
        ("update_queue", {"QueueARN": queue, "QueueAttributes": {"VisibilityTimeoutSeconds": 5}}),
        ("delete_queue", {"QueueARN": queue}),
        ("receive_queue_records", {"QueueARN": queue, "WaitTimeSeconds": 1}),
        ("acknowledge_queue_records", {"QueueARN": queue, "Entries": entries}),
        ("update_queue_records_visibility", {"QueueARN": queue, "Entries": visibility}),
        ("receive_dead_letter_queue_records", {"QueueARN": queue, "WaitTimeSeconds": 1}),
        ("acknowledge_dead_letter_queue_records", {"QueueARN": queue, "Entries": entries}),
        ("update_dead_letter_queue_records_visibility", {"QueueARN": queue, "Entries": visibility}),
        ("restore_dead_letter_queue_records", {"QueueARN": queue, "Entries": entries}),
    ]


def channel_operation_calls(arn):
    """The channel operations: each on the channel ARN (CreateChannel on the one it would create),
    ListChannels on `*`; the channel need not exist for the refusal."""
    channel = arn.split(":stream/")[0] + ":channel/c"
    storage = {"BucketARN": "arn:aws:s3:::bucket", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "NONE"}
    return [
        ("create_channel", {"ChannelName": "c", "ServiceExecutionRoleARN": f"arn:aws:iam::{ACCOUNT}:role/r",
                            "StreamConfigurationList": [{"StreamARN": arn, "RecordConfiguration": {"RecordFormatType": "JSON"}}],
                            "S3DestinationConfiguration": {"StorageConfiguration": storage}}),
        ("describe_channel", {"ChannelARN": channel}),
        ("list_channels", {}),
        ("update_channel", {"ChannelARN": channel, "S3DestinationConfiguration": {"DataFreshnessInSeconds": 5}}),
        ("delete_channel", {"ChannelARN": channel}),
    ]


def test_every_operation_is_authorized(auth_server):
    name = unique("everything")
    kinesis = make_stream(auth_server, name)
    arn = stream_arn(name)
    consumer_arn = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c1")["Consumer"]["ConsumerARN"]
    iterator = kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    key, secret = make_user(auth_server, unique("nobody"))
    nobody = client(auth_server, "kinesis", key, secret)
    calls = operation_calls(name, arn, consumer_arn) + [("get_records", {"ShardIterator": iterator})]
    for operation, params in calls:
        method = getattr(nobody, operation, None)
        if method is None:
            continue  # an operation this botocore does not have
        code, status, message = error_of(method, **params)
        assert (code, status) == ("AccessDeniedException", 400), (operation, code, message)
    # Nothing changed.
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["RetentionPeriodHours"] == 24
    assert summary["OpenShardCount"] == 1
    assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == []
    assert [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]] == ["c1"]
    assert name + "-new" not in kinesis.list_streams()["StreamNames"]


def test_audit_log_records_control_plane_and_denials(auth_server):
    name = unique("audited")
    make_stream(auth_server, name)
    key, secret = make_user(auth_server, unique("audited-user"))
    nobody = client(auth_server, "kinesis", key, secret)
    error_of(nobody.delete_stream, StreamName=name)
    log = auth_server.data_dir / "audit" / "audit.log"
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        denied = [e for e in lines if e["eventName"] == "DeleteStream" and e.get("errorCode") == "AccessDeniedException"
                  and e["requestParameters"].get("StreamName") == name]
        created = [e for e in lines if e["eventName"] == "CreateStream" and e["requestParameters"].get("StreamName") == name]
        if denied and created or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert created and created[0]["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert denied and denied[0]["userIdentity"]["type"] == "IAMUser"
    assert denied[0]["sourceIPAddress"] == "127.0.0.1"
    keys_created = [e for e in lines if e["eventName"] == "CreateAccessKey"]
    assert keys_created
    text = log.read_text()
    assert secret not in text and ROOT_SECRET not in text


def test_secure_by_default_on_other_addresses(tmp_path):
    from millrace_testlib import millrace_bin
    base = [str(millrace_bin()), "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d")]
    refused = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0:0 without authentication" in refused.stderr
    verify = subprocess.run([*base, "--auth", "verify"], capture_output=True, text=True, timeout=30)
    assert verify.returncode != 0 and "needs credentials" in verify.stderr
    # With root credentials it starts, in enforce, and says so without the secret.
    proc = subprocess.Popen([*base, "--root-access-key-id", ROOT_KEY, "--root-secret-access-key", ROOT_SECRET],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://0.0.0.0:")
        deadline = time.monotonic() + 10
        seen = ""
        while "millrace serving" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert 'auth="enforce"' in seen or "auth=enforce" in seen
        assert ROOT_KEY in seen and ROOT_SECRET not in seen
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def raw_sigv4(server, target, body, *, payload_hash, key=ROOT_KEY, secret=ROOT_SECRET):
    """A request signed by hand (an implementation independent of the SDKs'): the canonical
    request carries `x-amz-content-sha256` with the given payload hash."""
    import hashlib
    import hmac

    now = dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    host = urllib.parse.urlsplit(server.endpoint).netloc
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": amz_date,
        "x-amz-target": f"Kinesis_20131202.{target}",
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["POST", "/", "", *[f"{k}:{headers[k]}" for k in sorted(headers)], "", signed, payload_hash])
    scope = f"{day}/{REGION}/kinesis/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, REGION, "kinesis", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    parsed = urllib.parse.urlsplit(server.endpoint)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else {})


def test_unsigned_payload_and_declared_hashes(auth_server):
    import hashlib

    body = b"{}"
    status, reply = raw_sigv4(auth_server, "ListStreams", body, payload_hash="UNSIGNED-PAYLOAD")
    assert status == 200 and "StreamNames" in reply
    status, reply = raw_sigv4(auth_server, "ListStreams", body, payload_hash=hashlib.sha256(body).hexdigest())
    assert status == 200
    # A declared hash that is not the body's is refused, even though the signature covers it.
    status, reply = raw_sigv4(auth_server, "ListStreams", body, payload_hash=hashlib.sha256(b"other").hexdigest())
    assert status == 400 and reply["__type"] == "InvalidSignatureException"


def test_channel_actions_on_the_channel_arn_and_pass_role(auth_server):
    name = unique("channeled")
    kinesis = root(auth_server)
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(kinesis, name)
    channel_name = unique("ch")
    channel = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/{channel_name}"
    role = f"arn:aws:iam::{ACCOUNT}:role/{unique('delivery')}"
    params = {
        "ChannelName": channel_name, "ServiceExecutionRoleARN": role,
        "StreamConfigurationList": [{"StreamARN": stream_arn(name), "RecordConfiguration": {"RecordFormatType": "JSON"}}],
        "S3DestinationConfiguration": {"StorageConfiguration": {
            "BucketARN": "arn:aws:s3:::channel-auth", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "NONE"}},
    }
    # Allowed CreateChannel on the channel ARN, but not to pass the role: refused, nothing made.
    creator_name = unique("creator")
    key, secret = make_user(auth_server, creator_name, allow(["kinesis:CreateChannel", "kinesis:DescribeChannel"], channel))
    creator = client(auth_server, "kinesis", key, secret)
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{creator_name}"
    assert error_of(creator.create_channel, **params) == (
        "AccessDeniedException", 400, denied_message(user_arn, "iam:PassRole", role))
    assert error_of(creator.describe_channel, ChannelARN=channel)[0] == "ResourceNotFoundException"
    # With iam:PassRole on the role it is created; other actions stay refused.
    iam = root(auth_server, "iam")
    iam.put_user_policy(UserName=creator_name, PolicyName="pass", PolicyDocument=json.dumps(allow("iam:PassRole", role)))
    assert creator.create_channel(**params)["ChannelDescription"]["ChannelARN"] == channel
    assert creator.describe_channel(ChannelARN=channel)["ChannelDescription"]["ChannelName"] == channel_name
    assert error_of(creator.delete_channel, ChannelARN=channel) == (
        "AccessDeniedException", 400, denied_message(user_arn, "kinesis:DeleteChannel", channel))
    assert error_of(creator.list_channels)[0] == "AccessDeniedException"
    kinesis.delete_channel(ChannelARN=channel)
    # CreateChannel's tags are request-tag condition keys.
    tagged_name = unique("tagged")
    tagged = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/{tagged_name}"
    tagger_name = unique("tagger")
    key, secret = make_user(auth_server, tagger_name, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:CreateChannel", "Resource": tagged,
         "Condition": {"StringEquals": {"aws:RequestTag/team": "data"}}},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role},
    ]})
    tagger = client(auth_server, "kinesis", key, secret)
    assert error_of(tagger.create_channel, **{**params, "ChannelName": tagged_name}, Tags={"team": "web"})[0] == \
        "AccessDeniedException"
    tagger.create_channel(**{**params, "ChannelName": tagged_name}, Tags={"team": "data"})
    kinesis.delete_channel(ChannelARN=tagged)
