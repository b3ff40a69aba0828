//! Tests of the CBOR transcoder: request decoding, response/error/event encoding, exact bytes
//! for AWS's timestamp form, leniency on input and rejection of hostile bodies.
//!
//! Request bodies are built with `minicbor`'s own encoder (or written out in hex where the exact
//! bytes matter), so the hand-written encoder in `encode.rs` is checked against an independent one.

use std::convert::Infallible;

use minicbor::data::Tag;
use minicbor::encode::Error as EncodeError;
use minicbor::Encoder;
use serde_json::{json, Value};

use super::*;
use crate::validate::{validate_input, InputError};

// --- helpers ---

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(pair, 16).expect("hex digit")
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The hex of a CBOR text string (definite length), for assembling expected bytes.
fn text_hex(text: &str) -> String {
    let mut encoder = Encoder::new(Vec::new());
    encoder.str(text).expect("encode text");
    hex(&encoder.into_writer())
}

/// Builds a CBOR body with minicbor's encoder.
fn build(
    write: impl FnOnce(&mut Encoder<Vec<u8>>) -> Result<(), EncodeError<Infallible>>,
) -> Vec<u8> {
    let mut encoder = Encoder::new(Vec::new());
    write(&mut encoder).expect("encode test body");
    encoder.into_writer()
}

/// Decodes CBOR produced by the encoders back to JSON with the shape the encoder used.
fn decode_with(shape: Option<&'static Shape>, cbor: &[u8]) -> Value {
    decode::document(&KINESIS, shape, cbor, super::TimestampUnit::Millis)
        .expect("decode our own output")
}

fn check_request(operation: &str, cbor: &[u8], expected: Value) {
    let actual = request_to_json(operation, cbor).expect("request decodes");
    assert_eq!(actual, expected, "{operation} request from {}", hex(cbor));
}

fn check_malformed(cbor: &[u8]) {
    let result = request_to_json("PutRecords", cbor);
    assert!(
        matches!(result, Err(CborError::Malformed { .. })),
        "{} should be malformed, got {result:?}",
        hex(cbor)
    );
}

const TIMESTAMP_MILLIS: u64 = 1_787_036_486_712;
/// Tag 1 + the 8-byte unsigned integer from the Java GetShardIterator capture (wire notes §1.3).
const TIMESTAMP_CBOR: &str = "c1 1b 000001a013accc38";

// --- requests ---

#[test]
fn put_records_request_byte_strings_become_base64() {
    let body = build(|e| {
        e.map(2)?.str("StreamName")?.str("orders")?;
        e.str("Records")?.array(2)?;
        e.map(2)?.str("Data")?.bytes(&[0, 1, 2, 0xff])?;
        e.str("PartitionKey")?.str("pk-1")?;
        e.map(3)?.str("Data")?.bytes(b"hello")?;
        e.str("PartitionKey")?.str("pk-2")?;
        e.str("ExplicitHashKey")?
            .str("340282366920938463463374607431768211455")?;
        Ok(())
    });
    let expected = json!({
        "StreamName": "orders",
        "Records": [
            {"Data": "AAEC/w==", "PartitionKey": "pk-1"},
            {"Data": "aGVsbG8=", "PartitionKey": "pk-2",
             "ExplicitHashKey": "340282366920938463463374607431768211455"},
        ],
    });
    check_request("PutRecords", &body, expected.clone());
    let decoded = request_to_json("PutRecords", &body).expect("decodes");
    assert_eq!(validate_input("PutRecords", &decoded), Ok(()));
}

#[test]
fn put_record_empty_and_large_blobs() {
    let large = vec![0xa5u8; 70_000];
    let body = build(|e| {
        e.map(3)?.str("StreamName")?.str("s")?;
        e.str("PartitionKey")?.str("k")?;
        e.str("Data")?.bytes(&large)?;
        Ok(())
    });
    let decoded = request_to_json("PutRecord", &body).expect("decodes");
    let data = decoded["Data"].as_str().expect("base64 string");
    use base64::Engine as _;
    let round_trip = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("valid base64");
    assert_eq!(round_trip, large);

    let empty = build(|e| {
        e.map(1)?.str("Data")?.bytes(&[])?;
        Ok(())
    });
    check_request("PutRecord", &empty, json!({"Data": ""}));
}

#[test]
fn text_string_blob_passes_through_for_request_checking() {
    // Jackson base64-decodes a text string where a blob is expected; the server's request
    // checking does the same and reports bad base64 with AWS's own text.
    let good = build(|e| {
        e.map(3)?.str("StreamName")?.str("s")?;
        e.str("PartitionKey")?.str("k")?;
        e.str("Data")?.str("aGVsbG8=")?;
        Ok(())
    });
    let decoded = request_to_json("PutRecord", &good).expect("decodes");
    assert_eq!(decoded["Data"], json!("aGVsbG8="));
    assert_eq!(validate_input("PutRecord", &decoded), Ok(()));

    let bad = build(|e| {
        e.map(3)?.str("StreamName")?.str("s")?;
        e.str("PartitionKey")?.str("k")?;
        e.str("Data")?.str("abc")?;
        Ok(())
    });
    let decoded = request_to_json("PutRecord", &bad).expect("decodes");
    let json_body = json!({"StreamName": "s", "PartitionKey": "k", "Data": "abc"});
    let from_cbor = validate_input("PutRecord", &decoded);
    assert!(matches!(from_cbor, Err(InputError::Serialization { .. })));
    assert_eq!(from_cbor, validate_input("PutRecord", &json_body));
}

#[test]
fn get_shard_iterator_at_timestamp_from_the_java_capture() {
    let body = unhex(&format!(
        "a4 {} {} {} {} {} {} {} {}",
        text_hex("StreamName"),
        text_hex("orders"),
        text_hex("ShardId"),
        text_hex("shardId-000000000000"),
        text_hex("ShardIteratorType"),
        text_hex("AT_TIMESTAMP"),
        "69 54696d657374616d70", // "Timestamp", as in the capture
        TIMESTAMP_CBOR,
    ));
    let expected = json!({
        "StreamName": "orders",
        "ShardId": "shardId-000000000000",
        "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": 1787036486.712,
    });
    check_request("GetShardIterator", &body, expected);
    let decoded = request_to_json("GetShardIterator", &body).expect("decodes");
    assert_eq!(validate_input("GetShardIterator", &decoded), Ok(()));
    // The server reads seconds and rounds to milliseconds: the capture's value comes back.
    let seconds = decoded["Timestamp"].as_f64().expect("number");
    assert_eq!((seconds * 1000.0).round() as u64, TIMESTAMP_MILLIS);
}

#[test]
fn timestamp_forms_accepted_on_input() {
    let timestamp_of = |value: &str| -> Value {
        let body = unhex(&format!("a1 {} {value}", text_hex("Timestamp")));
        request_to_json("GetShardIterator", &body).expect("decodes")["Timestamp"].clone()
    };
    // Untagged integer milliseconds, in any width.
    assert_eq!(timestamp_of("1b 000001a013accc38"), json!(1787036486.712));
    assert_eq!(timestamp_of("19 03e8"), json!(1.0));
    assert_eq!(timestamp_of("c1 00"), json!(0.0));
    // Before the epoch: negative milliseconds.
    assert_eq!(timestamp_of("c1 39 03e7"), json!(-1.0));
    // Floats are seconds (RFC 8949), tagged or not.
    assert_eq!(
        timestamp_of("c1 fb 41daa100d1ad9168"),
        json!(1787036486.712)
    );
    assert_eq!(timestamp_of("fa 3fc00000"), json!(1.5));
    assert_eq!(timestamp_of("f9 3c00"), json!(1.0));
    // A string stays a string: request checking rejects it as AWS does.
    assert_eq!(timestamp_of("c1 63 616263"), json!("abc"));
    // Nested tags (self-describe 55799 in front) are fine.
    assert_eq!(timestamp_of("d9 d9f7 c1 19 03e8"), json!(1.0));
}

#[test]
fn subscribe_to_shard_starting_position_timestamp() {
    let body = build(|e| {
        e.map(3)?
            .str("ConsumerARN")?
            .str("arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1")?;
        e.str("ShardId")?.str("shardId-000000000000")?;
        e.str("StartingPosition")?.map(2)?;
        e.str("Type")?.str("AT_TIMESTAMP")?;
        e.str("Timestamp")?
            .tag(Tag::new(1))?
            .u64(TIMESTAMP_MILLIS)?;
        Ok(())
    });
    let decoded = request_to_json("SubscribeToShard", &body).expect("decodes");
    assert_eq!(
        decoded["StartingPosition"],
        json!({"Type": "AT_TIMESTAMP", "Timestamp": 1787036486.712})
    );
}

#[test]
fn natural_mapping_outside_the_model() {
    let body = build(|e| {
        e.map(9)?;
        e.str("StreamName")?.str("s")?;
        e.str("Unknown")?.bytes(b"hi")?;
        e.str("Flag")?.bool(true)?;
        e.str("Nothing")?.null()?;
        e.str("Undefined")?.undefined()?;
        e.str("Negative")?.i64(-5)?;
        e.str("Float")?.f64(2.5)?;
        e.str("When")?.tag(Tag::new(1))?.u64(1500)?;
        e.u32(7)?.array(2)?.u8(1)?.str("two")?;
        Ok(())
    });
    check_request(
        "DescribeStream",
        &body,
        json!({
            "StreamName": "s",
            "Unknown": "aGk=",
            "Flag": true,
            "Nothing": null,
            "Undefined": null,
            "Negative": -5,
            "Float": 2.5,
            "When": 1.5,
            "7": [1, "two"],
        }),
    );
}

#[test]
fn integers_at_non_timestamp_positions_stay_integers() {
    let body = unhex(&format!(
        "a2 {} 1a 00989680 {} 3b 7fffffffffffffff",
        text_hex("Limit"),
        text_hex("Big")
    ));
    check_request(
        "GetRecords",
        &body,
        json!({"Limit": 10_000_000, "Big": i64::MIN}),
    );
    // Below i64::MIN: a float, as serde_json parses such a number from JSON text.
    let body = unhex(&format!("a1 {} 3b ffffffffffffffff", text_hex("Big")));
    check_request("GetRecords", &body, json!({"Big": -18446744073709551616.0}));
}

#[test]
fn unknown_operation_maps_naturally() {
    let body = build(|e| {
        e.map(1)?.str("Data")?.bytes(b"x")?;
        Ok(())
    });
    check_request("NoSuchOperation", &body, json!({"Data": "eA=="}));
}

#[test]
fn top_level_that_is_not_a_map_is_returned_for_request_checking_to_reject() {
    let decoded = request_to_json("ListStreams", &unhex("80")).expect("decodes");
    assert_eq!(decoded, json!([]));
    assert_eq!(
        validate_input("ListStreams", &decoded),
        Err(InputError::Serialization { message: None })
    );
}

// --- indefinite lengths ---

#[test]
fn indefinite_length_items_decode_like_definite_ones() {
    let definite = build(|e| {
        e.map(2)?.str("StreamName")?.str("orders")?;
        e.str("Records")?.array(1)?;
        e.map(2)?.str("Data")?.bytes(b"hello world")?;
        e.str("PartitionKey")?.str("pk")?;
        Ok(())
    });
    let indefinite = build(|e| {
        e.begin_map()?;
        e.begin_str()?.str("Stream")?.str("")?.str("Name")?.end()?;
        e.begin_str()?.str("ord")?.str("ers")?.end()?;
        e.str("Records")?.begin_array()?;
        e.begin_map()?;
        e.str("Data")?
            .begin_bytes()?
            .bytes(b"hello")?
            .bytes(b" ")?
            .bytes(b"world")?
            .end()?;
        e.str("PartitionKey")?.str("pk")?;
        e.end()?; // record map
        e.end()?; // records array
        e.end()?; // top-level map
        Ok(())
    });
    assert_eq!(indefinite[0], 0xbf, "really an indefinite-length map");
    let expected = request_to_json("PutRecords", &definite).expect("definite decodes");
    check_request("PutRecords", &indefinite, expected);
}

#[test]
fn empty_indefinite_items() {
    check_request("PutRecords", &unhex("bfff"), json!({}));
    let body = unhex(&format!(
        "bf {} 9fff {} 5fff {} 7fff ff",
        text_hex("Records"),
        text_hex("Data"),
        text_hex("StreamName"),
    ));
    check_request(
        "PutRecords",
        &body,
        json!({"Records": [], "Data": "", "StreamName": ""}),
    );
}

// --- malformed and hostile input ---

#[test]
fn malformed_bodies_are_rejected() {
    let cases = [
        "",                                       // empty body
        "a1",                                     // map missing its entry
        "a1 61",                                  // truncated key
        "a1 61 61",                               // key without value
        "82 01",                                  // array missing an element
        "65 616263",                              // text shorter than declared
        "45 0102",                                // bytes shorter than declared
        "1b 0000",                                // truncated integer
        "f9 3c",                                  // truncated half float
        "fb 0000",                                // truncated double
        "ff",                                     // stray break
        "a1 ff 00",                               // break as a key in a definite map
        "81 ff",                                  // break as an element of a definite array
        "1c",                                     // reserved additional information
        "5c",                                     // reserved length for bytes
        "7d",                                     // reserved length for text
        "fc",                                     // reserved simple encoding
        "a0 00",                                  // bytes after the top-level item
        "62 c328",                                // invalid UTF-8
        "7f 61 61 5f ff ff",                      // byte-string chunk inside a text string
        "7f 7f ff ff",                            // indefinite chunk inside an indefinite string
        "5f 41 00 61 61 ff",                      // text chunk inside a byte string
        "9f 01 02",                               // indefinite array without break
        "bf 61 61 01",                            // indefinite map without break
        "bf 61 61 ff",                            // indefinite map: key without value
        "c1",                                     // tag without content
        "d8",                                     // truncated tag number
        "9b ffffffffffffffff",                    // array longer than the body
        "bb 7fffffffffffffff",                    // map longer than the body
        "5b 00ffffffffffffff",                    // bytes longer than the body
        "7b ffffffffffffffff",                    // text longer than the body
        "9a 00000010 00 00 00 00 00 00 00 00 00", // array of 16 with 9 elements
    ];
    for case in cases {
        check_malformed(&unhex(case));
    }
}

#[test]
fn valid_cbor_without_json_equivalent_is_rejected() {
    let cases = [
        "a1 80 00",            // array as a map key
        "a1 f5 00",            // boolean as a map key
        "a1 41 61 00",         // byte string as a map key
        "a1 c1 00 00",         // tagged map key
        "f0",                  // simple value 16
        "f8 ff",               // simple value 255
        "fb 7ff8000000000000", // NaN
        "f9 7c00",             // infinity (half float)
        "fa ff800000",         // minus infinity (single float)
    ];
    for case in cases {
        let result = request_to_json("PutRecords", &unhex(case));
        assert!(
            matches!(result, Err(CborError::Unrepresentable { .. })),
            "{case}: {result:?}"
        );
    }
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    for opener in ["81", "9f", "a1 60", "bf 60"] {
        let opener = unhex(opener);
        let mut body = Vec::new();
        for _ in 0..100_000 {
            body.extend_from_slice(&opener);
        }
        body.push(0x00);
        assert_eq!(
            request_to_json("PutRecords", &body),
            Err(CborError::TooDeep { limit: MAX_DEPTH }),
            "opener {}",
            hex(&opener)
        );
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let nested = |depth: usize| {
        let mut body = vec![0x81; depth];
        body.push(0x00);
        request_to_json("PutRecords", &body)
    };
    assert!(nested(MAX_DEPTH).is_ok());
    assert_eq!(
        nested(MAX_DEPTH + 1),
        Err(CborError::TooDeep { limit: MAX_DEPTH })
    );
}

#[test]
fn the_deepest_accepted_documents_fit_in_a_small_stack() {
    // The recursion is bounded by MAX_DEPTH; at that depth decoding and re-encoding need well
    // under 512 KiB even unoptimised (a tokio worker has 2 MiB).
    let outcome = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let mut results = Vec::new();
            for opener in [&[0x81u8][..], &[0x9f], &[0xa1, 0x60], &[0xbf, 0x60]] {
                let mut body = opener.repeat(MAX_DEPTH);
                body.push(0x00);
                if matches!(opener.first(), Some(0x9f | 0xbf)) {
                    body.extend(std::iter::repeat_n(0xff, MAX_DEPTH));
                }
                let value = request_to_json("PutRecords", &body);
                let encoded = value
                    .as_ref()
                    .map(|value| event_payload_to_cbor("SubscribeToShardEvent", value));
                results.push((value.is_ok(), matches!(encoded, Ok(Ok(_)))));
            }
            results
        })
        .expect("spawn a thread")
        .join()
        .expect("no stack overflow");
    assert_eq!(outcome, vec![(true, true); 4]);
}

#[test]
fn long_tag_chains_do_not_recurse() {
    let mut body = vec![0xc1; 200_000];
    body.push(0x00);
    assert_eq!(request_to_json("PutRecords", &body), Ok(json!(0.0)));
}

#[test]
fn item_count_is_limited() {
    // The array and MAX_ITEMS - 1 nulls fit; one more does not.
    let mut body = vec![0x9f];
    body.resize(MAX_ITEMS, 0xf6);
    body.push(0xff);
    assert!(request_to_json("PutRecords", &body).is_ok());
    let mut body = vec![0x9f];
    body.resize(MAX_ITEMS + 1, 0xf6);
    body.push(0xff);
    assert_eq!(
        request_to_json("PutRecords", &body),
        Err(CborError::TooManyItems { limit: MAX_ITEMS })
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A fixed-seed xorshift stream, cut into bodies of varied lengths, plus every prefix of
    // valid bodies: the decoder must return (Ok or Err), never panic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let length = (next() % 48) as usize;
        let body: Vec<u8> = (0..length).map(|_| (next() >> 24) as u8).collect();
        let _ = request_to_json("PutRecords", &body);
        let _ = request_to_json("GetShardIterator", &body);
    }
    let valid = build(|e| {
        e.begin_map()?.str("Records")?.array(1)?;
        e.map(2)?.str("Data")?.begin_bytes()?.bytes(b"ab")?.end()?;
        e.str("Timestamp")?
            .tag(Tag::new(1))?
            .u64(TIMESTAMP_MILLIS)?;
        e.end()?;
        Ok(())
    });
    for end in 0..valid.len() {
        assert!(
            request_to_json("PutRecords", &valid[..end]).is_err(),
            "prefix {end}"
        );
    }
    assert!(request_to_json("PutRecords", &valid).is_ok());
}

// --- responses ---

#[test]
fn get_records_response_exact_bytes() {
    let json_body = br#"{"Records":[{"SequenceNumber":"1","ApproximateArrivalTimestamp":1787036486.712,"Data":"aGk=","PartitionKey":"pk"}],"NextShardIterator":"it","MillisBehindLatest":0}"#;
    let cbor = response_to_cbor("GetRecords", json_body).expect("encodes");
    let expected = format!(
        "a3 {} 00 {} {} {} 81 a4 {} {TIMESTAMP_CBOR} {} 42 6869 {} {} {} {}",
        text_hex("MillisBehindLatest"),
        text_hex("NextShardIterator"),
        text_hex("it"),
        text_hex("Records"),
        text_hex("ApproximateArrivalTimestamp"),
        text_hex("Data"),
        text_hex("PartitionKey"),
        text_hex("pk"),
        text_hex("SequenceNumber"),
        text_hex("1"),
    );
    assert_eq!(hex(&cbor), hex(&unhex(&expected)));
}

#[test]
fn get_records_response_round_trips() {
    let response = json!({
        "Records": [
            {"SequenceNumber": "49590338271490256608559692538361571095921575989136588898",
             "ApproximateArrivalTimestamp": 1787036486.712,
             "Data": "AAEC/w==", "PartitionKey": "a", "EncryptionType": "NONE"},
            {"SequenceNumber": "49590338271490256608559692538361571095921575989136588899",
             "ApproximateArrivalTimestamp": 1787036487.0,
             "Data": "", "PartitionKey": "b"},
        ],
        "NextShardIterator": "AAAAAAAAAAE=",
        "MillisBehindLatest": 1500,
        "ChildShards": [
            {"ShardId": "shardId-000000000001", "ParentShards": ["shardId-000000000000"],
             "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"}},
        ],
    });
    let body = serde_json::to_vec(&response).expect("serialize");
    let cbor = response_to_cbor("GetRecords", &body).expect("encodes");
    let shape = KINESIS.output_shape("GetRecords");
    assert_eq!(decode_with(shape, &cbor), response);

    // Checked with minicbor's decoder: the blob is a byte string, the timestamp tag 1 + millis.
    let mut decoder = minicbor::Decoder::new(&cbor);
    let mut found_blob = false;
    let mut found_timestamp = false;
    while decoder.position() < cbor.len() {
        match decoder.datatype().expect("datatype") {
            minicbor::data::Type::Bytes => {
                found_blob |= decoder.bytes().expect("bytes") == [0, 1, 2, 0xff];
            }
            minicbor::data::Type::Tag => {
                assert_eq!(decoder.tag().expect("tag"), Tag::new(1));
                let millis = decoder.u64().expect("integer millis");
                found_timestamp |= millis == TIMESTAMP_MILLIS;
            }
            minicbor::data::Type::Map => {
                decoder.map().expect("map");
            }
            minicbor::data::Type::Array => {
                decoder.array().expect("array");
            }
            _ => decoder.skip().expect("skip"),
        }
    }
    assert!(found_blob && found_timestamp);
}

#[test]
fn describe_stream_response_with_creation_timestamp() {
    let response = json!({
        "StreamDescription": {
            "StreamName": "orders",
            "StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "Shards": [{
                "ShardId": "shardId-000000000000",
                "HashKeyRange": {"StartingHashKey": "0",
                                 "EndingHashKey": "340282366920938463463374607431768211455"},
                "SequenceNumberRange": {"StartingSequenceNumber": "4959"},
            }],
            "HasMoreShards": false,
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": 1787036486.712,
            "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
            "EncryptionType": "NONE",
        }
    });
    let body = serde_json::to_vec(&response).expect("serialize");
    let cbor = response_to_cbor("DescribeStream", &body).expect("encodes");
    let needle = unhex(&format!(
        "{} {TIMESTAMP_CBOR}",
        text_hex("StreamCreationTimestamp")
    ));
    assert!(
        cbor.windows(needle.len()).any(|window| window == needle),
        "tag 1 + millis in {}",
        hex(&cbor)
    );
    // RetentionPeriodHours is a small integer: one byte.
    let retention = unhex(&format!("{} 18 18", text_hex("RetentionPeriodHours")));
    assert!(cbor
        .windows(retention.len())
        .any(|window| window == retention));
    assert_eq!(
        decode_with(KINESIS.output_shape("DescribeStream"), &cbor),
        response
    );
}

#[test]
fn timestamps_in_whole_seconds_and_rounding() {
    let encode = |seconds: &str| {
        let body =
            format!(r#"{{"StreamDescriptionSummary":{{"StreamCreationTimestamp":{seconds}}}}}"#);
        let cbor = response_to_cbor("DescribeStreamSummary", body.as_bytes()).expect("encodes");
        let prefix = unhex(&format!(
            "a1 {} a1 {}",
            text_hex("StreamDescriptionSummary"),
            text_hex("StreamCreationTimestamp")
        ));
        assert!(cbor.starts_with(&prefix), "{}", hex(&cbor));
        hex(&cbor[prefix.len()..])
    };
    assert_eq!(encode("1787036486"), "c11b000001a013acc970");
    assert_eq!(encode("1787036486.712"), "c11b000001a013accc38");
    assert_eq!(encode("1787036486.7119"), "c11b000001a013accc38");
    assert_eq!(encode("1787036486.712123"), "c11b000001a013accc38");
    assert_eq!(encode("0"), "c100");
    assert_eq!(encode("0.023"), "c117");
    assert_eq!(encode("0.024"), "c11818");
    assert_eq!(encode("-1.5"), "c13905db");
}

#[test]
fn integers_use_the_smallest_encoding() {
    let cases: [(&str, &str); 12] = [
        ("0", "00"),
        ("23", "17"),
        ("24", "1818"),
        ("255", "18ff"),
        ("256", "190100"),
        ("65535", "19ffff"),
        ("65536", "1a00010000"),
        ("4294967296", "1b0000000100000000"),
        ("-1", "20"),
        ("-24", "37"),
        ("-25", "3818"),
        ("-9223372036854775808", "3b7fffffffffffffff"),
    ];
    for (json_number, expected) in cases {
        let body = format!(r#"{{"N":{json_number}}}"#);
        let cbor = response_to_cbor("NoSuchOperation", body.as_bytes()).expect("encodes");
        assert_eq!(
            hex(&cbor),
            format!("a1{}{expected}", text_hex("N")),
            "{json_number}"
        );
    }
    // A float stays a float (8 bytes) unless the model says integer.
    let cbor = response_to_cbor("NoSuchOperation", br#"{"N":1.5}"#).expect("encodes");
    assert_eq!(hex(&cbor), format!("a1{}fb3ff8000000000000", text_hex("N")));
    let cbor = response_to_cbor("GetRecords", br#"{"MillisBehindLatest":3.0}"#).expect("encodes");
    assert_eq!(
        hex(&cbor),
        format!("a1{}03", text_hex("MillisBehindLatest"))
    );
}

#[test]
fn empty_output_stays_empty() {
    assert_eq!(response_to_cbor("CreateStream", b""), Ok(Vec::new()));
    assert_eq!(response_to_cbor("CreateStream", b" \n"), Ok(Vec::new()));
    assert_eq!(response_to_cbor("CreateStream", b"{}"), Ok(vec![0xa0]));
}

#[test]
fn bad_response_bodies_are_errors() {
    assert!(matches!(
        response_to_cbor("GetRecords", b"{"),
        Err(CborError::InvalidJson { .. })
    ));
    let result = response_to_cbor(
        "GetRecords",
        br#"{"Records":[{"Data":"aGk="},{"Data":"not base64!"}]}"#,
    );
    match result {
        Err(CborError::Unencodable { path, .. }) => assert_eq!(path, "Records.1.Data"),
        other => panic!("expected Unencodable, got {other:?}"),
    }
    let result = event_payload_to_cbor("Data", &json!("%%%"));
    match result {
        Err(CborError::Unencodable { path, .. }) => assert_eq!(path, "the top level"),
        other => panic!("expected Unencodable, got {other:?}"),
    }
}

#[test]
fn deep_json_values_are_rejected_by_the_encoder() {
    let mut value = json!(0);
    for _ in 0..=MAX_DEPTH {
        value = json!([value]);
    }
    assert_eq!(
        event_payload_to_cbor("SubscribeToShardEvent", &value),
        Err(CborError::TooDeep { limit: MAX_DEPTH })
    );
}

// --- errors and events ---

#[test]
fn error_bodies_keep_their_keys() {
    let cbor = error_to_cbor(
        br#"{"__type":"ResourceNotFoundException","message":"Stream orders not found."}"#,
    )
    .expect("encodes");
    let expected = format!(
        "a2 {} {} {} {}",
        text_hex("__type"),
        text_hex("ResourceNotFoundException"),
        text_hex("message"),
        text_hex("Stream orders not found."),
    );
    assert_eq!(hex(&cbor), hex(&unhex(&expected)));

    let cbor =
        error_to_cbor(br#"{"__type":"SerializationException","Message":"x"}"#).expect("encodes");
    assert_eq!(
        decode_with(None, &cbor),
        json!({"__type": "SerializationException", "Message": "x"})
    );
    let cbor = error_to_cbor(br#"{"__type":"SerializationException"}"#).expect("encodes");
    assert_eq!(
        hex(&cbor),
        hex(&unhex(&format!(
            "a1 {} {}",
            text_hex("__type"),
            text_hex("SerializationException")
        )))
    );
}

#[test]
fn subscribe_to_shard_event_payload() {
    let event = json!({
        "Records": [{"SequenceNumber": "1", "ApproximateArrivalTimestamp": 1787036486.712,
                     "Data": "aGk=", "PartitionKey": "pk"}],
        "ContinuationSequenceNumber": "1",
        "MillisBehindLatest": 0,
    });
    let cbor = event_payload_to_cbor("SubscribeToShardEvent", &event).expect("encodes");
    let timestamp = unhex(TIMESTAMP_CBOR);
    assert!(cbor
        .windows(timestamp.len())
        .any(|window| window == timestamp));
    let data = unhex(&format!("{} 42 6869", text_hex("Data")));
    assert!(cbor.windows(data.len()).any(|window| window == data));
    assert_eq!(
        decode_with(KINESIS.shape_named("SubscribeToShardEvent"), &cbor),
        event
    );

    let initial = event_payload_to_cbor("SubscribeToShardOutput", &json!({})).expect("encodes");
    assert_eq!(initial, vec![0xa0]);
    let exception = event_payload_to_cbor("ResourceInUseException", &json!({"message": "busy"}))
        .expect("encodes");
    assert_eq!(
        hex(&exception),
        format!("a1{}{}", text_hex("message"), text_hex("busy"))
    );
    assert_eq!(
        event_payload_to_cbor("NoSuchShape", &json!({})),
        Err(CborError::UnknownShape {
            name: "NoSuchShape".to_owned()
        })
    );
}

// --- the model the transcoder relies on ---

#[test]
fn output_and_error_shapes_are_in_the_model() {
    let records = KINESIS
        .output_shape("GetRecords")
        .expect("GetRecords output");
    assert_eq!(records.name, "GetRecordsOutput");
    let record = KINESIS.shape_named("Record").expect("Record");
    let ShapeKind::Structure(members) = record.kind else {
        panic!("Record is a structure");
    };
    let kind_of_member = |name: &str| {
        let member = members
            .iter()
            .find(|member| member.name == name)
            .expect(name);
        KINESIS.shape(member.shape).expect("member shape").kind
    };
    assert_eq!(kind_of_member("Data"), ShapeKind::Blob);
    assert_eq!(
        kind_of_member("ApproximateArrivalTimestamp"),
        ShapeKind::Timestamp
    );
    assert!(KINESIS.output_shape("CreateStream").is_none());
    let stream = KINESIS
        .shape_named("SubscribeToShardEventStream")
        .expect("event stream shape");
    assert!(stream.event_stream);
    assert!(
        KINESIS
            .shape_named("SubscribeToShardEvent")
            .expect("event")
            .event
    );
    let not_found = KINESIS
        .shape_named("ResourceNotFoundException")
        .expect("error shape");
    assert!(not_found.exception);
}

// --- Smithy RPC v2 CBOR (CloudWatch): timestamps in seconds ---

#[test]
fn rpc_v2_timestamps_are_epoch_seconds_both_ways() {
    use crate::generated::cloudwatch_model::CLOUDWATCH;
    let body = build(|e| {
        e.map(4)?
            .str("Namespace")?
            .str("AWS/Kinesis")?
            .str("MetricName")?
            .str("IncomingRecords")?
            .str("StartTime")?
            .tag(Tag::new(1))?
            .f64(1_700_000_000.5)?
            .str("EndTime")?
            .tag(Tag::new(1))?
            .u32(1_700_000_600)?;
        Ok(())
    });
    let json = rpc_v2_request_to_json(&CLOUDWATCH, "GetMetricStatistics", &body).expect("decode");
    assert_eq!(json["StartTime"], json!(1_700_000_000.5));
    assert_eq!(json["EndTime"], json!(1_700_000_600));
    let reply = json!({"Label": "L", "Datapoints": [{"Timestamp": 1_700_000_040.0, "Sum": 2.0}]});
    let cbor = rpc_v2_response_to_cbor(&CLOUDWATCH, "GetMetricStatistics", &reply).expect("encode");
    // Tag 1, then the whole seconds as a 4-byte unsigned integer: c1 1a 6553f128.
    assert!(hex(&cbor).contains("c11a6553f128"), "{}", hex(&cbor));
    // Kinesis's CBOR 1.1 keeps milliseconds.
    let kinesis = response_to_cbor(
        "GetRecords",
        br#"{"Records":[{"SequenceNumber":"1","ApproximateArrivalTimestamp":1.5,"Data":"","PartitionKey":"k"}],"MillisBehindLatest":0}"#,
    )
    .expect("encode kinesis");
    assert!(hex(&kinesis).contains("c11905dc"), "{}", hex(&kinesis));
}
