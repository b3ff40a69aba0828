//! The ceiling server: the least a Kinesis server must do for PutRecords over HTTP on this machine.
//!
//! It reads each body, deserializes PutRecords with borrowed structs (no base64 decoding, no storage, no
//! hashing) and answers with a correctly sized reply: one 56-digit sequence number and a shard id per record.
//! Running the same load generator against it tells how close a real server gets to what HTTP allows here.
//! It also answers the few control-plane calls the workloads make, with fixed replies.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// Options of `ceiling-server`.
#[derive(Args, Clone, Debug)]
pub struct CeilingArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

#[derive(Deserialize)]
struct PutRecordsInput<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<PutRecordsEntry<'a>>,
    #[serde(rename = "StreamName", borrow, default)]
    _stream_name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow, default)]
    _stream_arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PutRecordsEntry<'a> {
    #[serde(rename = "Data", borrow)]
    _data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    _partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow, default)]
    _explicit_hash_key: Option<Cow<'a, str>>,
}

const SEQUENCE_NUMBER: &str = "49667000000000000000000000000000000000000000000000000002";
const SHARD_ID: &str = "shardId-000000000000";

fn put_records_reply(records: usize) -> Vec<u8> {
    let entry = format!(r#"{{"SequenceNumber":"{SEQUENCE_NUMBER}","ShardId":"{SHARD_ID}"}}"#);
    let mut reply = Vec::with_capacity(40 + records * (entry.len() + 1));
    reply.extend_from_slice(br#"{"FailedRecordCount":0,"Records":["#);
    for i in 0..records {
        if i > 0 {
            reply.push(b',');
        }
        reply.extend_from_slice(entry.as_bytes());
    }
    reply.extend_from_slice(b"]}");
    reply
}

fn reply_for(operation: &str, body: &[u8]) -> (u16, Vec<u8>) {
    match operation {
        "PutRecords" => match serde_json::from_slice::<PutRecordsInput<'_>>(body) {
            Ok(input) => (200, put_records_reply(input.records.len())),
            Err(_) => (400, br#"{"__type":"SerializationException"}"#.to_vec()),
        },
        "PutRecord" => (
            200,
            format!(r#"{{"ShardId":"{SHARD_ID}","SequenceNumber":"{SEQUENCE_NUMBER}"}}"#).into_bytes(),
        ),
        "CreateStream" | "DeleteStream" => (200, Vec::new()),
        "DescribeStreamSummary" => (
            200,
            br#"{"StreamDescriptionSummary":{"StreamName":"ceiling","StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/ceiling","StreamStatus":"ACTIVE","StreamModeDetails":{"StreamMode":"PROVISIONED"},"RetentionPeriodHours":24,"StreamCreationTimestamp":1700000000.0,"EnhancedMonitoring":[{"ShardLevelMetrics":[]}],"EncryptionType":"NONE","OpenShardCount":1,"ConsumerCount":0}}"#.to_vec(),
        ),
        "ListShards" => (
            200,
            format!(r#"{{"Shards":[{{"ShardId":"{SHARD_ID}","HashKeyRange":{{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"}},"SequenceNumberRange":{{"StartingSequenceNumber":"{SEQUENCE_NUMBER}"}}}}]}}"#).into_bytes(),
        ),
        "ListStreams" => (200, br#"{"StreamNames":[],"HasMoreStreams":false}"#.to_vec()),
        _ => (400, br#"{"__type":"UnknownOperationException"}"#.to_vec()),
    }
}

async fn handle(
    request: http::Request<Incoming>,
    request_ids: Arc<AtomicU64>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('.'))
        .map(|(_, op)| op.to_owned())
        .unwrap_or_default();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (status, reply) = reply_for(&operation, &body);
    let request_id = request_ids.fetch_add(1, Ordering::Relaxed);
    let response = http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amzn-RequestId",
            format!("00000000-0000-4000-8000-{request_id:012x}"),
        )
        .body(Full::new(Bytes::from(reply)))
        .expect("static headers are valid");
    Ok(response)
}

/// Runs the ceiling server until the process is stopped; prints `listening on http://ADDR` once bound.
pub async fn serve(args: &CeilingArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let address = listener.local_addr().context("read the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{address}").context("write to stdout")?;
        stdout.flush().context("flush stdout")?;
    }
    let request_ids = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        let _ = stream.set_nodelay(true);
        let request_ids = Arc::clone(&request_ids);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                handle(request, Arc::clone(&request_ids))
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_records_reply_has_one_entry_per_record() {
        let body = br#"{"StreamName":"s","Records":[{"Data":"AAAA","PartitionKey":"a"},{"Data":"AA==","PartitionKey":"b","ExplicitHashKey":"5"}]}"#;
        let (status, reply) = reply_for("PutRecords", body);
        assert_eq!(status, 200);
        let parsed: serde_json::Value = serde_json::from_slice(&reply).expect("valid JSON");
        assert_eq!(parsed["FailedRecordCount"], 0);
        let records = parsed["Records"].as_array().expect("a list");
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0]["SequenceNumber"].as_str().map(str::len),
            Some(56)
        );
    }

    #[test]
    fn bad_bodies_and_unknown_operations_are_rejected() {
        assert_eq!(reply_for("PutRecords", b"{").0, 400);
        assert_eq!(reply_for("Nope", b"{}").0, 400);
        assert_eq!(reply_for("CreateStream", b"{}"), (200, Vec::new()));
    }
}
