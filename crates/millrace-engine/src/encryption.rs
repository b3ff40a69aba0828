//! Envelope encryption of records at rest (StartStreamEncryption).
//!
//! A record of an encrypted stream is stored as format version 2:
//! `2 | blob length u16 LE | data-key blob | nonce (12) | AES-256-GCM(version-1 record) | tag (16)`.
//! The version-1 record inside holds the partition key and the data, so neither reaches the
//! disk in the clear. The data key comes from the stream's KMS key (`GenerateDataKey` with the
//! stream ARN as encryption context); only its KMS blob is stored, and readers get the
//! plaintext key back from KMS, which checks the key's state. The stream ARN is the
//! authenticated data of every record, so a record cannot be moved to another stream.
//!
//! Nonces never repeat: each data key is generated fresh in this process and used with a
//! 4-byte random salt and a 64-bit counter; the key is replaced after `MAX_USES` records or
//! `MAX_AGE`, whichever comes first.
//!
//! **Invariant:** the engine never holds a KMS key, only data keys, and never writes a data key's
//! plaintext anywhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::error::Error;
use crate::record_codec;

/// Records sealed with one data key before it is replaced.
pub const MAX_USES: u64 = 1 << 24;
/// How long one data key is used for writing (Kinesis reuses data keys for about five minutes).
pub const MAX_AGE: Duration = Duration::from_secs(300);
const VERSION: u8 = 2;
const TAG_LEN: usize = 16;

/// Why a KMS key cannot be used, as the Kinesis errors name it (each carries its message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyFailure {
    Disabled(String),
    InvalidState(String),
    NotFound(String),
    AccessDenied(String),
    Throttling(String),
    Internal(String),
}

impl From<KeyFailure> for Error {
    fn from(failure: KeyFailure) -> Error {
        match failure {
            KeyFailure::Disabled(m) => Error::KmsDisabled(m),
            KeyFailure::InvalidState(m) => Error::KmsInvalidState(m),
            KeyFailure::NotFound(m) => Error::KmsNotFound(m),
            KeyFailure::AccessDenied(m) => Error::KmsAccessDenied(m),
            KeyFailure::Throttling(m) => Error::KmsThrottling(m),
            KeyFailure::Internal(m) => Error::Internal(m),
        }
    }
}

/// The KMS as the engine sees it (implemented by the server over `millrace-kms`).
pub trait RecordKeys: Send + Sync {
    /// Resolves `key_id` (any KeyId form) in the account and region and checks that it can be
    /// used now; returns the key's ARN.
    fn check(&self, account: &str, region: &str, key_id: &str) -> Result<String, KeyFailure>;
    /// A fresh 256-bit data key bound to the stream: its plaintext and its KMS blob.
    fn generate_data_key(
        &self,
        account: &str,
        region: &str,
        key_id: &str,
        stream_arn: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), KeyFailure>;
    /// The plaintext of a data key blob written for `stream_arn` (checks the key's state).
    fn decrypt_data_key(
        &self,
        account: &str,
        region: &str,
        blob: &[u8],
        stream_arn: &str,
    ) -> Result<Vec<u8>, KeyFailure>;
}

/// A shared [`RecordKeys`], so that `EngineConfig` stays `Clone` and `Debug`.
#[derive(Clone)]
pub struct KeyProvider(pub Arc<dyn RecordKeys>);

impl std::fmt::Debug for KeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyProvider")
    }
}

/// The data key a stream currently writes with.
pub(crate) struct WriteKey {
    key_id: String,
    key_arn: String,
    aead: LessSafeKey,
    blob: Vec<u8>,
    salt: [u8; 4],
    counter: AtomicU64,
    created: Instant,
}

impl WriteKey {
    /// Bytes a sealed record adds to its version-1 encoding.
    pub(crate) fn overhead(&self) -> usize {
        1 + 2 + self.blob.len() + NONCE_LEN + TAG_LEN
    }

    /// Appends one sealed record to `buffer`.
    pub(crate) fn seal_into(
        &self,
        buffer: &mut Vec<u8>,
        partition_key: &str,
        data: &[u8],
        stream_arn: &str,
    ) {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(&count.to_be_bytes());
        buffer.push(VERSION);
        buffer.extend_from_slice(&(self.blob.len() as u16).to_le_bytes());
        buffer.extend_from_slice(&self.blob);
        buffer.extend_from_slice(&nonce);
        let start = buffer.len();
        record_codec::encode_into(buffer, partition_key, data);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(stream_arn.as_bytes()),
                &mut buffer[start..],
            )
            .expect("a record is far below the AES-GCM input limit");
        buffer.extend_from_slice(tag.as_ref());
    }
}

/// The parts of a sealed (version 2) payload.
struct Sealed<'a> {
    blob: &'a [u8],
    nonce: [u8; NONCE_LEN],
    body: &'a [u8],
}

fn parse_sealed(payload: &[u8]) -> Option<Sealed<'_>> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION || rest.len() < 2 {
        return None;
    }
    let blob_len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    if rest.len() < blob_len + NONCE_LEN + TAG_LEN {
        return None;
    }
    let (blob, rest) = rest.split_at(blob_len);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    Some(Sealed {
        blob,
        nonce: nonce.try_into().ok()?,
        body,
    })
}

/// Whether a stored payload is a sealed record.
pub(crate) fn is_sealed(payload: &[u8]) -> bool {
    payload.first() == Some(&VERSION)
}

/// The size the service counts for a sealed payload (partition key plus data).
pub(crate) fn sealed_record_size(payload: &[u8]) -> usize {
    match parse_sealed(payload) {
        Some(sealed) => (sealed.body.len() - TAG_LEN).saturating_sub(3),
        None => 0,
    }
}

fn aead_key(material: &[u8]) -> Result<LessSafeKey, Error> {
    let unbound = UnboundKey::new(&AES_256_GCM, material)
        .map_err(|_| Error::Internal("data key is not 256 bits".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Data keys for writing (one per stream incarnation) and opening of sealed records.
#[derive(Default)]
pub(crate) struct Sealer {
    keys: Option<Arc<dyn RecordKeys>>,
    writing: Mutex<HashMap<u64, Arc<WriteKey>>>,
}

impl Sealer {
    pub(crate) fn new(keys: Option<Arc<dyn RecordKeys>>) -> Sealer {
        Sealer {
            keys,
            writing: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self) -> Result<&Arc<dyn RecordKeys>, Error> {
        self.keys.as_ref().ok_or_else(|| {
            Error::KmsNotFound("KMS is not available: the server has no master key.".into())
        })
    }

    /// Checks that `key_id` can be used (StartStreamEncryption); returns its ARN.
    pub(crate) fn check(&self, account: &str, region: &str, key_id: &str) -> Result<String, Error> {
        Ok(self.keys()?.check(account, region, key_id)?)
    }

    /// The data key to write an encrypted stream's records with, after checking its KMS key.
    pub(crate) fn write_key(
        &self,
        account: &str,
        region: &str,
        incarnation: u64,
        key_id: &str,
        stream_arn: &str,
    ) -> Result<Arc<WriteKey>, Error> {
        let keys = self.keys()?;
        let key_arn = keys.check(account, region, key_id)?;
        if let Some(current) = self.writing.lock().expect("sealer lock").get(&incarnation) {
            if current.key_id == key_id
                && current.key_arn == key_arn
                && current.counter.load(Ordering::Relaxed) < MAX_USES
                && current.created.elapsed() < MAX_AGE
            {
                return Ok(current.clone());
            }
        }
        let (plaintext, blob) = keys.generate_data_key(account, region, key_id, stream_arn)?;
        if blob.len() > usize::from(u16::MAX) {
            return Err(Error::Internal("data key blob too long".into()));
        }
        let key = Arc::new(WriteKey {
            key_id: key_id.to_owned(),
            key_arn,
            aead: aead_key(&plaintext)?,
            blob,
            salt: rand::random(),
            counter: AtomicU64::new(0),
            created: Instant::now(),
        });
        self.writing
            .lock()
            .expect("sealer lock")
            .insert(incarnation, key.clone());
        Ok(key)
    }

    /// Forgets a stream's write key (encryption stopped or the stream deleted).
    pub(crate) fn forget(&self, incarnation: u64) {
        self.writing
            .lock()
            .expect("sealer lock")
            .remove(&incarnation);
    }

    /// Replaces every sealed payload by the version-1 record inside it; returns which payloads
    /// were sealed. A payload that does not authenticate is corruption, never data.
    pub(crate) fn open_all(
        &self,
        account: &str,
        region: &str,
        stream_arn: &str,
        payloads: &mut [&mut Vec<u8>],
    ) -> Result<Vec<bool>, Error> {
        let mut sealed_flags = Vec::with_capacity(payloads.len());
        let mut opened: Vec<(Vec<u8>, LessSafeKey)> = Vec::new();
        for payload in payloads.iter_mut() {
            if !is_sealed(payload) {
                sealed_flags.push(false);
                continue;
            }
            let sealed = parse_sealed(payload)
                .ok_or_else(|| Error::Internal("a sealed record is truncated".into()))?;
            let index = match opened.iter().position(|(blob, _)| blob == sealed.blob) {
                Some(index) => index,
                None => {
                    let material =
                        self.keys()?
                            .decrypt_data_key(account, region, sealed.blob, stream_arn)?;
                    opened.push((sealed.blob.to_vec(), aead_key(&material)?));
                    opened.len() - 1
                }
            };
            let nonce = sealed.nonce;
            let body_start = payload.len() - sealed.body.len();
            let plain_len = opened[index]
                .1
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(stream_arn.as_bytes()),
                    &mut payload[body_start..],
                )
                .map_err(|_| {
                    Error::Internal(format!(
                        "a record of {stream_arn} does not authenticate (corrupt or altered)"
                    ))
                })?
                .len();
            // The plaintext (the version-1 record) replaces the whole payload, in place.
            payload.copy_within(body_start..body_start + plain_len, 0);
            payload.truncate(plain_len);
            sealed_flags.push(true);
        }
        Ok(sealed_flags)
    }
}

/// The same envelope for the logs of services beside the engine (Firehose's delivery streams):
/// each payload is sealed as a record with an empty partition key and opened back to its data.
pub struct PayloadSealer(Sealer);

impl PayloadSealer {
    pub fn new(keys: Arc<dyn RecordKeys>) -> PayloadSealer {
        PayloadSealer(Sealer::new(Some(keys)))
    }

    /// Seals each of `data` for `arn` with a data key of the KMS key `key_id` (checked first);
    /// `writer` names the slot the data key is kept in (one per log).
    pub fn seal(
        &self,
        account: &str,
        region: &str,
        writer: u64,
        key_id: &str,
        arn: &str,
        data: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let key = self.0.write_key(account, region, writer, key_id, arn)?;
        Ok(data
            .iter()
            .map(|data| {
                let mut sealed = Vec::with_capacity(data.len() + 3 + key.overhead());
                key.seal_into(&mut sealed, "", data, arn);
                sealed
            })
            .collect())
    }

    /// Replaces each sealed payload by its data (every payload must be one [`Self::seal`]
    /// wrote for `arn`); a payload that does not authenticate is an error, never data.
    pub fn open(
        &self,
        account: &str,
        region: &str,
        arn: &str,
        payloads: &mut [&mut Vec<u8>],
    ) -> Result<(), Error> {
        let sealed = self.0.open_all(account, region, arn, payloads)?;
        if sealed.contains(&false) {
            return Err(Error::Internal("a payload to open is not sealed".into()));
        }
        for payload in payloads.iter_mut() {
            let data = record_codec::decode(payload)
                .map(|(_, data)| data.to_vec())
                .ok_or_else(|| Error::Internal("an opened payload is malformed".into()))?;
            **payload = data;
        }
        Ok(())
    }

    /// Forgets a writer's data key (encryption stopped or the log deleted).
    pub fn forget(&self, writer: u64) {
        self.0.forget(writer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedKeys;

    impl RecordKeys for FixedKeys {
        fn check(&self, _: &str, _: &str, key_id: &str) -> Result<String, KeyFailure> {
            match key_id {
                "off" => Err(KeyFailure::Disabled("off is disabled.".into())),
                _ => Ok(format!("arn:{key_id}")),
            }
        }
        fn generate_data_key(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<(Vec<u8>, Vec<u8>), KeyFailure> {
            Ok((vec![3u8; 32], b"blob-1".to_vec()))
        }
        fn decrypt_data_key(
            &self,
            _: &str,
            _: &str,
            blob: &[u8],
            _: &str,
        ) -> Result<Vec<u8>, KeyFailure> {
            assert_eq!(blob, b"blob-1");
            Ok(vec![3u8; 32])
        }
    }

    #[test]
    fn sealed_records_hide_their_bytes_and_open_only_unaltered_in_their_stream() {
        let sealer = Sealer::new(Some(Arc::new(FixedKeys)));
        let key = sealer.write_key("a", "r", 1, "k", "arn:s").expect("key");
        let mut buffer = Vec::new();
        key.seal_into(&mut buffer, "pk-marker", b"data-marker", "arn:s");
        let first = buffer.len();
        assert_eq!(first, 3 + 9 + 11 + key.overhead());
        key.seal_into(&mut buffer, "pk-marker", b"data-marker", "arn:s");
        assert!(!buffer.windows(6).any(|w| w == b"marker"));
        assert_ne!(buffer[..first], buffer[first..], "nonces differ");
        assert_eq!(sealed_record_size(&buffer[..first]), 20);
        let mut one = buffer[..first].to_vec();
        let mut two = buffer[first..].to_vec();
        let flags = sealer
            .open_all("a", "r", "arn:s", &mut [&mut one, &mut two])
            .expect("open");
        assert_eq!(flags, vec![true, true]);
        assert_eq!(
            record_codec::decode(&one),
            Some(("pk-marker", &b"data-marker"[..]))
        );
        let mut other_stream = buffer[..first].to_vec();
        assert!(sealer
            .open_all("a", "r", "arn:t", &mut [&mut other_stream])
            .is_err());
        for byte in [9usize, 21, 30, first - 1] {
            let mut flipped = buffer[..first].to_vec();
            flipped[byte] ^= 1;
            assert!(sealer
                .open_all("a", "r", "arn:s", &mut [&mut flipped])
                .is_err());
        }
        let mut plain = Vec::new();
        record_codec::encode_into(&mut plain, "k", b"d");
        assert_eq!(
            sealer
                .open_all("a", "r", "arn:s", &mut [&mut plain])
                .expect("plain"),
            vec![false]
        );
    }

    #[test]
    fn payloads_of_other_logs_seal_and_open_back_to_their_data() {
        let sealer = PayloadSealer::new(Arc::new(FixedKeys));
        let mut sealed = sealer
            .seal("a", "r", 9, "k", "arn:f", &[b"first-marker", b""])
            .expect("seal");
        assert!(!sealed[0].windows(6).any(|w| w == b"marker"));
        let [one, two] = &mut sealed[..] else {
            panic!("two payloads")
        };
        sealer
            .open("a", "r", "arn:f", &mut [one, two])
            .expect("open");
        assert_eq!(sealed, vec![b"first-marker".to_vec(), Vec::new()]);
        let mut plain = b"not sealed".to_vec();
        assert!(sealer.open("a", "r", "arn:f", &mut [&mut plain]).is_err());
    }

    #[test]
    fn key_failures_stop_writes_and_keys_are_reused() {
        let sealer = Sealer::new(Some(Arc::new(FixedKeys)));
        assert!(matches!(
            sealer.write_key("a", "r", 1, "off", "arn:s"),
            Err(Error::KmsDisabled(_))
        ));
        let a = sealer.write_key("a", "r", 1, "k", "arn:s").expect("key");
        let b = sealer.write_key("a", "r", 1, "k", "arn:s").expect("key");
        assert!(Arc::ptr_eq(&a, &b));
        let c = sealer.write_key("a", "r", 1, "k2", "arn:s").expect("key");
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(matches!(
            Sealer::new(None).write_key("a", "r", 1, "k", "arn:s"),
            Err(Error::KmsNotFound(_))
        ));
    }
}
