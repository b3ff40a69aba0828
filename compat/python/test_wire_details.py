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


ACCESS_DENIED_XML = (b"<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized"
                     b"</Message>\n</AccessDeniedException>\n")


def test_other_methods_get_the_xml_access_denied(server):
    for method in ("GET", "PUT", "DELETE"):
        resp = raw_request(server.endpoint, None, b"", method=method, content_type=None)
        assert resp.status == 403, (method, resp)
        assert "content-type" not in resp.headers
        assert resp.body == ACCESS_DENIED_XML


def test_a_body_without_content_type(server):
    resp = raw_request(server.endpoint, "ListStreams", b"{}", content_type=None)
    assert (resp.status, resp.body) == (403, ACCESS_DENIED_XML)
    assert "content-type" not in resp.headers
    resp = raw_request(server.endpoint, "ListStreams", b"{}", content_type="text/plain")
    assert (resp.status, resp.body) == (404, b"<UnknownOperationException/>\n")


def test_application_json_gets_the_coral_envelope(server):
    resp = raw_request(server.endpoint, "ListStreams", b"{}", content_type="application/json")
    assert resp.status == 404
    assert resp.json == {"Output": {"__type": "com.amazon.coral.service#UnknownOperationException"}, "Version": "1.0"}
    resp = raw_request(server.endpoint, "ListStreams", b"{nope", content_type="application/json")
    assert resp.status == 400
    assert resp.json == {"Output": {"__type": "com.amazon.coral.service#SerializationException"}, "Version": "1.0"}


def test_early_errors_are_cbor_unless_the_request_is_json_1_1(server):
    from test_cbor import decode

    for content_type in (None, "application/json", "application/x-amz-json-1.0", "application/x-amz-cbor-1.1"):
        resp = raw_request(server.endpoint, "DescribeStream", b"", content_type=content_type)
        assert resp.status == 400, (content_type, resp)
        assert resp.headers["content-type"] == "application/x-amz-cbor-1.1"
        assert decode(resp.body) == {"__type": "SerializationException"}
    resp = raw_request(server.endpoint, "Frobnicate", b"", content_type="application/json")
    assert decode(resp.body) == {"__type": "UnknownOperationException"}
    resp = raw_request(server.endpoint, "DescribeStream", b"")
    assert resp.headers["content-type"] == "application/x-amz-json-1.1"
    assert resp.json == {"__type": "SerializationException"}


def test_shard_iterators_have_the_services_shape(server):
    import base64

    kinesis = server.client()
    for name in ("it", "a-much-longer-stream-name-" + "x" * 90):
        create_stream(kinesis, name)
        iterator = kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        raw = base64.b64decode(iterator)
        assert len(raw) >= 152 and (len(raw) - 152) % 16 == 0, len(raw)
        assert iterator.startswith("AAAAAAAAAAE")
        assert kinesis.get_records(ShardIterator=iterator)["Records"] == []


def _iterator_error(kinesis, stream, shard, number):
    return client_error(kinesis.get_shard_iterator, StreamName=stream, ShardId=shard,
                        ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=number)


def test_sequence_numbers_in_the_older_layout(server):
    kinesis = server.client()
    create_stream(kinesis, "seq", shards=2)
    shard0 = "shardId-000000000000"
    err = _iterator_error(kinesis, "seq", shard0, "5")
    assert err.response["Error"]["Code"] == "InvalidArgumentException"
    assert err.response["Error"]["Message"] == (
        "Invalid StartingSequenceNumber. It encodes shardId-000000000005, while it was used in a call to a shard "
        "with shardId-000000000000")
    err = _iterator_error(kinesis, "seq", shard0, "0")
    assert (err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalFailure", 500)
    # A current-layout number whose shard index has the top bit set prints as a signed number.
    start = int(kinesis.list_shards(StreamName="seq")["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"])
    index_mask = 0xFFFFFFFF << 4
    top_bit = (start & ~index_mask) | (0x80000000 << 4)
    top_bit = (top_bit & ~(0xF << 144)) | (0x0 << 144)  # the low hex digit of the index (0) stays in step
    err = _iterator_error(kinesis, "seq", shard0, str(top_bit))
    assert err.response["Error"]["Message"] == (
        "Invalid StartingSequenceNumber. It encodes shardId--02147483648, while it was used in a call to a shard "
        "with shardId-000000000000")


def test_sequence_number_for_ordering_layouts(server):
    kinesis = server.client()
    create_stream(kinesis, "order")
    kinesis.put_record(StreamName="order", PartitionKey="k", Data=b"x", SequenceNumberForOrdering="0")
    # A current-layout number whose creation time has every bit set is refused.
    absurd = (2 << 184) | (((1 << 36) - 1) << 148) | 2
    err = client_error(kinesis.put_record, StreamName="order", PartitionKey="k", Data=b"x",
                       SequenceNumberForOrdering=str(absurd))
    assert err.response["Error"]["Code"] == "InvalidArgumentException"
    assert err.response["Error"]["Message"] == (
        f"ExclusiveMinimumSequenceNumber {absurd} used in PutRecord on stream order under account {ACCOUNT} "
        "is invalid.")


def test_put_records_data_with_json_escapes_and_bad_strings(server):
    """Data is base64 text in a JSON string: escapes such as `\\/` (PHP's json_encode writes
    them) decode like the plain character; a non-ASCII or non-string Data is a
    SerializationException that stores nothing."""
    import base64

    kinesis = server.client()
    stream = "escaped-data"
    create_stream(kinesis, stream)
    payload = bytes(range(250, 256)) * 3  # base64 with several "/"
    text = base64.b64encode(payload).decode()
    assert "/" in text
    escaped = text.replace("/", "\\/")
    body = '{"StreamName":"%s","Records":[{"Data":"%s","PartitionKey":"k"}]}' % (stream, escaped)
    resp = raw_request(server.endpoint, "PutRecords", body)
    assert resp.status == 200, resp
    assert resp.json["FailedRecordCount"] == 0
    for bad in ('"Data":"QUJD\\u00e9"', '"Data":"QUJD\u00e9"', '"Data":12', '"Data":[65]'):
        body = '{"StreamName":"%s","Records":[{%s,"PartitionKey":"k"}]}' % (stream, bad)
        resp = raw_request(server.endpoint, "PutRecords", body.encode())
        assert resp.status == 400, (bad, resp)
        assert resp.json["__type"] == "SerializationException", (bad, resp.json)
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [r["Data"] for r in records] == [payload]
