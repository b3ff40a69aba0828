//! How a Kinesis record is laid out inside a log payload (format version 1).
//!
//! `version u8 = 1 | partition-key length u16 LE | partition key | data`.

const VERSION: u8 = 1;

/// Appends one encoded record to `buffer`.
pub fn encode_into(buffer: &mut Vec<u8>, partition_key: &str, data: &[u8]) {
    encode_header_into(buffer, partition_key);
    buffer.extend_from_slice(data);
}

/// Appends what comes before a record's data: the version and the partition key.
pub fn encode_header_into(buffer: &mut Vec<u8>, partition_key: &str) {
    buffer.push(VERSION);
    buffer.extend_from_slice(&(partition_key.len() as u16).to_le_bytes());
    buffer.extend_from_slice(partition_key.as_bytes());
}

/// The size the service counts for an encoded record: data plus partition key.
pub fn record_size(payload: &[u8]) -> usize {
    if crate::encryption::is_sealed(payload) {
        return crate::encryption::sealed_record_size(payload);
    }
    payload.len().saturating_sub(3)
}

/// Splits an encoded record into partition key and data; `None` if it is not version 1.
pub fn decode(payload: &[u8]) -> Option<(&str, &[u8])> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION || rest.len() < 2 {
        return None;
    }
    let key_length = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    if rest.len() < key_length {
        return None;
    }
    let (key, data) = rest.split_at(key_length);
    Some((std::str::from_utf8(key).ok()?, data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let mut buffer = Vec::new();
        super::encode_into(&mut buffer, "key", b"\x00\xffdata");
        super::encode_into(&mut buffer, "", b"");
        assert_eq!(
            super::decode(&buffer[..12]),
            Some(("key", &b"\x00\xffdata"[..]))
        );
        assert_eq!(super::decode(&buffer[12..]), Some(("", &b""[..])));
        assert_eq!(super::decode(&[2, 0, 0]), None);
        assert_eq!(super::decode(&[1, 5, 0, b'a']), None);
    }
}
