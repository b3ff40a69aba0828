//! KPL-aggregated records: a magic prefix, a protobuf `AggregatedRecord` (partition-key
//! table, explicit-hash-key table, records) and an MD5 of the protobuf, split back into user
//! records with sub-sequence numbers. Anything that is not a valid aggregate is one plain record.

use md5::{Digest, Md5};

/// The KPL's aggregation prefix.
const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// One user record of an aggregate.
#[derive(Debug, PartialEq, Eq)]
pub struct SubRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one protobuf message: (field number, wire type, varint value or bytes).
fn fields(bytes: &[u8]) -> Option<Vec<(u64, u64, &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let start = at;
                varint(bytes, &mut at)?;
                out.push((field, wire, &bytes[start..at]));
            }
            2 => {
                let length = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(length).filter(|e| *e <= bytes.len())?;
                out.push((field, wire, &bytes[at..end]));
                at = end;
            }
            1 => {
                at = at.checked_add(8).filter(|e| *e <= bytes.len())?;
            }
            5 => {
                at = at.checked_add(4).filter(|e| *e <= bytes.len())?;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn varint_value(bytes: &[u8]) -> Option<u64> {
    let mut at = 0;
    varint(bytes, &mut at)
}

/// The user records of `data`, or `None` when it is not a valid KPL aggregate.
pub fn deaggregate(data: &[u8]) -> Option<Vec<SubRecord>> {
    if data.len() < MAGIC.len() + 16 || data[..4] != MAGIC {
        return None;
    }
    let (message, digest) = data[4..].split_at(data.len() - 4 - 16);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let mut keys = Vec::new();
    let mut hash_keys = Vec::new();
    let mut records = Vec::new();
    for (field, wire, body) in fields(message)? {
        match (field, wire) {
            (1, 2) => keys.push(String::from_utf8(body.to_vec()).ok()?),
            (2, 2) => hash_keys.push(String::from_utf8(body.to_vec()).ok()?),
            (3, 2) => records.push(body),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for record in records {
        let mut key_index = None;
        let mut hash_index = None;
        let mut payload = None;
        for (field, wire, body) in fields(record)? {
            match (field, wire) {
                (1, 0) => key_index = varint_value(body),
                (2, 0) => hash_index = varint_value(body),
                (3, 2) => payload = Some(body.to_vec()),
                _ => {}
            }
        }
        let partition_key = keys.get(usize::try_from(key_index?).ok()?)?.clone();
        let explicit_hash_key = match hash_index {
            Some(index) => Some(hash_keys.get(usize::try_from(index).ok()?)?.clone()),
            None => None,
        };
        out.push(SubRecord {
            partition_key,
            explicit_hash_key,
            data: payload?,
        });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds a KPL aggregate of user records (what the producer library sends as one record).
pub fn aggregate(records: &[SubRecord]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut hashes: Vec<&str> = Vec::new();
    let mut message = Vec::new();
    let mut bodies = Vec::new();
    for record in records {
        let (key, hash, data) = (
            record.partition_key.as_str(),
            record.explicit_hash_key.as_deref(),
            &record.data,
        );
        let key_index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        let mut body = Vec::new();
        put_varint(&mut body, 1 << 3);
        put_varint(&mut body, key_index as u64);
        if let Some(hash) = hash {
            let hash_index = hashes.iter().position(|h| *h == hash).unwrap_or_else(|| {
                hashes.push(hash);
                hashes.len() - 1
            });
            put_varint(&mut body, 2 << 3);
            put_varint(&mut body, hash_index as u64);
        }
        put_bytes(&mut body, 3, data);
        bodies.push(body);
    }
    for key in &keys {
        put_bytes(&mut message, 1, key.as_bytes());
    }
    for hash in &hashes {
        put_bytes(&mut message, 2, hash.as_bytes());
    }
    for body in &bodies {
        put_bytes(&mut message, 3, body);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(Md5::digest(&message).as_slice());
    out
}

/// The 128-bit hash key of a user record: its explicit hash key, or the MD5 of its partition key.
pub fn hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> Option<u128> {
    match explicit_hash_key {
        Some(text) => text.parse().ok(),
        None => {
            let digest = Md5::digest(partition_key.as_bytes());
            let bytes: [u8; 16] = digest.as_slice().try_into().ok()?;
            Some(u128::from_be_bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(key: &str, hash: Option<&str>, data: &[u8]) -> SubRecord {
        SubRecord {
            partition_key: key.into(),
            explicit_hash_key: hash.map(str::to_owned),
            data: data.to_vec(),
        }
    }

    #[test]
    fn aggregates_split_into_user_records() {
        let data = aggregate(&[
            sub("a", None, b"one"),
            sub("b", Some("42"), b"two"),
            sub("a", None, b""),
        ]);
        let records = deaggregate(&data).expect("an aggregate");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].partition_key, "a");
        assert_eq!(records[1].explicit_hash_key.as_deref(), Some("42"));
        assert_eq!(records[1].data, b"two");
        assert_eq!(records[2].data, b"");
    }

    #[test]
    fn anything_else_is_a_plain_record() {
        assert_eq!(deaggregate(b"plain"), None);
        let mut corrupt = aggregate(&[sub("a", None, b"one")]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(deaggregate(&corrupt), None);
        let mut truncated = MAGIC.to_vec();
        truncated.extend_from_slice(&[0xFF; 20]);
        assert_eq!(deaggregate(&truncated), None);
    }

    #[test]
    fn hash_keys_follow_kinesis() {
        assert_eq!(hash_key("x", Some("7")), Some(7));
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
        assert_eq!(
            hash_key("a", None),
            Some(0x0cc175b9c0f1b6a831c399e269772661)
        );
    }
}
