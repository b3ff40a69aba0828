//! The workloads, and what they share: endpoint options, stream names, GetRecords replies.

pub mod fanout;
pub mod get;
pub mod mixed;
pub mod put;
pub mod queues;
pub mod restart;
pub mod shards;

use std::borrow::Cow;
use std::path::PathBuf;

use clap::Args;
use rand::Rng as _;
use serde::Deserialize;

/// Options every client workload takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// The Kinesis endpoint, `http://HOST:PORT`.
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    pub endpoint: String,
    /// Region of the SigV4 credential scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Pid of the server process, to report its CPU seconds and RSS from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Also write the JSON result to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A free-form label stored in the result (e.g. the server's name and mode).
    #[arg(long)]
    pub label: Option<String>,
    /// Encrypt the benchmark stream with this KMS key (StartStreamEncryption), e.g.
    /// `alias/aws/kinesis`; for the put and get workloads.
    #[arg(long)]
    pub encrypt_key: Option<String>,
}

/// A stream name no earlier run used: `PREFIX-` and 8 random alphanumerics.
pub fn unique_stream_name(prefix: &str) -> String {
    let suffix: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(8)
        .map(char::from)
        .collect();
    format!("{prefix}-{suffix}")
}

/// The parts of a GetRecords reply the workloads use, borrowed from the reply body.
#[derive(Deserialize)]
pub struct GetRecordsReply<'a> {
    #[serde(rename = "Records", borrow, default)]
    pub records: Vec<RecordOut<'a>>,
    #[serde(rename = "NextShardIterator")]
    pub next_shard_iterator: Option<String>,
    #[serde(rename = "MillisBehindLatest")]
    pub millis_behind_latest: Option<u64>,
}

/// One record of a GetRecords reply.
#[derive(Deserialize)]
pub struct RecordOut<'a> {
    #[serde(rename = "Data", borrow)]
    pub data: Cow<'a, str>,
    #[serde(rename = "PartitionKey", borrow)]
    pub partition_key: Cow<'a, str>,
}

impl RecordOut<'_> {
    /// Decoded payload size, from the base64 length and padding.
    pub fn data_len(&self) -> u64 {
        let text = self.data.as_bytes();
        let padding = text.iter().rev().take_while(|b| **b == b'=').count();
        (text.len() / 4 * 3).saturating_sub(padding) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_records_reply_is_parsed_with_sizes() {
        let body = br#"{"Records":[{"SequenceNumber":"1","ApproximateArrivalTimestamp":1.5,"Data":"AAAA","PartitionKey":"k1"},{"Data":"AA==","PartitionKey":"k2"}],"NextShardIterator":"it","MillisBehindLatest":0}"#;
        let reply: GetRecordsReply<'_> = serde_json::from_slice(body).expect("parses");
        assert_eq!(reply.records.len(), 2);
        assert_eq!(reply.records[0].data_len(), 3);
        assert_eq!(reply.records[1].data_len(), 1);
        assert_eq!(reply.records[1].partition_key, "k2");
        assert_eq!(reply.next_shard_iterator.as_deref(), Some("it"));
        assert_eq!(reply.millis_behind_latest, Some(0));
    }

    #[test]
    fn stream_names_are_unique_and_valid() {
        let a = unique_stream_name("bench");
        assert_ne!(a, unique_stream_name("bench"));
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
