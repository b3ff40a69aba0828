//! The self-describing ciphertext blob that Encrypt and GenerateDataKey return.
//!
//! `'M' | format 1 | key id (16 bytes, the UUID) | key version u32 BE | nonce | ciphertext | tag`.
//! The header and the canonical encryption context are the authenticated data, so a blob names
//! the key that opens it (Decrypt needs no KeyId) and cannot be moved to another context.

use crate::crypto::TAG_LEN;

const MAGIC: u8 = b'M';
const FORMAT: u8 = 1;
/// Bytes before the sealed part.
pub const HEADER_LEN: usize = 2 + 16 + 4;

/// A parsed blob; `header` and `sealed` borrow from the input.
pub struct Blob<'a> {
    pub key_id: String,
    pub version: u32,
    pub header: &'a [u8],
    pub sealed: &'a [u8],
}

/// The header of a blob sealed by `key_id` (a UUID) at `version`.
pub fn header(key_id: &str, version: u32) -> Option<Vec<u8>> {
    let uuid = uuid::Uuid::parse_str(key_id).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.push(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(uuid.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    Some(out)
}

pub fn parse(bytes: &[u8]) -> Option<Blob<'_>> {
    if bytes.len() < HEADER_LEN + 12 + TAG_LEN || bytes[0] != MAGIC || bytes[1] != FORMAT {
        return None;
    }
    let uuid = uuid::Uuid::from_slice(&bytes[2..18]).ok()?;
    let version = u32::from_be_bytes(bytes[18..22].try_into().ok()?);
    Some(Blob {
        key_id: uuid.hyphenated().to_string(),
        version,
        header: &bytes[..HEADER_LEN],
        sealed: &bytes[HEADER_LEN..],
    })
}

/// The authenticated data: the header, then each context pair (sorted by key) length-prefixed.
pub fn aad(header: &[u8], context: &[(String, String)]) -> Vec<u8> {
    let mut pairs: Vec<&(String, String)> = context.iter().collect();
    pairs.sort();
    let mut out = header.to_vec();
    for (key, value) in pairs {
        for part in [key, value] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn headers_round_trip_and_context_order_does_not_matter() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let header = super::header(id, 3).expect("uuid");
        let mut bytes = header.clone();
        bytes.extend_from_slice(&[0u8; 28]);
        let blob = super::parse(&bytes).expect("parse");
        assert_eq!((blob.key_id.as_str(), blob.version), (id, 3));
        let a = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        let b = vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ];
        assert_eq!(super::aad(&header, &a), super::aad(&header, &b));
        assert!(super::parse(&bytes[..30]).is_none());
    }
}
