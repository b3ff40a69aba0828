"""Bad input: every case asserts the error code, the HTTP status and the exact message text AWS sends
(/work/shared/docs/kinesis-wire-notes.md §1.2, §1.5, §2.3-§2.10). Most cases go over raw HTTP with a
fake but well-formed SigV4 header, so that nothing on the client side repairs or rejects them; a few go
through boto3 to check that botocore parses the errors the same way.

The last test of the module reads the stream the bad requests were aimed at and checks that not a
byte changed.

Not covered: ExpiredIteratorException needs an iterator older than 300 s, which the server gives no
way to fake (iterators are authenticated), and waiting 5 minutes is too slow for this suite.
"""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from millrace_testlib import (
    ACCOUNT,
    MAX_HASH_KEY,
    REGION,
    Message,
    assert_client_error,
    assert_error,
    b64,
    client_error,
    create_stream,
    make_client,
    not_found,
    raw_request,
    read_shard,
    shard_not_found,
    validation_entry as V,
    wait_status,
)

EXISTING = "bad-input"  # 3 shards, ACTIVE, holds records
MISSING = "no-such-stream"
NAME_PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
SEQ_PATTERN = r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,128})"
HASH_PATTERN = r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})"
NOT_NULL = "Member must not be null"
ITERATOR_ENUM = ("Member must satisfy enum value set: "
                 "[AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]")
TRUNC_NUM = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"
ITER_COMBO = ("Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber "
              "or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. ")


def len_ge(n):
    return f"Member must have length greater than or equal to {n}"


def len_le(n):
    return f"Member must have length less than or equal to {n}"


def val_ge(n):
    return f"Member must have value greater than or equal to {n}"


def val_le(n):
    return f"Member must have value less than or equal to {n}"


def shard(i: int) -> str:
    return f"shardId-{i:012d}"


# --------------------------------------------------------------------------------------------------
# Module set-up: a stream with known content.


@pytest.fixture(scope="module")
def stored(module_server):
    """Writes records to EXISTING and returns {shard id: [(seq, pk, data)]}."""
    client = module_server.client()
    create_stream(client, EXISTING, 3)
    rng = random.Random(99)
    want: dict[str, list] = {shard(i): [] for i in range(3)}
    # Explicit hash keys spread the records over all three shards.
    entries = []
    for i in range(30):
        ehk = str(rng.randrange(0, MAX_HASH_KEY + 1))
        entries.append({"PartitionKey": f"pk{i}", "Data": rng.randbytes(rng.randrange(0, 300)), "ExplicitHashKey": ehk})
    out = client.put_records(StreamName=EXISTING, Records=entries)
    assert out["FailedRecordCount"] == 0
    for e, r in zip(entries, out["Records"]):
        want[r["ShardId"]].append((r["SequenceNumber"], e["PartitionKey"], e["Data"]))
    assert all(want.values()), "every shard should hold records"
    return want


@pytest.fixture(scope="module")
def ep(module_server, stored):
    return module_server.endpoint


def call(ep, op, body, **kw):
    return raw_request(ep, op, body, **kw)


# --------------------------------------------------------------------------------------------------
# Table-driven cases: (operation, body, code, message, validation entries, message key)

ABSENT = Message.ABSENT


def case(id_, op, body, code, message=None, *, validation=None, key=None, status=400, **kw):
    return pytest.param(op, body, code, message, validation, key, status, kw, id=id_)


CASES = [
    # ---- envelope ----
    case("empty-body-valid-target", "DescribeStream", b"", "SerializationException", ABSENT),
    case("empty-body-unknown-target", "Frobnicate", b"", "UnknownOperationException", ABSENT),
    case("unparseable-body", "ListStreams", b"{not json", "SerializationException", ABSENT),
    case("unknown-operation", "Frobnicate", {}, "UnknownOperationException", ABSENT),
    case("unknown-service-prefix", None, {}, "UnknownOperationException", ABSENT,
         target="Kinesis_20991231.ListStreams"),
    case("missing-authentication", "ListStreams", {}, "MissingAuthenticationTokenException",
         "Missing Authentication Token", auth=False),
    # ---- wrong JSON types: SerializationException with key "Message" ----
    case("integer-as-string", "CreateStream", {"StreamName": "x", "ShardCount": "3"}, "SerializationException",
         "class java.lang.String can not be converted to an Integer", key="Message"),
    case("integer-as-boolean", "CreateStream", {"StreamName": "x", "ShardCount": True}, "SerializationException",
         "class java.lang.Boolean can not be converted to an Integer", key="Message"),
    case("string-as-number", "CreateStream", {"StreamName": 123, "ShardCount": 1}, "SerializationException",
         f"{TRUNC_NUM} can not be converted to an String", key="Message"),
    case("string-as-boolean", "DescribeStream", {"StreamName": True}, "SerializationException",
         "class java.lang.Boolean can not be converted to an String", key="Message"),
    case("string-as-object", "DescribeStream", {"StreamName": {}}, "SerializationException",
         "Start of structure or map found where not expected.", key="Message"),
    case("string-as-list", "DescribeStream", {"StreamName": []}, "SerializationException",
         "Start of list found where not expected", key="Message"),
    case("list-as-string", "PutRecords", {"StreamName": EXISTING, "Records": "x"}, "SerializationException",
         "Expected list or null", key="Message"),
    case("list-as-object", "PutRecords", {"StreamName": EXISTING, "Records": {}}, "SerializationException",
         "Start of structure or map found where not expected.", key="Message"),
    case("structure-as-string", "PutRecords", {"StreamName": EXISTING, "Records": ["x"]}, "SerializationException",
         "Expected null", key="Message"),
    case("structure-member-as-string", "CreateStream", {"StreamName": "x", "StreamModeDetails": "PROVISIONED"},
         "SerializationException", "Expected null", key="Message"),
    case("map-as-string", "AddTagsToStream", {"StreamName": EXISTING, "Tags": "a=b"}, "SerializationException",
         "Expected map or null", key="Message"),
    case("map-as-list", "AddTagsToStream", {"StreamName": EXISTING, "Tags": []}, "SerializationException",
         "Start of list found where not expected", key="Message"),
    case("blob-as-number", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a", "Data": 12},
         "SerializationException", f"{TRUNC_NUM} can not be converted to a Blob", key="Message"),
    case("base64-bad-length", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a", "Data": "abc"},
         "SerializationException",
         "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 3",
         key="Message"),
    case("base64-pad-in-middle", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a", "Data": "ab=c"},
         "SerializationException", "'ab=c' can not be converted to a Blob: Invalid Base64 character: '='",
         key="Message"),
    case("base64-bad-last-char", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a", "Data": "YR=="},
         "SerializationException",
         "'YR==' can not be converted to a Blob: Invalid last non-pad Base64 character dectected", key="Message"),
    case("boolean-as-string", "DeleteStream", {"StreamName": MISSING, "EnforceConsumerDeletion": "23"},
         "SerializationException", "'23' can not be converted to an Boolean", key="Message"),
    case("boolean-as-number", "DeleteStream", {"StreamName": MISSING, "EnforceConsumerDeletion": 1},
         "SerializationException", f"{TRUNC_NUM} can not be converted to an Boolean", key="Message"),
    case("timestamp-as-string", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "AT_TIMESTAMP",
          "Timestamp": "2024-01-01T00:00:00Z"},
         "SerializationException", "class java.lang.String can not be converted to milliseconds since epoch",
         key="Message"),
    case("limit-as-string", "ListStreams", {"Limit": "10"}, "SerializationException",
         "class java.lang.String can not be converted to an Integer", key="Message"),
    # ---- model constraints: ValidationException ----
    case("create-missing-name", "CreateStream", {"ShardCount": 1}, "ValidationException",
         validation=[V(None, "streamName", NOT_NULL)], key="message"),
    case("create-empty-name", "CreateStream", {"StreamName": "", "ShardCount": 1}, "ValidationException",
         validation=[V("", "streamName", NAME_PATTERN), V("", "streamName", len_ge(1))]),
    case("create-long-name", "CreateStream", {"StreamName": "n" * 129, "ShardCount": 1}, "ValidationException",
         validation=[V("n" * 129, "streamName", len_le(128))]),
    case("create-bad-name-chars", "CreateStream", {"StreamName": "bad name!", "ShardCount": 1},
         "ValidationException", validation=[V("bad name!", "streamName", NAME_PATTERN)]),
    case("create-zero-shards", "CreateStream", {"StreamName": "zero", "ShardCount": 0}, "ValidationException",
         validation=[V("0", "shardCount", val_ge(1))]),
    case("create-several-violations", "CreateStream", {"StreamName": "", "ShardCount": -5}, "ValidationException",
         validation=[V("", "streamName", NAME_PATTERN), V("", "streamName", len_ge(1)),
                     V("-5", "shardCount", val_ge(1))]),
    case("put-missing-data", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a"}, "ValidationException",
         validation=[V(None, "data", NOT_NULL)]),
    case("put-empty-partition-key", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "", "Data": "AA=="},
         "ValidationException", validation=[V("", "partitionKey", len_ge(1))]),
    case("put-long-partition-key", "PutRecord", {"StreamName": EXISTING, "PartitionKey": "k" * 257, "Data": ""},
         "ValidationException", validation=[V("k" * 257, "partitionKey", len_le(256))]),
    case("put-bad-explicit-hash-key", "PutRecord",
         {"StreamName": EXISTING, "PartitionKey": "a", "Data": "", "ExplicitHashKey": "abc"},
         "ValidationException", validation=[V("abc", "explicitHashKey", HASH_PATTERN)]),
    case("put-bad-ordering-seq", "PutRecord",
         {"StreamName": EXISTING, "PartitionKey": "a", "Data": "", "SequenceNumberForOrdering": "-1"},
         "ValidationException", validation=[V("-1", "sequenceNumberForOrdering", SEQ_PATTERN)]),
    case("put-records-empty-list", "PutRecords", {"StreamName": EXISTING, "Records": []}, "ValidationException",
         validation=[V("[]", "records", len_ge(1))]),
    case("put-records-missing-list", "PutRecords", {"StreamName": EXISTING}, "ValidationException",
         validation=[V(None, "records", NOT_NULL)]),
    case("put-records-entry-missing-data", "PutRecords",
         {"StreamName": EXISTING, "Records": [{"PartitionKey": "a"}]}, "ValidationException",
         validation=[V(None, "records.1.member.data", NOT_NULL)]),
    case("put-records-entry-empty-key", "PutRecords",
         {"StreamName": EXISTING, "Records": [{"PartitionKey": "a", "Data": ""}, {"PartitionKey": "", "Data": ""}]},
         "ValidationException", validation=[V("", "records.2.member.partitionKey", len_ge(1))]),
    case("iterator-type-unknown", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "FOO"}, "ValidationException",
         validation=[V("FOO", "shardIteratorType", ITERATOR_ENUM)]),
    case("iterator-missing-members", "GetShardIterator", {"StreamName": EXISTING}, "ValidationException",
         validation=[V(None, "shardId", NOT_NULL), V(None, "shardIteratorType", NOT_NULL)]),
    case("iterator-bad-seq-pattern", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "AT_SEQUENCE_NUMBER",
          "StartingSequenceNumber": "12ab"},
         "ValidationException", validation=[V("12ab", "startingSequenceNumber", SEQ_PATTERN)]),
    case("get-records-empty-iterator", "GetRecords", {"ShardIterator": ""}, "ValidationException",
         validation=[V("", "shardIterator", len_ge(1))]),
    case("get-records-missing-iterator", "GetRecords", {}, "ValidationException",
         validation=[V(None, "shardIterator", NOT_NULL)]),
    case("get-records-long-iterator", "GetRecords", {"ShardIterator": "A" * 513}, "ValidationException",
         validation=[V("A" * 513, "shardIterator", len_le(512))]),
    case("get-records-limit-zero", "GetRecords", {"ShardIterator": "AAAA", "Limit": 0}, "ValidationException",
         validation=[V("0", "limit", val_ge(1))]),
    case("get-records-limit-clamped", "GetRecords", {"ShardIterator": "AAAA", "Limit": 100000000000},
         "ValidationException", validation=[V("2147483647", "limit", val_le(10000))]),
    case("list-streams-limit-zero", "ListStreams", {"Limit": 0}, "ValidationException",
         validation=[V("0", "limit", val_ge(1))]),
    case("list-streams-limit-high", "ListStreams", {"Limit": 10001}, "ValidationException",
         validation=[V("10001", "limit", val_le(10000))]),
    case("list-shards-max-results-zero", "ListShards", {"StreamName": EXISTING, "MaxResults": 0},
         "ValidationException", validation=[V("0", "maxResults", val_ge(1))]),
    case("list-shards-empty-strings", "ListShards", {"StreamName": "", "NextToken": ""}, "ValidationException",
         validation=[V("", "streamName", NAME_PATTERN), V("", "streamName", len_ge(1)),
                     V("", "nextToken", len_ge(1))]),
    case("describe-limit-zero", "DescribeStream", {"StreamName": EXISTING, "Limit": 0}, "ValidationException",
         validation=[V("0", "limit", val_ge(1))]),
    case("tags-empty-map", "AddTagsToStream", {"StreamName": EXISTING, "Tags": {}}, "ValidationException",
         validation=[V("{}", "tags", len_ge(1))]),
    case("tags-long-key", "AddTagsToStream", {"StreamName": EXISTING, "Tags": {"k" * 129: "v"}},
         "ValidationException",
         validation=[V("{" + "k" * 129 + "=v}", "tags",
                       "Map keys must satisfy constraint: [Member must have length less than or equal to 128, "
                       "Member must have length greater than or equal to 1]")]),
    case("retention-missing-hours", "IncreaseStreamRetentionPeriod", {"StreamName": EXISTING},
         "ValidationException", validation=[V(None, "retentionPeriodHours", NOT_NULL)]),
    # ---- missing streams and shards ----
    case("describe-missing", "DescribeStream", {"StreamName": MISSING}, "ResourceNotFoundException",
         not_found(MISSING), key="message"),
    case("describe-summary-missing", "DescribeStreamSummary", {"StreamName": MISSING}, "ResourceNotFoundException",
         not_found(MISSING)),
    case("delete-missing", "DeleteStream", {"StreamName": MISSING}, "ResourceNotFoundException", not_found(MISSING)),
    case("put-record-missing", "PutRecord", {"StreamName": MISSING, "PartitionKey": "a", "Data": "AA=="},
         "ResourceNotFoundException", not_found(MISSING)),
    case("put-records-missing", "PutRecords",
         {"StreamName": MISSING, "Records": [{"PartitionKey": "a", "Data": "AA=="}]},
         "ResourceNotFoundException", not_found(MISSING)),
    case("list-shards-missing", "ListShards", {"StreamName": MISSING}, "ResourceNotFoundException",
         not_found(MISSING)),
    case("tags-missing", "ListTagsForStream", {"StreamName": MISSING}, "ResourceNotFoundException",
         not_found(MISSING)),
    case("add-tags-missing", "AddTagsToStream", {"StreamName": MISSING, "Tags": {"a": "b"}},
         "ResourceNotFoundException", not_found(MISSING)),
    case("retention-missing-stream", "IncreaseStreamRetentionPeriod",
         {"StreamName": MISSING, "RetentionPeriodHours": 48}, "ResourceNotFoundException", not_found(MISSING)),
    case("iterator-missing-stream", "GetShardIterator",
         {"StreamName": MISSING, "ShardId": shard(0), "ShardIteratorType": "LATEST"},
         "ResourceNotFoundException", shard_not_found(MISSING)),
    case("iterator-missing-shard", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(7), "ShardIteratorType": "LATEST"},
         "ResourceNotFoundException", shard_not_found(EXISTING, shard(7))),
    case("split-unparseable-shard", "SplitShard",
         {"StreamName": MISSING, "ShardToSplit": "ABKLFD8", "NewStartingHashKey": "12"},
         "ResourceNotFoundException", f"Could not find shard ABKLFD8 in stream {MISSING} under account {ACCOUNT}."),
    # ---- semantic checks ----
    case("create-existing", "CreateStream", {"StreamName": EXISTING, "ShardCount": 1}, "ResourceInUseException",
         f"Stream {EXISTING} under account {ACCOUNT} already exists."),
    case("explicit-hash-key-too-big", "PutRecord",
         {"StreamName": EXISTING, "PartitionKey": "a", "Data": "AA==", "ExplicitHashKey": str(2**128)},
         "InvalidArgumentException",
         f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {2**128}"),
    case("explicit-hash-key-too-big-in-batch", "PutRecords",
         {"StreamName": EXISTING, "Records": [
             {"PartitionKey": "a", "Data": "AA=="},
             {"PartitionKey": "a", "Data": "AA==", "ExplicitHashKey": "9" * 39},
             {"PartitionKey": "b", "Data": "AQ=="}]},
         "InvalidArgumentException",
         f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {'9' * 39}"),
    case("list-shards-token-and-name", "ListShards", {"StreamName": EXISTING, "NextToken": "abc"},
         "InvalidArgumentException", "NextToken and StreamName cannot be provided together."),
    case("list-shards-neither", "ListShards", {}, "InvalidArgumentException",
         "Either NextToken or StreamName should be provided."),
    case("at-seq-without-seq", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "AT_SEQUENCE_NUMBER"},
         "InvalidArgumentException", ITER_COMBO + "Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber."),
    case("after-seq-without-seq", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "AFTER_SEQUENCE_NUMBER"},
         "InvalidArgumentException",
         ITER_COMBO + "Request specified AFTER_SEQUENCE_NUMBER and no StartingSequenceNumber."),
    case("at-timestamp-without-timestamp", "GetShardIterator",
         {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": "AT_TIMESTAMP"},
         "InvalidArgumentException",
         "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. "
         "Current request has no timestamp parameter."),
    case("forged-iterator", "GetRecords", {"ShardIterator": b64(bytes(7) + b"\x01" + bytes(range(160)))},
         "InvalidArgumentException", "Invalid ShardIterator."),
    case("garbage-iterator", "GetRecords", {"ShardIterator": "not an iterator at all"},
         "InvalidArgumentException", "Invalid ShardIterator."),
    case("retention-increase-below-minimum", "IncreaseStreamRetentionPeriod",
         {"StreamName": EXISTING, "RetentionPeriodHours": 23}, "InvalidArgumentException",
         "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."),
    case("retention-decrease-below-minimum", "DecreaseStreamRetentionPeriod",
         {"StreamName": EXISTING, "RetentionPeriodHours": 23}, "InvalidArgumentException",
         "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."),
    case("retention-decrease-above-current", "DecreaseStreamRetentionPeriod",
         {"StreamName": EXISTING, "RetentionPeriodHours": 25}, "InvalidArgumentException",
         f"Requested retention period (25 hours) for stream {EXISTING} can not be longer than existing retention "
         "period (24 hours). Use IncreaseRetentionPeriod API."),
    case("split-at-parent-start-plus-one", "SplitShard",
         {"StreamName": EXISTING, "ShardToSplit": shard(0), "NewStartingHashKey": "1"}, "InvalidArgumentException",
         f"NewStartingHashKey 1 used in SplitShard() on shard {shard(0)} in stream {EXISTING} under account "
         f"{ACCOUNT} is not both greater than one plus the shard's StartingHashKey 0 and less than the shard's "
         "EndingHashKey 113427455640312821154458202477256070484."),
    case("merge-not-adjacent", "MergeShards",
         {"StreamName": EXISTING, "ShardToMerge": shard(0), "AdjacentShardToMerge": shard(2)},
         "InvalidArgumentException",
         f"Shards {shard(0)} and {shard(2)} in stream {EXISTING} under account {ACCOUNT} are not an adjacent pair "
         "of shards eligible for merging"),
    case("merge-wrong-order", "MergeShards",
         {"StreamName": EXISTING, "ShardToMerge": shard(1), "AdjacentShardToMerge": shard(0)},
         "InvalidArgumentException",
         f"Shards {shard(1)} and {shard(0)} in stream {EXISTING} under account {ACCOUNT} are not an adjacent pair "
         "of shards eligible for merging"),
    case("tags-invalid-characters", "AddTagsToStream", {"StreamName": EXISTING, "Tags": {"a;b": "v"}},
         "InvalidArgumentException",
         "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."),
    # ---- texts matched to AWS's (issue 15) ----
    *[case(f"iterator-unparseable-shard-{given}", "GetShardIterator",
           {"StreamName": EXISTING, "ShardId": given, "ShardIteratorType": "LATEST"},
           "ResourceNotFoundException", f"Could not find shard {given} in stream {EXISTING} under account {ACCOUNT}.")
      for given in ["2147483648", "shardId-002147483648", "ABKLFD8", "2.14E4"]],
    case("untag-invalid-characters", "RemoveTagsFromStream", {"StreamName": EXISTING, "TagKeys": ["a;b"]},
         "InvalidArgumentException",
         "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @."),
    case("untag-percent", "RemoveTagsFromStream", {"StreamName": EXISTING, "TagKeys": ["50%"]},
         "InvalidArgumentException",
         f"Failed to remove tags from stream {EXISTING} under account {ACCOUNT} because some tags contained illegal "
         "characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."),
    case("delete-missing-resource-policy", "DeleteResourcePolicy",
         {"ResourceARN": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{EXISTING}"}, "ResourceNotFoundException",
         f"No resource policy found for resource ARN arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{EXISTING}."),
]


@pytest.mark.parametrize("op,body,code,message,validation,key,status,kw", CASES)
def test_bad_request(ep, op, body, code, message, validation, key, status, kw):
    resp = call(ep, op, body, **kw)
    assert_error(resp, code, message, status=status, message_key=key, validation=validation)


def test_case_count():
    """The issue asks for at least 40 distinct bad-input cases."""
    assert len(CASES) >= 40


# --------------------------------------------------------------------------------------------------
# Cases that need real iterators or sequence numbers from the stored data.


def iterator(ep, shard_id, type_="TRIM_HORIZON", **extra):
    resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": shard_id, "ShardIteratorType": type_,
                                         **extra})
    assert resp.status == 200, resp
    return resp.json["ShardIterator"]


def test_tampered_iterator(ep):
    it = iterator(ep, shard(0))
    assert call(ep, "GetRecords", {"ShardIterator": it}).status == 200
    middle = len(it) // 2
    for pos in (middle, len(it) - 5, 12):
        c = it[pos]
        tampered = it[:pos] + ("B" if c != "B" else "C") + it[pos + 1:]
        assert_error(call(ep, "GetRecords", {"ShardIterator": tampered}), "InvalidArgumentException",
                     "Invalid ShardIterator.")
    assert_error(call(ep, "GetRecords", {"ShardIterator": it[:-8]}), "InvalidArgumentException",
                 "Invalid ShardIterator.")


def test_iterator_with_superfluous_sequence_number(ep, stored):
    seq = stored[shard(0)][0][0]
    for type_ in ("TRIM_HORIZON", "LATEST"):
        resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": type_,
                                             "StartingSequenceNumber": seq})
        assert_error(resp, "InvalidArgumentException",
                     ITER_COMBO + f"Request specified {type_} and also a StartingSequenceNumber.")


def test_sequence_number_from_another_shard(ep, stored):
    seq_of_1 = stored[shard(1)][0][0]
    for type_ in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": shard(0), "ShardIteratorType": type_,
                                             "StartingSequenceNumber": seq_of_1})
        assert_error(resp, "InvalidArgumentException",
                     f"Invalid StartingSequenceNumber. It encodes {shard(1)}, while it was used in a call to a shard "
                     f"with {shard(0)}")


def test_undecodable_sequence_number(ep, stored):
    # +1 changes the version digit (the lowest hex digit) from 2 to 3.
    bad = str(int(stored[shard(0)][0][0]) + 1)
    resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": shard(0),
                                         "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": bad})
    assert_error(resp, "InvalidArgumentException",
                 f"StartingSequenceNumber {bad} used in GetShardIterator on shard {shard(0)} in stream {EXISTING} "
                 f"under account {ACCOUNT} is invalid.")


def test_at_timestamp_in_the_future(ep):
    future = round(time.time() + 60, 3)
    resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": shard(0),
                                         "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": future})
    assert_error(resp, "InvalidArgumentException",
                 Message.regex(r"The timestampInMillis parameter cannot be greater than the currentTimestampInMillis\. "
                               r"timestampInMillis: \d+, currentTimestampInMillis: \d+"))
    m = re.search(r"timestampInMillis: (\d+), currentTimestampInMillis: (\d+)", resp.json["message"])
    assert int(m.group(1)) == round(future * 1000)
    assert abs(int(m.group(2)) - time.time() * 1000) < 10_000


def test_lenient_shard_ids_are_accepted(ep):
    for alias in ("0", "shard-0", "anything-0", "shardId-0"):
        resp = call(ep, "GetShardIterator", {"StreamName": EXISTING, "ShardId": alias,
                                             "ShardIteratorType": "TRIM_HORIZON"})
        assert resp.status == 200, (alias, resp)


def test_retention_increase_below_current(module_server, ep):
    client = module_server.client()
    create_stream(client, "bad-retention", 1)
    client.increase_stream_retention_period(StreamName="bad-retention", RetentionPeriodHours=25)
    wait_status(client, "bad-retention")
    resp = call(ep, "IncreaseStreamRetentionPeriod", {"StreamName": "bad-retention", "RetentionPeriodHours": 24})
    assert_error(resp, "InvalidArgumentException",
                 "Requested retention period (24 hours) for stream bad-retention can not be shorter than existing "
                 "retention period (25 hours). Use DecreaseRetentionPeriod API.")


# --------------------------------------------------------------------------------------------------
# Sizes


def test_record_over_one_mib(ep):
    pk = "size"
    data = b"x" * (1024 * 1024 - len(pk) + 1)  # data + key = 1 MiB + 1
    resp = call(ep, "PutRecord", {"StreamName": EXISTING, "PartitionKey": pk, "Data": b64(data)})
    # AWS's text for exceeding the stream's MaxRecordSizeInKiB was never captured (notes §8): code only.
    assert_error(resp, "InvalidArgumentException")


@pytest.mark.slow
def test_record_over_model_maximum(ep):
    n = 10 * 1024 * 1024 + 1
    encoded = b64(b"\x01" * n)
    resp = call(ep, "PutRecord", {"StreamName": EXISTING, "PartitionKey": "a", "Data": encoded})
    assert_error(resp, "ValidationException",
                 validation=[V(f"java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]", "data", len_le(10485760))])
    resp = call(ep, "PutRecords", {"StreamName": EXISTING, "Records": [{"PartitionKey": "a", "Data": encoded}]})
    assert_error(resp, "ValidationException",
                 validation=[V(f"java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]", "records.1.member.data",
                               len_le(10485760))])


def test_more_than_500_records(ep):
    records = [{"PartitionKey": "a", "Data": "AA=="} for _ in range(501)]
    resp = call(ep, "PutRecords", {"StreamName": EXISTING, "Records": records})
    assert_error(resp, "ValidationException")
    text = resp.json["message"]
    assert text.startswith("1 validation error detected: Value '["), text[:200]
    assert text.endswith("]' at 'records' failed to satisfy constraint: Member must have length less than or "
                         "equal to 500"), text[-200:]


def test_more_than_500_records_print_each_entry_as_aws_does(ep):
    # Java's default toString() of the entry class: its name and the hex of its hashCode().
    records = [{"PartitionKey": "", "Data": ""} for _ in range(501)]
    resp = call(ep, "PutRecords", {"StreamName": EXISTING, "Records": records})
    assert_error(resp, "ValidationException")
    entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310"
    listed = f"Value '[{', '.join([entry] * 501)}]' at 'records' failed to satisfy constraint: Member must have " \
             "length less than or equal to 500"
    assert resp.json["message"].startswith(f"10 validation errors detected: {listed}; ")


def test_at_most_ten_validation_errors_are_listed(ep):
    records = [{"PartitionKey": "", "Data": "AA=="} for _ in range(501)]
    resp = call(ep, "PutRecords", {"StreamName": EXISTING, "Records": records})
    assert_error(resp, "ValidationException")
    text = resp.json["message"]
    assert text.startswith("10 validation errors detected: "), text[:200]
    assert text.count(" failed to satisfy constraint: ") == 10


# --------------------------------------------------------------------------------------------------
# Other servers: CREATING state, shard limit.


def test_writes_and_reads_while_creating(server_factory):
    server = server_factory(args=["--create-stream-ms", "3000"], name="creating")
    client = server.client()
    client.create_stream(StreamName="young", ShardCount=1)
    ep = server.endpoint
    assert_error(call(ep, "PutRecord", {"StreamName": "young", "PartitionKey": "a", "Data": "AA=="}),
                 "ResourceNotFoundException", not_found("young"))
    assert_error(call(ep, "PutRecords", {"StreamName": "young", "Records": [{"PartitionKey": "a", "Data": "AA=="}]}),
                 "ResourceNotFoundException", not_found("young"))
    assert_error(call(ep, "GetShardIterator", {"StreamName": "young", "ShardId": shard(0),
                                               "ShardIteratorType": "TRIM_HORIZON"}),
                 "ResourceNotFoundException", shard_not_found("young"))
    assert_error(call(ep, "CreateStream", {"StreamName": "young", "ShardCount": 1}),
                 "ResourceInUseException", f"Stream young under account {ACCOUNT} already exists.")
    desc = client.describe_stream(StreamName="young")["StreamDescription"]
    assert desc["StreamStatus"] == "CREATING" and desc["Shards"] == []
    wait_status(client, "young", "ACTIVE", timeout=30)
    assert client.put_record(StreamName="young", PartitionKey="a", Data=b"now")["ShardId"] == shard(0)


def test_split_while_creating(server_factory):
    server = server_factory(args=["--create-stream-ms", "3000"], name="creating-split")
    server.client().create_stream(StreamName="young", ShardCount=1)
    resp = call(server.endpoint, "SplitShard", {"StreamName": "young", "ShardToSplit": shard(0),
                                                "NewStartingHashKey": "1000"})
    assert_error(resp, "ResourceInUseException", f"Stream young under account {ACCOUNT} not ACTIVE, instead in state CREATING")


def test_shard_limit(server_factory):
    server = server_factory(args=["--shard-limit", "5"], name="shardlimit")
    client = server.client()
    create_stream(client, "first", 3)
    resp = call(server.endpoint, "CreateStream", {"StreamName": "second", "ShardCount": 3})
    assert_error(resp, "LimitExceededException",
                 f"This request would exceed the shard limit for the account {ACCOUNT} in {REGION}. Current shard "
                 "count for the account: 3. Limit: 5. Number of additional shards that would have resulted from this "
                 "request: 3. Refer to the AWS Service Limits page "
                 "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how "
                 "to request higher limits.")
    assert client.list_streams()["StreamNames"] == ["first"]
    create_stream(client, "second", 2)  # exactly at the limit is fine


# --------------------------------------------------------------------------------------------------
# Through boto3: botocore must surface the same code, message and status.


def test_errors_through_boto3(module_server, stored):
    client = make_client(module_server.endpoint, validate=False)
    assert_client_error(client_error(client.describe_stream, StreamName=MISSING), "ResourceNotFoundException",
                        not_found(MISSING))
    assert_client_error(client_error(client.create_stream, StreamName=EXISTING, ShardCount=1),
                        "ResourceInUseException", f"Stream {EXISTING} under account {ACCOUNT} already exists.")
    assert_client_error(client_error(client.create_stream, StreamName="", ShardCount=1), "ValidationException",
                        validation=[V("", "streamName", NAME_PATTERN), V("", "streamName", len_ge(1))])
    # With client-side validation off botocore sends the string as it is.
    assert_client_error(client_error(client.create_stream, StreamName="x", ShardCount="3"),
                        "SerializationException", "class java.lang.String can not be converted to an Integer")
    assert_client_error(client_error(client.get_shard_iterator, StreamName=EXISTING, ShardId=shard(0),
                                     ShardIteratorType="AT_SEQUENCE_NUMBER"),
                        "InvalidArgumentException",
                        ITER_COMBO + "Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.")
    assert_client_error(client_error(client.get_records, ShardIterator="AAAAAAAAAAE" + "B" * 100),
                        "InvalidArgumentException", "Invalid ShardIterator.")
    assert_client_error(client_error(client.put_record, StreamName=EXISTING, PartitionKey="a", Data=b"x",
                                     ExplicitHashKey=str(2**128)),
                        "InvalidArgumentException",
                        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value "
                        f"was {2**128}")
    assert_client_error(client_error(client.list_shards, StreamName=EXISTING, NextToken="abc"),
                        "InvalidArgumentException", "NextToken and StreamName cannot be provided together.")
    assert_client_error(client_error(client.get_records, ShardIterator="x", Limit=0), "ValidationException",
                        validation=[V("0", "limit", val_ge(1))])


def test_common_response_headers(ep):
    for resp in (call(ep, "ListStreams", {}), call(ep, "DescribeStream", {"StreamName": MISSING}),
                 call(ep, "Frobnicate", {})):
        rid = resp.header("x-amzn-RequestId")
        assert rid and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rid), resp.headers
        assert resp.header("x-amz-id-2"), resp.headers
        assert resp.header("Content-Length") is not None
        assert resp.header("Content-Type", ) in ("application/x-amz-json-1.1",), resp.headers
        assert resp.header("Date"), resp.headers


def test_non_post_method_is_refused(ep):
    resp = call(ep, None, b"", method="GET", content_type=None)
    assert resp.status == 403, resp
    assert b"AccessDeniedException" in resp.body or resp.header("x-amzn-ErrorType") == "AccessDeniedException"


def test_content_type_with_parameters_is_accepted(ep):
    resp = call(ep, "ListStreams", {}, content_type="   application/x-amz-json-1.1   ;whatever")
    assert resp.status == 200, resp
    assert EXISTING in resp.json["StreamNames"]
    assert resp.header("Content-Type") == "application/x-amz-json-1.1"


# --------------------------------------------------------------------------------------------------
# Must stay last: none of the above may have changed the stored data.


def test_zz_stored_data_unchanged_after_bad_input(module_server, stored):
    client = module_server.client()
    for shard_id, want in stored.items():
        got = read_shard(client, EXISTING, shard_id, "TRIM_HORIZON", max_empty=2)
        assert [(r["SequenceNumber"], r["PartitionKey"], bytes(r["Data"])) for r in got] == want, shard_id
    desc = client.describe_stream(StreamName=EXISTING)["StreamDescription"]
    assert desc["StreamStatus"] == "ACTIVE"
    assert [s["ShardId"] for s in desc["Shards"]] == [shard(i) for i in range(3)]
    assert desc["RetentionPeriodHours"] == 24
    assert client.list_tags_for_stream(StreamName=EXISTING)["Tags"] == []
    assert sorted(client.list_streams()["StreamNames"]) == sorted([EXISTING, "bad-retention"])
