"""Details of the wire that AWS answers in a particular way (issue 15's list), through raw HTTP and boto3."""

from __future__ import annotations

from millrace_testlib import ACCOUNT, client_error, create_stream, raw_request, wait_status


def test_cors_preflight_echoes_what_was_asked(server):
    resp = raw_request(server.endpoint, None, b"", method="OPTIONS", content_type=None, auth=False, extra_headers={
        "Origin": "http://localhost:8080",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target,content-type,x-amz-date,authorization",
    })
    assert resp.status == 200
    assert resp.headers["access-control-allow-headers"] == "x-amz-target,content-type,x-amz-date,authorization"
    assert resp.headers["access-control-allow-methods"] == "POST"
    assert resp.headers["access-control-allow-origin"] == "*"
    assert "x-amz-id-2" not in resp.headers
    assert "content-type" not in resp.headers
    assert resp.body == b""


def test_authorization_parameters_split_on_any_run_of_commas_and_spaces(server):
    resp = raw_request(server.endpoint, "ListStreams", {}, auth=False,
                       extra_headers={"Authorization": "AWS4- Signature=b Credential=a"})
    assert resp.status == 400
    assert resp.json["__type"] == "IncompleteSignatureException"
    assert resp.json["message"] == (
        "Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of "
        "either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4- Signature=b Credential=a")


def test_an_empty_query_parameter_counts_as_missing(server):
    resp = raw_request(server.endpoint, "ListStreams", {}, auth=False, path="/?X-Amz-Algorithm")
    assert resp.status == 400
    assert resp.json["__type"] == "IncompleteSignatureException"
    assert resp.json["message"].startswith("AWS query-string parameters must include 'X-Amz-Algorithm'. ")


def test_resharding_an_on_demand_stream(server):
    kinesis = server.client()
    kinesis.create_stream(StreamName="od", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_status(kinesis, "od")
    shard = kinesis.list_shards(StreamName="od")["Shards"][0]["ShardId"]
    err = client_error(kinesis.split_shard, StreamName="od", ShardToSplit=shard, NewStartingHashKey="12")
    assert err.response["Error"]["Code"] == "ValidationException"
    assert err.response["Error"]["Message"] == f"Request is invalid. Stream od under account {ACCOUNT} is in On-Demand mode."
    err = client_error(kinesis.update_shard_count, StreamName="od", TargetShardCount=8, ScalingType="UNIFORM_SCALING")
    assert err.response["Error"]["Message"] == f"Request is invalid. Stream od under account {ACCOUNT} is in On-Demand mode."
    assert len(kinesis.list_shards(StreamName="od")["Shards"]) == 4
