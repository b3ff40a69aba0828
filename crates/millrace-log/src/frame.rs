//! Record frames: the byte layout of one record inside a segment file.
//!
//! A frame is a fixed 24-byte header followed by the payload:
//!
//! | offset | size | field                                          |
//! | ------ | ---- | ---------------------------------------------- |
//! | 0      | 4    | CRC32C of bytes 4..24 of the header + payload  |
//! | 4      | 4    | payload length                                 |
//! | 8      | 8    | timestamp in milliseconds                      |
//! | 16     | 8    | position of the record                         |
//! | 24     | len  | payload                                        |
//!
//! All integers are little-endian.

use crate::byte_reader::ByteReader;

/// Size of a frame header in bytes.
pub(crate) const FRAME_HEADER_LEN: usize = 24;

/// Largest payload one frame can hold.
pub(crate) const MAX_PAYLOAD_LEN: u64 = u32::MAX as u64;

/// The decoded header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) crc: u32,
    pub(crate) payload_len: u32,
    pub(crate) timestamp_ms: u64,
    pub(crate) position: u64,
}

impl FrameHeader {
    /// Decodes a header from the first [`FRAME_HEADER_LEN`] bytes of `bytes`.
    /// Returns `None` when fewer bytes are given; performs no validation.
    pub(crate) fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let mut reader = ByteReader::new(bytes);
        Some(FrameHeader {
            crc: reader.u32()?,
            payload_len: reader.u32()?,
            timestamp_ms: reader.u64()?,
            position: reader.u64()?,
        })
    }

    /// Total size of the frame (header and payload) in bytes.
    pub(crate) fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    /// Whether the stored checksum matches the header fields and `payload`.
    pub(crate) fn checksum_matches(&self, payload: &[u8]) -> bool {
        self.crc == checksum(self.payload_len, self.timestamp_ms, self.position, payload)
    }
}

/// Size in bytes of the frame holding a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> u64 {
    FRAME_HEADER_LEN as u64 + payload_len as u64
}

/// Appends one encoded frame to `out`.
///
/// The caller has checked that the payload is at most [`MAX_PAYLOAD_LEN`] bytes.
pub(crate) fn encode_frame(out: &mut Vec<u8>, position: u64, timestamp_ms: u64, payload: &[u8]) {
    let payload_len =
        u32::try_from(payload.len()).expect("payload length was checked against MAX_PAYLOAD_LEN");
    let crc = checksum(payload_len, timestamp_ms, position, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    out.extend_from_slice(&position.to_le_bytes());
    out.extend_from_slice(payload);
}

fn checksum(payload_len: u32, timestamp_ms: u64, position: u64, payload: &[u8]) -> u32 {
    let mut covered = [0u8; FRAME_HEADER_LEN - 4];
    covered[0..4].copy_from_slice(&payload_len.to_le_bytes());
    covered[4..12].copy_from_slice(&timestamp_ms.to_le_bytes());
    covered[12..20].copy_from_slice(&position.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&covered), payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(position: u64, timestamp_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, position, timestamp_ms, payload);
        out
    }

    fn check_round_trip(position: u64, timestamp_ms: u64, payload: &[u8]) {
        let bytes = encoded(position, timestamp_ms, payload);
        assert_eq!(bytes.len() as u64, frame_len(payload.len()));
        let header = FrameHeader::parse(&bytes).expect("a full header was encoded");
        assert_eq!(header.payload_len as usize, payload.len());
        assert_eq!(header.timestamp_ms, timestamp_ms);
        assert_eq!(header.position, position);
        assert_eq!(header.frame_len(), bytes.len() as u64);
        assert_eq!(&bytes[FRAME_HEADER_LEN..], payload);
        assert!(header.checksum_matches(payload));
    }

    #[test]
    fn frames_round_trip() {
        check_round_trip(0, 0, b"");
        check_round_trip(7, 1_700_000_000_000, b"hello");
        check_round_trip(u64::MAX, u64::MAX, &[0xff; 1000]);
    }

    #[test]
    fn header_layout_is_little_endian() {
        let bytes = encoded(0x0102, 0x0304, b"ab");
        assert_eq!(&bytes[4..8], &[2, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[4, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[2, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encoded(42, 1234, b"payload bytes");
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let header = FrameHeader::parse(&damaged).expect("a full header is present");
            let payload_ok = header.payload_len as usize == damaged.len() - FRAME_HEADER_LEN
                && header.checksum_matches(&damaged[FRAME_HEADER_LEN..]);
            assert!(!payload_ok, "bit {bit} flipped without detection");
        }
    }

    #[test]
    fn short_header_is_rejected() {
        let bytes = encoded(1, 2, b"x");
        for len in 0..FRAME_HEADER_LEN {
            assert_eq!(FrameHeader::parse(&bytes[..len]), None);
        }
    }

    #[test]
    fn zeroed_header_does_not_checksum() {
        let header = FrameHeader::parse(&[0u8; FRAME_HEADER_LEN]).expect("full header");
        assert!(!header.checksum_matches(&[]));
    }
}
