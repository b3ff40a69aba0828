//! Table-driven tests of `validate_input` with AWS's exact texts, and checks of the generated model.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{json, Value};

use super::*;
use crate::model::Shape;
use crate::pattern;

enum Expect {
    Valid,
    Serialization(Option<&'static str>),
    Validation(String),
}

use Expect::{Serialization, Valid, Validation};

const STREAM_NAME_PATTERN: &str = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+";
const MIN_LENGTH_1: &str = "Member must have length greater than or equal to 1";
const NOT_NULL: &str = "Member must not be null";

/// `Value <v> at '<path>' failed to satisfy constraint: <c>`; `value` None prints `null`.
fn entry(value: Option<&str>, path: &str, constraint: &str) -> String {
    let value = value.map_or_else(|| "null".to_owned(), |text| format!("'{text}'"));
    format!("Value {value} at '{path}' failed to satisfy constraint: {constraint}")
}

fn errors(entries: &[String]) -> Expect {
    let plural = if entries.len() == 1 { "" } else { "s" };
    Validation(format!(
        "{} validation error{plural} detected: {}",
        entries.len(),
        entries.join("; ")
    ))
}

fn one(value: Option<&str>, path: &str, constraint: &str) -> Expect {
    errors(&[entry(value, path, constraint)])
}

fn ser(message: &'static str) -> Expect {
    Serialization(Some(message))
}

/// Runs `validate_input` and describes the mismatch, if any.
fn check(operation: &str, body: &Value, expected: &Expect) -> Option<String> {
    let actual = validate_input(operation, body);
    let matches = match (expected, &actual) {
        (Valid, Ok(())) => true,
        (Serialization(want), Err(InputError::Serialization { message })) => {
            *want == message.as_deref()
        }
        (Validation(want), Err(InputError::Validation { message })) => want == message,
        _ => false,
    };
    if matches {
        return None;
    }
    let want = match expected {
        Valid => "Ok".to_owned(),
        Serialization(message) => format!("Serialization({message:?})"),
        Validation(message) => format!("Validation({message:?})"),
    };
    let body_text = body.to_string();
    let body_text: String = body_text.chars().take(200).collect();
    Some(format!(
        "{operation} {body_text}\n  expected {want}\n  actual   {actual:?}"
    ))
}

fn run_cases(cases: Vec<(&str, Value, Expect)>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(operation, body, expected)| check(operation, body, expected))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn create_stream() {
    let long_name = "a".repeat(129);
    run_cases(vec![
        ("CreateStream", json!({}), one(None, "streamName", NOT_NULL)),
        (
            "CreateStream",
            json!({"StreamName": "", "ShardCount": 0}),
            errors(&[
                entry(Some(""), "streamName", STREAM_NAME_PATTERN),
                entry(Some(""), "streamName", MIN_LENGTH_1),
                entry(
                    Some("0"),
                    "shardCount",
                    "Member must have value greater than or equal to 1",
                ),
            ]),
        ),
        (
            "CreateStream",
            json!({"StreamName": long_name, "ShardCount": 100000000000u64}),
            one(
                Some(&long_name),
                "streamName",
                "Member must have length less than or equal to 128",
            ),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": -100000000000i64}),
            one(
                Some("-2147483648"),
                "shardCount",
                "Member must have value greater than or equal to 1",
            ),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": 0.9}),
            one(
                Some("0"),
                "shardCount",
                "Member must have value greater than or equal to 1",
            ),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": 1.9}),
            Valid,
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": null}),
            Valid,
        ),
        (
            "CreateStream",
            json!({"StreamName": "my-stream_1.0", "ShardCount": 3, "Extra": {"x": [1]}}),
            Valid,
        ),
        (
            "CreateStream",
            json!({"StreamName": "a b"}),
            one(Some("a b"), "streamName", STREAM_NAME_PATTERN),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": {}}),
            one(None, "streamModeDetails.streamMode", NOT_NULL),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "FOO"}}),
            one(
                Some("FOO"),
                "streamModeDetails.streamMode",
                "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
            ),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
            Valid,
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "MaxRecordSizeInKiB": 1023}),
            one(
                Some("1023"),
                "maxRecordSizeInKiB",
                "Member must have value greater than or equal to 1024",
            ),
        ),
    ]);
}

#[test]
fn serialization_texts() {
    run_cases(vec![
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": "a"}),
            ser("class java.lang.String can not be converted to an Integer"),
        ),
        (
            "CreateStream",
            json!({"ShardCount": "a"}),
            ser("class java.lang.String can not be converted to an Integer"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": true}),
            ser("class java.lang.Boolean can not be converted to an Integer"),
        ),
        (
            "CreateStream",
            json!({"StreamName": true}),
            ser("class java.lang.Boolean can not be converted to an String"),
        ),
        (
            "CreateStream",
            json!({"StreamName": 23}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "CreateStream",
            json!({"StreamName": 34.56}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "CreateStream",
            json!({"StreamName": []}),
            ser("Start of list found where not expected"),
        ),
        (
            "CreateStream",
            json!({"StreamName": {}}),
            ser("Start of structure or map found where not expected."),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": []}),
            ser("Start of list found where not expected"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "ShardCount": {}}),
            ser("Start of structure or map found where not expected."),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": "PROVISIONED"}),
            ser("Expected null"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": 1}),
            ser("Expected null"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": []}),
            ser("Start of list found where not expected"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": 5}}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "Tags": "x"}),
            ser("Expected map or null"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "Tags": []}),
            ser("Start of list found where not expected"),
        ),
        (
            "CreateStream",
            json!({"StreamName": "s", "Tags": {"a": 1}}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "PutRecords",
            json!({"Records": {}}),
            ser("Start of structure or map found where not expected."),
        ),
        ("PutRecords", json!({"Records": "x"}), ser("Expected list or null")),
        ("PutRecords", json!({"Records": 5}), ser("Expected list or null")),
        ("PutRecords", json!({"Records": ["x"]}), ser("Expected null")),
        (
            "PutRecords",
            json!({"Records": [[]]}),
            ser("Start of list found where not expected"),
        ),
        (
            "PutRecords",
            json!({"Records": [{"Data": "", "PartitionKey": "a"}, {"Data": "", "PartitionKey": 5}]}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "PutRecords",
            json!({"Records": [{"Data": 1, "PartitionKey": "a"}]}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
        ),
        (
            "PutRecords",
            json!({"Records": [{"Data": true, "PartitionKey": "a"}]}),
            ser("class java.lang.Boolean can not be converted to a Blob"),
        ),
        (
            "GetShardIterator",
            json!({"ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "2020-01-01"}),
            ser("class java.lang.String can not be converted to milliseconds since epoch"),
        ),
        (
            "GetShardIterator",
            json!({"ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1459799926.480123}),
            Valid,
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": "23"}),
            ser("'23' can not be converted to an Boolean"),
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": "hello"}),
            ser("'HELLO' can not be converted to an Boolean"),
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": 1}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": {}}),
            ser("Start of structure or map found where not expected."),
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": "true"}),
            Valid,
        ),
        (
            "DeleteStream",
            json!({"StreamName": "s", "EnforceConsumerDeletion": false}),
            Valid,
        ),
        // Types are checked before constraints: the missing StreamName is not reported.
        (
            "GetShardIterator",
            json!({"ShardIteratorType": 1}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
    ]);
}

#[test]
fn non_object_bodies_have_no_message() {
    run_cases(vec![
        ("ListStreams", json!([]), Serialization(None)),
        ("ListStreams", json!("x"), Serialization(None)),
        ("ListStreams", json!(null), Serialization(None)),
        ("ListStreams", json!(1), Serialization(None)),
        ("ListStreams", json!({}), Valid),
        ("DescribeLimits", json!({}), Valid),
    ]);
}

#[test]
fn blobs() {
    let blob_prefix = "can not be converted to a Blob";
    let too_big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 10 * 1024 * 1024 + 1]);
    let max_size = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 10 * 1024 * 1024]);
    let length_message = format!(
        "'23456' {blob_prefix}: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
    );
    let character_message = format!("'=+/=' {blob_prefix}: Invalid Base64 character: '='");
    let bad_character_message = format!("'YW*j' {blob_prefix}: Invalid Base64 character: '*'");
    let last_message =
        format!("'+/+=' {blob_prefix}: Invalid last non-pad Base64 character dectected");
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    run_cases(vec![
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": "23456"}),
            ser(leak(length_message)),
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": "=+/="}),
            ser(leak(character_message)),
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": "YW*j"}),
            ser(leak(bad_character_message)),
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": "+/+="}),
            ser(leak(last_message)),
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": too_big}),
            one(
                Some("java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]"),
                "data",
                "Member must have length less than or equal to 10485760",
            ),
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": max_size}),
            Valid,
        ),
        (
            "PutRecord",
            json!({"StreamName": "s", "PartitionKey": "a", "Data": "aGVsbG8="}),
            Valid,
        ),
        (
            "PutRecord",
            json!({"StreamName": "s"}),
            one(None, "data", NOT_NULL),
        ),
        (
            "PutRecord",
            json!({"Data": "", "PartitionKey": "a".repeat(257), "ExplicitHashKey": "01"}),
            errors(&[
                entry(
                    Some(&"a".repeat(257)),
                    "partitionKey",
                    "Member must have length less than or equal to 256",
                ),
                entry(
                    Some("01"),
                    "explicitHashKey",
                    r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})",
                ),
            ]),
        ),
        (
            "PutRecords",
            json!({"Records": [{"Data": "", "PartitionKey": "a"}, {"Data": too_big_one_record(), "PartitionKey": "a"}]}),
            one(
                Some("java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]"),
                "records.2.member.data",
                "Member must have length less than or equal to 10485760",
            ),
        ),
    ]);
}

fn too_big_one_record() -> String {
    base64::engine::general_purpose::STANDARD.encode(vec![7u8; 10 * 1024 * 1024 + 1])
}

#[test]
fn put_records() {
    let records: Vec<Value> = (0..501)
        .map(|_| json!({"PartitionKey": "", "Data": ""}))
        .collect();
    // The hash part is the entry class's Java hashCode(), as AWS prints it for this entry.
    let entry_text = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
    let list_text = format!("[{}]", vec![entry_text; 501].join(", "));
    let mut too_many = vec![entry(
        Some(&list_text),
        "records",
        "Member must have length less than or equal to 500",
    )];
    for index in 1..=9 {
        too_many.push(entry(
            Some(""),
            &format!("records.{index}.member.partitionKey"),
            MIN_LENGTH_1,
        ));
    }
    assert_eq!(too_many.len(), 10);
    run_cases(vec![
        (
            "PutRecords",
            json!({"StreamName": "", "Records": records}),
            errors(&too_many),
        ),
        ("PutRecords", json!({}), one(None, "records", NOT_NULL)),
        (
            "PutRecords",
            json!({"StreamName": "", "Records": []}),
            errors(&[
                entry(Some("[]"), "records", MIN_LENGTH_1),
                entry(Some(""), "streamName", STREAM_NAME_PATTERN),
                entry(Some(""), "streamName", MIN_LENGTH_1),
            ]),
        ),
        (
            "PutRecords",
            json!({"StreamName": "", "Records": [{"PartitionKey": "", "Data": "", "ExplicitHashKey": ""}]}),
            errors(&[
                entry(
                    Some(""),
                    "records.1.member.explicitHashKey",
                    r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})",
                ),
                entry(Some(""), "records.1.member.partitionKey", MIN_LENGTH_1),
                entry(Some(""), "streamName", STREAM_NAME_PATTERN),
                entry(Some(""), "streamName", MIN_LENGTH_1),
            ]),
        ),
        (
            "PutRecords",
            json!({"Records": [{"PartitionKey": "a"}, {}]}),
            errors(&[
                entry(None, "records.1.member.data", NOT_NULL),
                entry(None, "records.2.member.data", NOT_NULL),
            ]),
        ),
        (
            "PutRecords",
            json!({"StreamName": "s", "Records": [{"PartitionKey": "a", "Data": "YQ==", "ExplicitHashKey": "340282366920938463463374607431768211455"}]}),
            Valid,
        ),
    ]);
}

#[test]
fn shard_iterators_and_listing() {
    let shard_iterator_types =
        "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]";
    let consumer_arn = "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1";
    run_cases(vec![
        (
            "GetShardIterator",
            json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "BAD"}),
            one(Some("BAD"), "shardIteratorType", shard_iterator_types),
        ),
        (
            "GetShardIterator",
            json!({}),
            errors(&[
                entry(None, "shardId", NOT_NULL),
                entry(None, "shardIteratorType", NOT_NULL),
            ]),
        ),
        (
            "GetShardIterator",
            json!({"ShardId": "", "ShardIteratorType": "LATEST", "StartingSequenceNumber": "abc"}),
            errors(&[
                entry(
                    Some(""),
                    "shardId",
                    "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
                ),
                entry(Some(""), "shardId", MIN_LENGTH_1),
                entry(
                    Some("abc"),
                    "startingSequenceNumber",
                    r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,128})",
                ),
            ]),
        ),
        (
            "SubscribeToShard",
            json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "NOPE"}}),
            one(Some("NOPE"), "startingPosition.type", shard_iterator_types),
        ),
        (
            "SubscribeToShard",
            json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}}),
            Valid,
        ),
        (
            "ListShards",
            json!({"MaxResults": 0}),
            one(
                Some("0"),
                "maxResults",
                "Member must have value greater than or equal to 1",
            ),
        ),
        (
            "ListShards",
            json!({"MaxResults": 10001}),
            one(
                Some("10001"),
                "maxResults",
                "Member must have value less than or equal to 10000",
            ),
        ),
        (
            "ListShards",
            json!({"ShardFilter": {"Type": "X"}}),
            one(
                Some("X"),
                "shardFilter.type",
                "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
            ),
        ),
        ("ListShards", json!({"ShardFilter": {}}), one(None, "shardFilter.type", NOT_NULL)),
        ("ListShards", json!({}), Valid),
        ("ListShards", json!({"NextToken": ""}), one(Some(""), "nextToken", MIN_LENGTH_1)),
        (
            "DescribeStream",
            json!({"StreamName": null, "Limit": null, "Unknown": 5}),
            Valid,
        ),
        (
            "ListStreams",
            json!({"Limit": 0, "ExclusiveStartStreamName": "!"}),
            errors(&[
                entry(
                    Some("0"),
                    "limit",
                    "Member must have value greater than or equal to 1",
                ),
                entry(Some("!"), "exclusiveStartStreamName", STREAM_NAME_PATTERN),
            ]),
        ),
        (
            "SplitShard",
            json!({"ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "01"}),
            one(
                Some("01"),
                "newStartingHashKey",
                r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})",
            ),
        ),
        (
            "MergeShards",
            json!({}),
            errors(&[
                entry(None, "shardToMerge", NOT_NULL),
                entry(None, "adjacentShardToMerge", NOT_NULL),
            ]),
        ),
        (
            "UpdateShardCount",
            json!({"StreamName": "s", "TargetShardCount": 0, "ScalingType": "X"}),
            errors(&[
                entry(
                    Some("0"),
                    "targetShardCount",
                    "Member must have value greater than or equal to 1",
                ),
                entry(
                    Some("X"),
                    "scalingType",
                    "Member must satisfy enum value set: [UNIFORM_SCALING]",
                ),
            ]),
        ),
    ]);
}

#[test]
fn tags_and_arns() {
    let long_key = "a".repeat(129);
    let long_value = "c".repeat(257);
    let map_keys = "Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]";
    let map_values = "Map value must satisfy constraint: [Member must have length less than or equal to 256, Member must have length greater than or equal to 0]";
    let stream_arn_pattern =
        r"Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\d{12}:stream/\S+";
    let metrics = "Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]]";
    let too_many_tag_keys: Vec<String> = (1..=51).map(|index| index.to_string()).collect();
    run_cases(vec![
        ("AddTagsToStream", json!({}), one(None, "tags", NOT_NULL)),
        (
            "AddTagsToStream",
            json!({"StreamName": "", "Tags": {}}),
            errors(&[
                entry(Some(""), "streamName", STREAM_NAME_PATTERN),
                entry(Some(""), "streamName", MIN_LENGTH_1),
                entry(Some("{}"), "tags", MIN_LENGTH_1),
            ]),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "s", "Tags": {"a": "1", long_key.clone(): "3"}}),
            one(Some(&format!("{{a=1, {long_key}=3}}")), "tags", map_keys),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "s", "Tags": {"a": "1", "b": "2", "c": long_value.clone()}}),
            one(Some(&format!("{{a=1, b=2, c={long_value}}}")), "tags", map_values),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "s", "Tags": {"": long_value.clone()}}),
            errors(&[
                entry(Some(&format!("{{={long_value}}}")), "tags", map_keys),
                entry(Some(&format!("{{={long_value}}}")), "tags", map_values),
            ]),
        ),
        (
            "AddTagsToStream",
            json!({"StreamName": "s", "Tags": {"a": "", "b": null}}),
            Valid,
        ),
        (
            "RemoveTagsFromStream",
            json!({"StreamName": "s", "TagKeys": ["a", long_key.clone(), "b"]}),
            one(
                Some(&format!("[a, {long_key}, b]")),
                "tagKeys",
                "Member must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]",
            ),
        ),
        (
            "RemoveTagsFromStream",
            json!({"StreamName": "s", "TagKeys": too_many_tag_keys}),
            one(
                Some(&format!("[{}]", too_many_tag_keys.join(", "))),
                "tagKeys",
                "Member must have length less than or equal to 50",
            ),
        ),
        (
            "RemoveTagsFromStream",
            json!({"TagKeys": [1]}),
            ser("class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
        ),
        (
            "EnableEnhancedMonitoring",
            json!({"StreamName": "s", "ShardLevelMetrics": ["IncomingBytes", "Bogus"]}),
            one(Some("[IncomingBytes, Bogus]"), "shardLevelMetrics", metrics),
        ),
        (
            "EnableEnhancedMonitoring",
            json!({"StreamName": "s", "ShardLevelMetrics": ["ALL"]}),
            Valid,
        ),
        (
            "RegisterStreamConsumer",
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s", "ConsumerName": "c"}),
            Valid,
        ),
        (
            "RegisterStreamConsumer",
            json!({"StreamARN": "x", "ConsumerName": "c"}),
            one(Some("x"), "streamARN", stream_arn_pattern),
        ),
        (
            "ListStreamConsumers",
            json!({"StreamARN": "arn:aws:kinesis:us-east-1:12345678901:stream/s"}),
            one(
                Some("arn:aws:kinesis:us-east-1:12345678901:stream/s"),
                "streamARN",
                stream_arn_pattern,
            ),
        ),
        (
            "TagResource",
            json!({}),
            errors(&[
                entry(None, "tags", NOT_NULL),
                entry(None, "resourceARN", NOT_NULL),
            ]),
        ),
    ]);
}

#[test]
fn error_codes_and_display() {
    let serialization = InputError::Serialization { message: None };
    assert_eq!(serialization.error_type(), "SerializationException");
    assert_eq!(serialization.message(), None);
    assert_eq!(
        serialization.to_string(),
        "request body does not deserialize: no message"
    );
    let validation = InputError::Validation {
        message: "1 validation error detected: x".to_owned(),
    };
    assert_eq!(validation.error_type(), "ValidationException");
    assert_eq!(validation.message(), Some("1 validation error detected: x"));
}

#[test]
fn unknown_operations_and_names() {
    assert!(operation_exists("PutRecords"));
    assert!(operation_exists("SubscribeToShard"));
    assert!(!operation_exists("putRecords"));
    assert!(!operation_exists("Nope"));
    assert!(!operation_exists(""));
    assert_eq!(validate_input("Nope", &json!({"x": 1})), Ok(()));
    assert_eq!(lower_first("StreamName"), "streamName");
    assert_eq!(lower_first("ShardIteratorType"), "shardIteratorType");
    assert_eq!(lower_first("StreamARN"), "streamARN");
    assert_eq!(lower_first(""), "");
}

// --- The generated table against the model it was generated from. ---

fn model_json() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/aws-models/kinesis/service-2.json"
    );
    let text = std::fs::read_to_string(path).expect("read the kinesis model");
    serde_json::from_str(&text).expect("parse the kinesis model")
}

#[test]
fn every_model_operation_is_in_the_table() {
    let model = model_json();
    let operations = model["operations"].as_object().expect("operations");
    assert_eq!(operations.len(), KINESIS.operations.len());
    for (name, operation) in operations {
        assert!(operation_exists(name), "{name} is missing");
        let input = KINESIS.input_shape(name).expect("input shape");
        assert_eq!(
            Some(input.name),
            operation["input"]["shape"].as_str(),
            "{name} input"
        );
        assert_eq!(
            KINESIS.output_shape(name).map(|shape| shape.name),
            operation["output"]["shape"].as_str(),
            "{name} output"
        );
        let table_errors: Vec<&str> = KINESIS
            .operation(name)
            .expect("operation")
            .errors
            .iter()
            .map(|&index| KINESIS.shape(index).expect("error shape").name)
            .collect();
        let model_errors: Vec<&str> = operation["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| error["shape"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(table_errors, model_errors, "{name} errors");
        for error in &table_errors {
            let shape = KINESIS.shape_named(error).expect("error shape");
            assert!(shape.exception, "{error} is marked as an exception");
        }
    }
    let names: Vec<&str> = KINESIS.operations.iter().map(|op| op.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "operations are sorted for binary search");
}

#[test]
fn generated_shapes_match_the_model() {
    let model = model_json();
    let shapes = model["shapes"].as_object().expect("shapes");
    assert_eq!(
        KINESIS.shapes.len(),
        shapes.len(),
        "every Kinesis shape is reachable from an input, output or error"
    );
    let names: Vec<&str> = KINESIS.shapes.iter().map(|shape| shape.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "shapes are sorted and unique");
    for shape in KINESIS.shapes {
        let json = &shapes[shape.name];
        assert_eq!(shape.min, json["min"].as_i64(), "{} min", shape.name);
        assert_eq!(shape.max, json["max"].as_i64(), "{} max", shape.name);
        let enum_values: Vec<&str> = json["enum"]
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            shape.enum_values,
            enum_values.as_slice(),
            "{} enum",
            shape.name
        );
        assert_eq!(
            shape.pattern.is_some(),
            json.get("pattern").is_some(),
            "{} pattern",
            shape.name
        );
        let flag = |key: &str| json[key].as_bool().unwrap_or(false);
        assert_eq!(
            shape.exception,
            flag("exception"),
            "{} exception",
            shape.name
        );
        assert_eq!(
            shape.event_stream,
            flag("eventstream"),
            "{} eventstream",
            shape.name
        );
        assert_eq!(shape.event, flag("event"), "{} event", shape.name);
        let referenced: Vec<usize> = match shape.kind {
            ShapeKind::Structure(members) => {
                let required: BTreeSet<&str> = json["required"]
                    .as_array()
                    .map(|names| names.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let json_members = json["members"].as_object().expect("members");
                assert_eq!(members.len(), json_members.len(), "{} members", shape.name);
                for member in members {
                    let json_member = &json_members[member.name];
                    let target = KINESIS.shape(member.shape).expect("member shape");
                    assert_eq!(Some(target.name), json_member["shape"].as_str());
                    assert_eq!(member.required, required.contains(member.name));
                }
                members.iter().map(|member| member.shape).collect()
            }
            ShapeKind::List(member) => vec![member],
            ShapeKind::Map { key, value } => vec![key, value],
            _ => Vec::new(),
        };
        for index in referenced {
            assert!(
                KINESIS.shape(index).is_some(),
                "{} refers to {index}",
                shape.name
            );
        }
    }
}

#[test]
fn every_pattern_compiles() {
    let patterns: Vec<(&str, &str)> = KINESIS
        .shapes
        .iter()
        .filter_map(|shape| shape.pattern.map(|pattern| (shape.name, pattern)))
        .collect();
    assert!(patterns.len() >= 20, "the model has patterns");
    for (name, pattern) in patterns {
        if let Err(err) = pattern::compile_full_match(pattern) {
            panic!("pattern of {name} ({pattern}) does not compile: {err}");
        }
        assert!(
            !pattern.starts_with('^') && !pattern.ends_with('$'),
            "{name} pattern is stored unanchored"
        );
    }
}

#[test]
fn enum_order_overrides_are_permutations_of_the_model() {
    for (service, shape_name, order) in constraints::enum_order_overrides() {
        assert_eq!(*service, KINESIS.service_id);
        let shape: &Shape = KINESIS
            .shape_named(shape_name)
            .expect("override shape exists");
        let model_values: BTreeSet<&str> = shape.enum_values.iter().copied().collect();
        let override_values: BTreeSet<&str> = order.iter().copied().collect();
        assert_eq!(model_values, override_values, "{shape_name}");
        assert_eq!(model_values.len(), order.len());
    }
}

#[test]
fn sample_paths_cover_every_operation() {
    // Every operation accepts `{}` without panicking and reports only missing members.
    let mut outcomes: BTreeMap<&str, bool> = BTreeMap::new();
    for operation in KINESIS.operations {
        let result = validate_input(operation.name, &json!({}));
        if let Err(InputError::Validation { message }) = &result {
            assert!(message.contains(NOT_NULL), "{}: {message}", operation.name);
        }
        assert!(!matches!(result, Err(InputError::Serialization { .. })));
        outcomes.insert(operation.name, result.is_ok());
    }
    assert_eq!(outcomes.get("ListStreams"), Some(&true));
    assert_eq!(outcomes.get("PutRecords"), Some(&false));
}

// --- Every generated model against its botocore model. ---

fn all_models() -> [(&'static ServiceModel, &'static str); 3] {
    use crate::generated::{iam_model::IAM, sts_model::STS};
    [(&KINESIS, "kinesis"), (&IAM, "iam"), (&STS, "sts")]
}

fn botocore_model(dir: &str) -> Value {
    let path = format!(
        "{}/../../../shared/aws-models/{dir}/service-2.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("read the model");
    serde_json::from_str(&text).expect("parse the model")
}

#[test]
fn every_service_table_matches_its_model() {
    use crate::model::Protocol;
    for (table, dir) in all_models() {
        let model = botocore_model(dir);
        let metadata = &model["metadata"];
        assert_eq!(Some(table.service_id), metadata["serviceId"].as_str());
        assert_eq!(Some(table.api_version), metadata["apiVersion"].as_str());
        assert_eq!(
            table.xml_namespace,
            metadata["xmlNamespace"].as_str().unwrap_or("")
        );
        let protocol = match table.protocol {
            Protocol::Json => "json",
            Protocol::Query => "query",
            Protocol::RestJson => "rest-json",
        };
        assert_eq!(Some(protocol), metadata["protocol"].as_str(), "{dir}");
        let operations = model["operations"].as_object().expect("operations");
        assert_eq!(operations.len(), table.operations.len(), "{dir}");
        for (name, operation) in operations {
            let found = table.operation(name).expect("operation");
            assert_eq!(
                table.input_shape(name).map(|shape| shape.name),
                operation["input"]["shape"].as_str(),
                "{dir} {name} input"
            );
            assert_eq!(
                table.output_shape(name).map(|shape| shape.name),
                operation["output"]["shape"].as_str(),
                "{dir} {name} output"
            );
            assert_eq!(
                found.result_wrapper,
                operation["output"]["resultWrapper"].as_str(),
                "{dir} {name} resultWrapper"
            );
            let errors = operation["errors"].as_array().map_or(0, Vec::len);
            assert_eq!(found.errors.len(), errors, "{dir} {name} errors");
        }
        let shapes = model["shapes"].as_object().expect("shapes");
        for shape in table.shapes {
            let json = &shapes[shape.name];
            assert_eq!(shape.min, json["min"].as_i64(), "{dir} {} min", shape.name);
            assert_eq!(shape.max, json["max"].as_i64(), "{dir} {} max", shape.name);
            assert_eq!(
                shape.error.map(|error| error.code),
                json["error"]["code"].as_str(),
                "{dir} {} error code",
                shape.name
            );
            assert_eq!(
                shape.flattened,
                json["flattened"].as_bool().unwrap_or(false)
            );
        }
    }
}

#[test]
fn every_pattern_of_every_service_compiles() {
    for (table, dir) in all_models() {
        for shape in table.shapes {
            let Some(pattern) = shape.pattern else {
                continue;
            };
            if let Err(err) = pattern::compile_full_match(pattern) {
                panic!(
                    "{dir}: pattern of {} ({pattern}) does not compile: {err}",
                    shape.name
                );
            }
        }
    }
}

#[test]
fn iam_and_sts_unicode_patterns() {
    use crate::generated::{iam_model::IAM, sts_model::STS};
    let tag_key = IAM.shape_named("tagKeyType").expect("tagKeyType");
    let pattern = tag_key.pattern.expect("pattern");
    assert!(pattern::matches_whole(pattern, "Équipe 1:a/b=c+d-@"));
    assert!(!pattern::matches_whole(pattern, "a*b"));
    let arn = STS.shape_named("arnType").expect("arnType");
    let pattern = arn.pattern.expect("pattern");
    assert!(pattern::matches_whole(
        pattern,
        "arn:aws:iam::123456789012:role/demo"
    ));
    assert!(!pattern::matches_whole(pattern, "arn\u{1}"));
}

#[test]
fn lambda_and_logs_tables_compile_and_bind() {
    use crate::generated::lambda_model::{HTTP, LAMBDA};
    use crate::generated::logs_model::LOGS;
    use crate::model::{Location, Protocol};
    for (table, dir) in [(&LAMBDA, "lambda"), (&LOGS, "logs")] {
        for shape in table.shapes {
            // Look-around (Lambda's `Alias`, `Qualifier`) has no equivalent in the regex crate:
            // such a pattern constrains nothing, the operations Millrace serves don't use it.
            if let Some(pattern) = shape
                .pattern
                .filter(|p| !p.contains("(?!") && !p.contains("(?=") && !p.contains("(?<"))
            {
                if let Err(err) = pattern::compile_full_match(pattern) {
                    panic!(
                        "{dir}: pattern of {} ({pattern}) does not compile: {err}",
                        shape.name
                    );
                }
            }
        }
    }
    assert_eq!(LAMBDA.protocol, Protocol::RestJson);
    assert_eq!(LOGS.protocol, Protocol::Json);
    assert_eq!(HTTP.len(), LAMBDA.operations.len());
    let invoke = HTTP.iter().find(|op| op.name == "Invoke").expect("Invoke");
    assert_eq!(invoke.method, "POST");
    assert_eq!(
        invoke.uri,
        "/2015-03-31/functions/{FunctionName}/invocations"
    );
    assert_eq!(invoke.input_payload, Some("Payload"));
    assert!(invoke.input.iter().any(|b| b.member == "InvocationType"
        && b.location == Location::Header
        && b.name == "X-Amz-Invocation-Type"));
    assert!(invoke
        .output
        .iter()
        .any(|b| b.member == "StatusCode" && b.location == Location::StatusCode));
    let create = HTTP
        .iter()
        .find(|op| op.name == "CreateEventSourceMapping")
        .expect("create");
    assert_eq!(create.code, 202);
    // A member bound to a header keeps its own name in the document.
    let input = LAMBDA.input_shape("Invoke").expect("input");
    let crate::model::ShapeKind::Structure(members) = input.kind else {
        panic!("structure");
    };
    assert!(members.iter().any(|m| m.name == "InvocationType"));
}
