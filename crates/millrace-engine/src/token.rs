//! Opaque, authenticated tokens: shard iterators and pagination tokens.
//!
//! A token is `base64(prefix | kind | fields | HMAC-SHA256(key, everything before)[..16])`.
//! The 8-byte prefix `00 00 00 00 00 00 00 01` gives tokens the familiar look of the
//! service's own. Tampering with any byte makes the MAC check fail.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];
const MAC_LENGTH: usize = 16;
const ITERATOR_KIND: u8 = 1;
/// The shortest a decoded shard iterator is.
const ITERATOR_MIN_BYTES: usize = 152;
const LIST_SHARDS_KIND: u8 = 2;
const LIST_STREAMS_KIND: u8 = 3;

/// The state a shard iterator carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorState {
    pub incarnation: u64,
    pub shard_index: u32,
    pub position: u64,
    pub issued_ms: u64,
    pub stream_name: String,
}

/// The state a ListShards pagination token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListShardsState {
    pub issued_ms: u64,
    pub incarnation: u64,
    /// Shards with an index above this one come next.
    pub after_index: u32,
    /// Index of the filter in `listing::ShardFilterType::ALL`, plus its timestamp.
    pub filter: u8,
    pub filter_timestamp_ms: u64,
    pub region: String,
    pub stream_name: String,
}

/// The state a ListStreams pagination token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListStreamsState {
    pub issued_ms: u64,
    pub after_name: String,
}

/// Signs and checks tokens with one secret key.
pub struct TokenSigner {
    key: [u8; 32],
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Option<&[u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, tail) = self.0.split_at(count);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let length = usize::from(u16::from_be_bytes(self.take(2)?.try_into().ok()?));
        String::from_utf8(self.take(length)?.to_vec()).ok()
    }
}

fn put_string(buffer: &mut Vec<u8>, value: &str) {
    buffer.extend_from_slice(&(value.len() as u16).to_be_bytes());
    buffer.extend_from_slice(value.as_bytes());
}

impl TokenSigner {
    pub fn new(key: [u8; 32]) -> TokenSigner {
        TokenSigner { key }
    }

    fn mac(&self, bytes: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key length");
        mac.update(bytes);
        mac
    }

    fn seal(&self, kind: u8, body: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(PREFIX.len() + 1 + body.len() + MAC_LENGTH);
        bytes.extend_from_slice(&PREFIX);
        bytes.push(kind);
        bytes.extend_from_slice(body);
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..MAC_LENGTH]);
        STANDARD.encode(bytes)
    }

    fn open(&self, kind: u8, token: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(token).ok()?;
        if bytes.len() < PREFIX.len() + 1 + MAC_LENGTH {
            return None;
        }
        let (signed, tag) = bytes.split_at(bytes.len() - MAC_LENGTH);
        self.mac(signed).verify_truncated_left(tag).ok()?;
        if signed[..PREFIX.len()] != PREFIX || signed[PREFIX.len()] != kind {
            return None;
        }
        Some(signed[PREFIX.len() + 1..].to_vec())
    }

    pub fn iterator(&self, state: &IteratorState) -> String {
        let mut body = Vec::with_capacity(32 + state.stream_name.len());
        body.extend_from_slice(&state.incarnation.to_be_bytes());
        body.extend_from_slice(&state.shard_index.to_be_bytes());
        body.extend_from_slice(&state.position.to_be_bytes());
        body.extend_from_slice(&state.issued_ms.to_be_bytes());
        put_string(&mut body, &state.stream_name);
        // The service's iterators decode to at least 152 bytes, longer in steps of 16; zero
        // padding after the fields (covered by the MAC, ignored by the reader) gives ours that shape.
        let sealed = PREFIX.len() + 1 + body.len() + MAC_LENGTH;
        let wanted = if sealed <= ITERATOR_MIN_BYTES {
            ITERATOR_MIN_BYTES
        } else {
            ITERATOR_MIN_BYTES + (sealed - ITERATOR_MIN_BYTES).div_ceil(16) * 16
        };
        body.resize(body.len() + (wanted - sealed), 0);
        self.seal(ITERATOR_KIND, &body)
    }

    pub fn open_iterator(&self, token: &str) -> Option<IteratorState> {
        let body = self.open(ITERATOR_KIND, token)?;
        let mut reader = Reader(&body);
        Some(IteratorState {
            incarnation: reader.u64()?,
            shard_index: reader.u32()?,
            position: reader.u64()?,
            issued_ms: reader.u64()?,
            stream_name: reader.string()?,
        })
    }

    pub fn list_shards(&self, state: &ListShardsState) -> String {
        let mut body = Vec::new();
        body.extend_from_slice(&state.issued_ms.to_be_bytes());
        body.extend_from_slice(&state.incarnation.to_be_bytes());
        body.extend_from_slice(&state.after_index.to_be_bytes());
        body.push(state.filter);
        body.extend_from_slice(&state.filter_timestamp_ms.to_be_bytes());
        put_string(&mut body, &state.region);
        put_string(&mut body, &state.stream_name);
        self.seal(LIST_SHARDS_KIND, &body)
    }

    pub fn open_list_shards(&self, token: &str) -> Option<ListShardsState> {
        let body = self.open(LIST_SHARDS_KIND, token)?;
        let mut reader = Reader(&body);
        Some(ListShardsState {
            issued_ms: reader.u64()?,
            incarnation: reader.u64()?,
            after_index: reader.u32()?,
            filter: reader.u8()?,
            filter_timestamp_ms: reader.u64()?,
            region: reader.string()?,
            stream_name: reader.string()?,
        })
    }

    pub fn list_streams(&self, state: &ListStreamsState) -> String {
        let mut body = Vec::new();
        body.extend_from_slice(&state.issued_ms.to_be_bytes());
        put_string(&mut body, &state.after_name);
        self.seal(LIST_STREAMS_KIND, &body)
    }

    pub fn open_list_streams(&self, token: &str) -> Option<ListStreamsState> {
        let body = self.open(LIST_STREAMS_KIND, token)?;
        let mut reader = Reader(&body);
        Some(ListStreamsState {
            issued_ms: reader.u64()?,
            after_name: reader.string()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_resist_tampering() {
        let signer = TokenSigner::new([7; 32]);
        let state = IteratorState {
            incarnation: 3,
            shard_index: 2,
            position: 99,
            issued_ms: 1_800_000_000_000,
            stream_name: "orders".into(),
        };
        let token = signer.iterator(&state);
        assert!(token.starts_with("AAAAAAAAAAE"));
        assert_eq!(STANDARD.decode(&token).expect("base64").len(), 152);
        let long = IteratorState {
            stream_name: "s".repeat(100),
            ..state.clone()
        };
        let decoded = STANDARD
            .decode(signer.iterator(&long))
            .expect("base64")
            .len();
        assert!(
            decoded > 152 && (decoded - 152).is_multiple_of(16),
            "{decoded}"
        );
        assert_eq!(signer.open_iterator(&signer.iterator(&long)), Some(long));
        assert_eq!(signer.open_iterator(&token), Some(state));
        let mut bytes = STANDARD.decode(&token).expect("base64");
        for index in 0..bytes.len() {
            bytes[index] ^= 1;
            assert_eq!(
                signer.open_iterator(&STANDARD.encode(&bytes)),
                None,
                "byte {index}"
            );
            bytes[index] ^= 1;
        }
        assert_eq!(TokenSigner::new([8; 32]).open_iterator(&token), None);
        assert_eq!(signer.open_list_streams(&token), None);
        assert_eq!(signer.open_iterator("not base64!"), None);
    }

    #[test]
    fn list_tokens_round_trip() {
        let signer = TokenSigner::new([1; 32]);
        let shards = ListShardsState {
            issued_ms: 5,
            incarnation: 9,
            after_index: 4,
            filter: 2,
            filter_timestamp_ms: 77,
            region: "eu-west-1".into(),
            stream_name: "s".into(),
        };
        assert_eq!(
            signer.open_list_shards(&signer.list_shards(&shards)),
            Some(shards)
        );
        let streams = ListStreamsState {
            issued_ms: 5,
            after_name: "b".into(),
        };
        assert_eq!(
            signer.open_list_streams(&signer.list_streams(&streams)),
            Some(streams)
        );
    }
}
