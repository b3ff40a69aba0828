//! The AWS event-stream message framing used by SubscribeToShard responses.
//!
//! A message is `total length u32 | headers length u32 | prelude CRC32 | headers | payload |
//! message CRC32`, all big-endian; both CRCs are IEEE CRC-32, the second covering everything
//! before it. Headers are `name length u8 | name | type u8 | value`; only string values
//! (type 7: `u16` length and UTF-8) are needed here.

/// Encodes one message with string-valued headers.
pub fn encode_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers_length: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    let total = 12 + headers_length + payload.len() + 4;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_be_bytes());
    message.extend_from_slice(&(headers_length as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&message[..8]);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        message.push(name.len() as u8);
        message.extend_from_slice(name.as_bytes());
        message.push(7);
        message.extend_from_slice(&(value.len() as u16).to_be_bytes());
        message.extend_from_slice(value.as_bytes());
    }
    message.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&message);
    message.extend_from_slice(&message_crc.to_be_bytes());
    message
}

/// An event message (`:message-type` = `event`).
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

/// A modelled exception message (`:message-type` = `exception`).
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_checksums() {
        let message = event("initial-response", "application/json", b"{}");
        let total = u32::from_be_bytes(message[0..4].try_into().expect("4 bytes")) as usize;
        let headers = u32::from_be_bytes(message[4..8].try_into().expect("4 bytes")) as usize;
        assert_eq!(total, message.len());
        assert_eq!(
            u32::from_be_bytes(message[8..12].try_into().expect("4 bytes")),
            crc32fast::hash(&message[..8])
        );
        assert_eq!(&message[12 + headers..total - 4], b"{}");
        assert_eq!(
            u32::from_be_bytes(message[total - 4..].try_into().expect("4 bytes")),
            crc32fast::hash(&message[..total - 4])
        );
        // The first header: name length, name, type 7, value length, value.
        assert_eq!(message[12], 13);
        assert_eq!(&message[13..26], b":message-type");
        assert_eq!(message[26], 7);
        assert_eq!(&message[27..29], &[0, 5]);
        assert_eq!(&message[29..34], b"event");
    }

    #[test]
    fn empty_message_is_sixteen_bytes() {
        let message = encode_message(&[], b"");
        assert_eq!(message.len(), 16);
        // The CRC-32 of the empty prelude of an empty message, computed independently.
        assert_eq!(&message[0..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&message[8..12], &0x05c2_48ebu32.to_be_bytes());
    }
}
