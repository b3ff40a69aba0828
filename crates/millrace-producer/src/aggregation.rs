//! The KPL aggregation format and its reverse.
//!
//! An aggregated Kinesis record's data is `F3 89 9A C2`, then a protobuf `AggregatedRecord`,
//! then the MD5 of that protobuf. The message holds a table of partition keys, a table of
//! explicit hash keys and the user records, each naming its keys by index into the tables:
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Tag    { required string key = 1; optional string value = 2; }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! The messages are declared here with `prost`'s derive, so no `protoc` is needed to build.

use md5::{Digest, Md5};
use prost::Message;

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// The size a varint of `value` takes.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// The size of a length-delimited field with a one-byte tag and `len` bytes of payload.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Builds one aggregated record, tracking its exact encoded size as records are added.
#[derive(Debug, Default)]
pub struct Aggregator {
    message: AggregatedRecord,
    /// Encoded size of `message`.
    size: usize,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// The size the aggregated record's data would have now (magic, message, digest).
    pub fn encoded_size(&self) -> usize {
        MAGIC.len() + self.size + DIGEST_LEN
    }

    /// The size the data would have with one more record.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let (extra, _) = self.cost(partition_key, explicit_hash_key, data_len);
        self.encoded_size() + extra
    }

    fn cost(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> (usize, (Option<usize>, Option<Option<usize>>)) {
        let mut extra = 0;
        let pk_index = self
            .message
            .partition_key_table
            .iter()
            .position(|k| k == partition_key);
        let pk_value = pk_index.unwrap_or(self.message.partition_key_table.len());
        if pk_index.is_none() {
            extra += field_len(partition_key.len());
        }
        let mut inner = 1 + varint_len(pk_value as u64) + field_len(data_len);
        let ehk_index = explicit_hash_key.map(|ehk| {
            let found = self
                .message
                .explicit_hash_key_table
                .iter()
                .position(|k| k == ehk);
            let value = found.unwrap_or(self.message.explicit_hash_key_table.len());
            if found.is_none() {
                extra += field_len(ehk.len());
            }
            inner += 1 + varint_len(value as u64);
            found
        });
        extra += field_len(inner);
        (extra, (pk_index, ehk_index))
    }

    /// Adds a user record.
    pub fn add(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) {
        let (extra, (pk_index, ehk_index)) =
            self.cost(partition_key, explicit_hash_key, data.len());
        self.size += extra;
        let partition_key_index = match pk_index {
            Some(i) => i,
            None => {
                self.message
                    .partition_key_table
                    .push(partition_key.to_owned());
                self.message.partition_key_table.len() - 1
            }
        } as u64;
        let explicit_hash_key_index = match (explicit_hash_key, ehk_index) {
            (Some(_), Some(Some(i))) => Some(i as u64),
            (Some(ehk), _) => {
                self.message.explicit_hash_key_table.push(ehk.to_owned());
                Some(self.message.explicit_hash_key_table.len() as u64 - 1)
            }
            (None, _) => None,
        };
        self.message.records.push(Record {
            partition_key_index,
            explicit_hash_key_index,
            data: data.to_vec(),
            tags: Vec::new(),
        });
    }

    /// The aggregated record's data, and the aggregator emptied for reuse.
    pub fn finish(&mut self) -> Vec<u8> {
        let message = std::mem::take(&mut self.message);
        self.size = 0;
        encode(&message)
    }
}

/// Encodes a message as an aggregated record's data.
pub fn encode(message: &AggregatedRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + message.encoded_len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    message.encode(&mut out).expect("a Vec grows to any length");
    let digest = Md5::digest(&out[MAGIC.len()..]);
    out.extend_from_slice(&digest);
    out
}

/// Why an aggregated record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeaggregationError {
    #[error("aggregated record's MD5 does not match its contents")]
    Checksum,
    #[error("aggregated record's protobuf is malformed: {0}")]
    Malformed(String),
    #[error("user record {record} names partition key index {index}, beyond the table")]
    PartitionKeyIndex { record: usize, index: u64 },
    #[error("user record {record} names explicit hash key index {index}, beyond the table")]
    ExplicitHashKeyIndex { record: usize, index: u64 },
}

/// One user record out of a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
    /// The Kinesis record's sequence number.
    pub sequence_number: String,
    /// The position inside the aggregate (0 for a record that was not aggregated).
    pub sub_sequence_number: u64,
    pub aggregated: bool,
}

/// Whether `data` starts with the magic and is long enough to hold a digest.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.len() >= MAGIC.len() + DIGEST_LEN && data[..MAGIC.len()] == MAGIC
}

/// The user records of one Kinesis record. A record without the magic passes through as one
/// user record; an aggregate whose digest does not match is reported, not passed through.
pub fn deaggregate(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    sequence_number: &str,
    data: &[u8],
) -> Result<Vec<UserRecord>, DeaggregationError> {
    if !is_aggregated(data) {
        return Ok(vec![UserRecord {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            data: data.to_vec(),
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number: 0,
            aggregated: false,
        }]);
    }
    let body = &data[MAGIC.len()..data.len() - DIGEST_LEN];
    let digest = &data[data.len() - DIGEST_LEN..];
    if Md5::digest(body).as_slice() != digest {
        return Err(DeaggregationError::Checksum);
    }
    let message =
        AggregatedRecord::decode(body).map_err(|e| DeaggregationError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(message.records.len());
    for (i, record) in message.records.into_iter().enumerate() {
        let partition_key = message
            .partition_key_table
            .get(record.partition_key_index as usize)
            .ok_or(DeaggregationError::PartitionKeyIndex {
                record: i,
                index: record.partition_key_index,
            })?
            .clone();
        let explicit_hash_key = match record.explicit_hash_key_index {
            Some(index) => Some(
                message
                    .explicit_hash_key_table
                    .get(index as usize)
                    .ok_or(DeaggregationError::ExplicitHashKeyIndex { record: i, index })?
                    .clone(),
            ),
            None => None,
        };
        out.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: record.data,
            sequence_number: sequence_number.to_owned(),
            sub_sequence_number: i as u64,
            aggregated: true,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_tracking_is_exact() {
        let mut agg = Aggregator::new();
        for i in 0..300 {
            let pk = format!("key-{}", i % 17);
            let ehk = (i % 3 == 0).then(|| format!("{}", i * 1_000_003));
            let data = vec![b'x'; i * 7 % 400];
            let predicted = agg.size_with(&pk, ehk.as_deref(), data.len());
            agg.add(&pk, ehk.as_deref(), &data);
            assert_eq!(predicted, agg.encoded_size());
            assert_eq!(
                agg.encoded_size(),
                MAGIC.len() + agg.message.encoded_len() + DIGEST_LEN
            );
        }
        let bytes = agg.finish();
        assert!(agg.is_empty());
        let records = deaggregate("outer", None, "49", &bytes).expect("deaggregate");
        assert_eq!(records.len(), 300);
        assert_eq!(records[20].partition_key, "key-3");
        assert_eq!(records[21].explicit_hash_key.as_deref(), Some("21000063"));
        assert_eq!(records[22].sub_sequence_number, 22);
    }

    #[test]
    fn plain_records_pass_through_and_bad_digests_are_reported() {
        let plain = deaggregate("k", None, "1", b"hello").expect("plain");
        assert_eq!(plain.len(), 1);
        assert!(!plain[0].aggregated);
        let mut agg = Aggregator::new();
        agg.add("k", None, b"one");
        let mut bytes = agg.finish();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            deaggregate("k", None, "1", &bytes),
            Err(DeaggregationError::Checksum)
        );
    }
}
