//! Request bodies for the write workloads, written directly as JSON text.
//!
//! Stream names and partition keys are generated here from `[A-Za-z0-9-]`, so nothing needs JSON escaping.

use base64::Engine as _;
use rand::{Rng, RngCore};

/// A random partition key of 16 alphanumeric characters, so records spread over all shards.
pub fn partition_key(rng: &mut impl Rng) -> String {
    rng.sample_iter(rand::distributions::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// Base64 of `size` random bytes.
pub fn random_data_base64(rng: &mut impl RngCore, size: usize) -> String {
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A PutRecords body; `key_for(i)` gives the i-th record's partition key and `data_base64` its payload.
pub fn put_records(
    stream: &str,
    count: usize,
    data_base64: &str,
    mut key_for: impl FnMut(usize) -> String,
) -> Vec<u8> {
    let mut body = String::with_capacity(64 + count * (data_base64.len() + 64));
    body.push_str(r#"{"StreamName":""#);
    body.push_str(stream);
    body.push_str(r#"","Records":["#);
    for i in 0..count {
        if i > 0 {
            body.push(',');
        }
        body.push_str(r#"{"Data":""#);
        body.push_str(data_base64);
        body.push_str(r#"","PartitionKey":""#);
        body.push_str(&key_for(i));
        body.push_str(r#""}"#);
    }
    body.push_str("]}");
    body.into_bytes()
}

/// A PutRecord body.
pub fn put_record(stream: &str, partition_key: &str, data_base64: &str) -> Vec<u8> {
    format!(
        r#"{{"StreamName":"{stream}","Data":"{data_base64}","PartitionKey":"{partition_key}"}}"#
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_records_body_is_valid_json_with_every_record() {
        let mut rng = rand::thread_rng();
        let data = random_data_base64(&mut rng, 10);
        let body = put_records("s-1", 3, &data, |i| format!("key{i}"));
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(parsed["StreamName"], "s-1");
        let records = parsed["Records"].as_array().expect("a list");
        assert_eq!(records.len(), 3);
        assert_eq!(records[2]["PartitionKey"], "key2");
        assert_eq!(records[0]["Data"], data.as_str());
    }

    #[test]
    fn put_record_body_is_valid_json() {
        let body = put_record("s", "k", "AAAA");
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(parsed["Data"], "AAAA");
        assert_eq!(parsed["PartitionKey"], "k");
    }
}
