//! The data plane: PutRecord, PutRecords, GetShardIterator and GetRecords.
//!
//! PutRecords and GetRecords take a fast path: the body is deserialized into borrowed
//! structures, base64 is decoded straight into one buffer, and the reply is written without an
//! intermediate tree. Anything the fast path's conservative checks do not accept goes through
//! the model-driven validator, which produces the service's exact error.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use millrace_engine::{
    ChildShard, IteratorRequest, IteratorType, PreparedRecords, PutEntry, PutFailure, PutOutcome,
    ReadRecord,
};
use serde::Deserialize;

use std::time::Instant;

use millrace_engine::Error as EngineError;

use super::{metrics, stream_target, Context};
use crate::error::ApiError;
use crate::json::{decode, millis};

const MAX_DATA_BYTES: usize = 10 * 1024 * 1024;

fn dry_run(flag: Option<bool>) -> Result<(), ApiError> {
    if flag == Some(true) {
        return Err(ApiError::new(
            "DryRunOperationException",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    Ok(())
}

/// A base64 text taken as bytes: serde_json hands a string over as bytes without the UTF-8
/// check a `str` costs (about 2 % of a PutRecords request's CPU); base64 is ASCII, so anything
/// else fails to decode and goes to the full validator, as an invalid string did.
struct Base64Text<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Base64Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Cow<'de, [u8]>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_vec()))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v.as_bytes()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.as_bytes().to_vec()))
            }
        }
        deserializer.deserialize_bytes(Text).map(Base64Text)
    }
}

#[derive(Deserialize)]
struct FastEntry<'a> {
    #[serde(borrow, rename = "Data")]
    data: Base64Text<'a>,
    #[serde(borrow, rename = "PartitionKey")]
    partition_key: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ExplicitHashKey")]
    explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PutRecordsInput<'a> {
    #[serde(borrow, rename = "Records")]
    records: Vec<FastEntry<'a>>,
    #[serde(borrow, rename = "StreamName")]
    stream_name: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "StreamARN")]
    stream_arn: Option<Cow<'a, str>>,
    #[serde(rename = "DryRun")]
    dry_run: Option<bool>,
}

fn plausible_stream_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn plausible_hash_key(key: &str) -> bool {
    (1..=39).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'))
}

fn plausible_partition_key(key: &str) -> bool {
    !key.is_empty() && (key.len() <= 256 || key.chars().count() <= 256)
}

/// Decodes every entry's data in the log's layout; `None` if anything needs the full validator.
fn fast_entries<'a>(records: &'a [FastEntry<'a>]) -> Option<PreparedRecords<'a>> {
    if records.is_empty() || records.len() > millrace_types::limits::MAX_PUT_RECORDS_ENTRIES {
        return None;
    }
    let plausible = records.iter().all(|record| {
        record
            .partition_key
            .as_deref()
            .is_none_or(plausible_partition_key)
            && record
                .explicit_hash_key
                .as_deref()
                .is_none_or(plausible_hash_key)
    });
    if !plausible {
        return None;
    }
    let prepared = decode_entries(records)?;
    let oversized = (0..prepared.len()).any(|i| prepared.data(i).len() > MAX_DATA_BYTES);
    (!oversized).then_some(prepared)
}

/// Decodes every entry's base64 data straight into the buffer the engine appends from
/// (allocated once: decoded sizes are known from the text), or `None` for invalid base64.
fn decode_entries<'a>(records: &'a [FastEntry<'a>]) -> Option<PreparedRecords<'a>> {
    let data_bytes = records
        .iter()
        .map(|r| r.data.0.len() / 4 * 3)
        .sum::<usize>()
        + records
            .iter()
            .map(|r| r.partition_key.as_deref().map_or(0, str::len))
            .sum::<usize>();
    let mut prepared = PreparedRecords::with_capacity(records.len(), data_bytes);
    for record in records {
        prepared
            .push_with(
                record.partition_key.as_deref(),
                record.explicit_hash_key.as_deref(),
                |buffer| {
                    base64_simd::STANDARD
                        .decode_append(&record.data.0, buffer)
                        .map(drop)
                },
            )
            .ok()?;
    }
    Some(prepared)
}

fn decode_data(text: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD
        .decode(text)
        .map_err(|_| ApiError::serialization(None))
}

pub async fn put_records(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let started = Instant::now();
    let parsed: Option<PutRecordsInput<'_>> = serde_json::from_slice(body).ok();
    let fast = parsed.as_ref().and_then(|input| {
        let name_ok = input
            .stream_name
            .as_deref()
            .is_some_and(plausible_stream_name)
            && input.stream_arn.is_none();
        if !name_ok {
            return None;
        }
        fast_entries(&input.records)
    });
    let reparsed: PutRecordsInput<'_>;
    let (input, records) = match fast {
        Some(records) => (parsed.as_ref().expect("the fast path parsed"), records),
        None => {
            // The full validator either rejects the body with the service's error or accepts it.
            crate::json::validate("PutRecords", body)?;
            let input = match &parsed {
                Some(input) => input,
                None => {
                    reparsed =
                        serde_json::from_slice(body).map_err(|_| ApiError::serialization(None))?;
                    &reparsed
                }
            };
            let records =
                decode_entries(&input.records).ok_or_else(|| ApiError::serialization(None))?;
            (input, records)
        }
    };
    dry_run(input.dry_run)?;
    let (region, name) = stream_target(
        context,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    super::authorize_stream_key(context, &region, &name, true)?;
    let sizes: Option<Vec<u64>> = context.metrics.is_some().then(|| {
        (0..records.len())
            .map(|i| (records.data(i).len() + records.partition_key(i).map_or(0, str::len)) as u64)
            .collect()
    });
    let outcomes = context
        .engine
        .put_prepared_records(&region, &name, records)
        .await?;
    if let Some(sizes) = sizes {
        metrics::put_records(context, &region, &name, started, &sizes, &outcomes);
    }
    Ok(put_records_reply(&outcomes))
}

fn put_records_reply(outcomes: &[Result<PutOutcome, PutFailure>]) -> Vec<u8> {
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    let mut reply = String::with_capacity(40 + outcomes.len() * 110);
    let _ = write!(reply, r#"{{"FailedRecordCount":{failed},"Records":["#);
    // A batch names few shards: each one's text is formatted once.
    let mut shard: Option<(millrace_types::ShardId, String)> = None;
    for (index, outcome) in outcomes.iter().enumerate() {
        if index > 0 {
            reply.push(',');
        }
        match outcome {
            Ok(outcome) => {
                reply.push_str(r#"{"SequenceNumber":""#);
                let _ = write!(reply, "{}", outcome.sequence_number);
                reply.push_str(r#"","ShardId":""#);
                let text = match &shard {
                    Some((id, text)) if *id == outcome.shard_id => text,
                    _ => {
                        &shard
                            .insert((outcome.shard_id, outcome.shard_id.to_string()))
                            .1
                    }
                };
                reply.push_str(text);
                reply.push_str(r#""}"#);
            }
            Err(failure) => {
                let _ = write!(
                    reply,
                    r#"{{"ErrorCode":"{}","ErrorMessage":{}}}"#,
                    failure.error_code,
                    serde_json::Value::from(failure.error_message.as_str())
                );
            }
        }
    }
    reply.push_str("]}");
    reply.into_bytes()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: String,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
    dry_run: Option<bool>,
}

pub async fn put_record(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let started = Instant::now();
    let input: PutRecordInput = decode("PutRecord", body)?;
    dry_run(input.dry_run)?;
    let (region, name) = stream_target(
        context,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    super::authorize_stream_key(context, &region, &name, true)?;
    let data = decode_data(&input.data)?;
    let result = context
        .engine
        .put_record(
            &region,
            &name,
            PutEntry {
                partition_key: input.partition_key.as_deref(),
                explicit_hash_key: input.explicit_hash_key.as_deref(),
                data: &data,
            },
            input.sequence_number_for_ordering.as_deref(),
        )
        .await;
    if context.metrics.is_some() {
        let size = (data.len() + input.partition_key.as_deref().map_or(0, str::len)) as u64;
        let shard = result.as_ref().map(|o| o.shard_id.to_string());
        let outcome = match (&shard, &result) {
            (Ok(shard), _) => Ok(shard.as_str()),
            (_, Err(EngineError::ProvisionedThroughputExceeded(message))) => {
                Err(Some(metrics::throttled_shard(message)))
            }
            _ => Err(None),
        };
        // Requests for streams that do not exist are not counted (no series per bad name).
        if !matches!(&result, Err(EngineError::ResourceNotFound(_))) {
            metrics::put_record(context, &region, &name, started, size, outcome);
        }
    }
    let outcome = result?;
    Ok(format!(
        r#"{{"ShardId":"{}","SequenceNumber":"{}"}}"#,
        outcome.shard_id, outcome.sequence_number
    )
    .into_bytes())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: String,
    shard_iterator_type: String,
    starting_sequence_number: Option<String>,
    timestamp: Option<f64>,
    dry_run: Option<bool>,
}

pub async fn get_shard_iterator(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let input: GetShardIteratorInput = decode("GetShardIterator", body)?;
    dry_run(input.dry_run)?;
    let (region, name) = stream_target(
        context,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let iterator_type = IteratorType::parse(&input.shard_iterator_type)
        .ok_or_else(|| ApiError::new("InvalidArgumentException", "Invalid ShardIteratorType."))?;
    let iterator = context
        .engine
        .get_shard_iterator(
            &region,
            &name,
            IteratorRequest {
                shard_id: &input.shard_id,
                iterator_type,
                starting_sequence_number: input.starting_sequence_number.as_deref(),
                timestamp_ms: input.timestamp.map(millis),
            },
        )
        .await?;
    Ok(
        serde_json::to_vec(&serde_json::json!({ "ShardIterator": iterator }))
            .expect("strings serialize"),
    )
}

#[derive(Deserialize)]
struct GetRecordsInput<'a> {
    #[serde(borrow, rename = "ShardIterator")]
    shard_iterator: Cow<'a, str>,
    #[serde(rename = "Limit")]
    limit: Option<i64>,
    #[serde(rename = "DryRun")]
    dry_run: Option<bool>,
    #[serde(borrow, rename = "StreamARN")]
    stream_arn: Option<Cow<'a, str>>,
}

pub async fn get_records(context: &Context<'_>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let parsed: Option<GetRecordsInput<'_>> = serde_json::from_slice(body).ok();
    let plausible = parsed.as_ref().is_some_and(|input| {
        (1..=512).contains(&input.shard_iterator.len())
            && input.limit.is_none_or(|l| (1..=10_000).contains(&l))
            && input.stream_arn.is_none()
    });
    let input = match parsed {
        Some(input) if plausible => input,
        _ => {
            crate::json::validate("GetRecords", body)?;
            serde_json::from_slice(body).map_err(|_| ApiError::serialization(None))?
        }
    };
    dry_run(input.dry_run)?;
    match input.stream_arn.as_deref() {
        Some(arn) => {
            let (region, name) = super::resource_target(context, arn)?;
            super::authorize_stream_key(context, &region, &name, false)?;
        }
        None => {
            // The stream the iterator reads is the resource; a forged iterator is refused by
            // the engine after the check on `*`-less "unknown" resource below.
            match context.engine.iterator_stream(&input.shard_iterator) {
                Some(name) => {
                    let arn = context.engine.stream_arn(&context.region, &name);
                    context
                        .authz
                        .check(context.engine, &arn, Some((&context.region, &name)))?;
                    super::authorize_stream_key(context, &context.region, &name, false)?;
                }
                None => {
                    let arn = context.engine.stream_arn(&context.region, "*");
                    context.authz.check(context.engine, &arn, None)?;
                }
            }
        }
    }
    let started = Instant::now();
    let result = context
        .engine
        .get_records(&input.shard_iterator, input.limit)
        .await;
    if context.metrics.is_some() {
        let outcome = match &result {
            Ok(output) => Ok((&output.records[..], output.millis_behind_latest)),
            Err(error) => Err(matches!(
                error,
                EngineError::ProvisionedThroughputExceeded(_)
            )),
        };
        metrics::get_records(
            context,
            &context.region,
            &input.shard_iterator,
            started,
            outcome,
        );
    }
    let output = result?;
    let data_bytes: usize = output.records.iter().map(|r| r.data().len()).sum();
    let mut reply = String::with_capacity(200 + output.records.len() * 160 + data_bytes * 4 / 3);
    reply.push_str(r#"{"Records":"#);
    write_records(&mut reply, &output.records);
    if let Some(next) = &output.next_shard_iterator {
        let _ = write!(reply, r#","NextShardIterator":"{next}""#);
    }
    if !output.child_shards.is_empty() {
        let children: Vec<serde_json::Value> = output
            .child_shards
            .iter()
            .map(|child| {
                serde_json::json!({
                    "ShardId": child.shard_id,
                    "ParentShards": child.parent_shards,
                    "HashKeyRange": {
                        "StartingHashKey": child.starting_hash_key,
                        "EndingHashKey": child.ending_hash_key,
                    },
                })
            })
            .collect();
        let _ = write!(
            reply,
            r#","ChildShards":{}"#,
            serde_json::Value::Array(children)
        );
    }
    let _ = write!(
        reply,
        r#","MillisBehindLatest":{}}}"#,
        output.millis_behind_latest
    );
    Ok(reply.into_bytes())
}

/// Writes a JSON array of records in the GetRecords shape.
pub fn write_records(reply: &mut String, records: &[ReadRecord]) {
    reply.push('[');
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            reply.push(',');
        }
        let _ = write!(
            reply,
            r#"{{"SequenceNumber":"{}","ApproximateArrivalTimestamp":{}.{:03},"Data":""#,
            record.sequence_number,
            record.arrival_ms / 1000,
            record.arrival_ms % 1000
        );
        base64_simd::STANDARD.encode_append(record.data(), reply);
        reply.push('"');
        let key = record.partition_key();
        if !key.is_empty() {
            reply.push_str(r#","PartitionKey":"#);
            reply.push_str(&serde_json::to_string(key).expect("strings serialize"));
        }
        if record.encrypted {
            reply.push_str(r#","EncryptionType":"KMS""#);
        }
        reply.push('}');
    }
    reply.push(']');
}

/// The ChildShards array.
pub fn child_shards_json(children: &[ChildShard]) -> serde_json::Value {
    children
        .iter()
        .map(|child| {
            serde_json::json!({
                "ShardId": child.shard_id,
                "ParentShards": child.parent_shards,
                "HashKeyRange": {
                    "StartingHashKey": child.starting_hash_key,
                    "EndingHashKey": child.ending_hash_key,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    /// The fast path's decoder must accept exactly what the validator's decoder accepts.
    #[test]
    fn simd_and_strict_base64_agree() {
        let cases = [
            "",
            "QQ==",
            "QUI=",
            "QUJD",
            "QR==",
            "QUJ=",
            "QQ=",
            "QQ",
            "Q===",
            "====",
            "QUJD\n",
            "QU JD",
            "QUJD====",
            "Q\u{e9}==",
            "-_==",
            "QUJDRA==",
            "QUJDRB==",
            "AAAA",
            "////",
        ];
        for case in cases {
            let strict = STANDARD.decode(case).ok();
            let mut simd = Vec::new();
            let fast = base64_simd::STANDARD
                .decode_append(case, &mut simd)
                .ok()
                .map(|_| simd);
            assert_eq!(fast, strict, "{case:?}");
        }
        let mut encoded = String::new();
        base64_simd::STANDARD.encode_append(b"\x00\xffhello", &mut encoded);
        assert_eq!(encoded, STANDARD.encode(b"\x00\xffhello"));
    }
}
