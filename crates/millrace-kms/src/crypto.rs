//! AES-256-GCM sealing with random nonces, and the operator's root key that wraps all key material.
//!
//! A sealed value is `nonce (12) | ciphertext | tag (16)`. Random 96-bit nonces are safe here:
//! the root key and each KMS key version seal few values (key material, KMS ciphertext blobs),
//! far below the 2^32 limit for random nonces under one key.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::KmsError;

/// Length of the GCM tag appended to every sealed value.
pub const TAG_LEN: usize = 16;

/// Fresh random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], KmsError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KmsError::Internal("the system random generator failed".into()))?;
    Ok(bytes)
}

/// A 256-bit AES-GCM key.
pub struct SealingKey {
    key: LessSafeKey,
}

impl SealingKey {
    pub fn new(material: &[u8; 32]) -> SealingKey {
        let unbound = UnboundKey::new(&AES_256_GCM, material).expect("32 bytes is an AES-256 key");
        SealingKey {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plaintext` bound to `aad`, with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| KmsError::Internal("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value sealed by [`SealingKey::seal`]; `None` if it was altered or `aad` differs.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = body.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

/// The operator's root key: wraps every KMS key's material before it is stored.
pub struct RootKey {
    sealing: SealingKey,
    fingerprint: String,
}

impl RootKey {
    /// Parses a root key: 32 bytes written as base64 (what `openssl rand -base64 32` prints) or as
    /// 64 hexadecimal digits; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<RootKey, KmsError> {
        use base64::Engine as _;
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| KmsError::RootKey("the master key is not valid hexadecimal".into()))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| KmsError::RootKey("the master key is not valid base64".into()))?
        };
        let material: [u8; 32] = bytes.try_into().map_err(|_| {
            KmsError::RootKey("the master key must be 32 bytes (openssl rand -base64 32)".into())
        })?;
        Ok(RootKey::from_bytes(&material))
    }

    pub fn from_bytes(material: &[u8; 32]) -> RootKey {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"millrace-kms-root-key-fingerprint\0".as_slice(), material].concat(),
        );
        let fingerprint = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        RootKey {
            sealing: SealingKey::new(material),
            fingerprint,
        }
    }

    /// A short public identifier of the key (a truncated hash), stored beside wrapped material
    /// so that a wrong root key is reported as such.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Wraps key material bound to `label` (the key ARN and version).
    pub fn wrap(&self, material: &[u8; 32], label: &str) -> Result<Vec<u8>, KmsError> {
        self.sealing.seal(material, label.as_bytes())
    }

    pub fn unwrap(&self, wrapped: &[u8], label: &str) -> Result<[u8; 32], KmsError> {
        let plain = self
            .sealing
            .open(wrapped, label.as_bytes())
            .ok_or_else(|| KmsError::RootKey(format!("key material of {label} does not open")))?;
        plain
            .try_into()
            .map_err(|_| KmsError::RootKey(format!("key material of {label} has a wrong length")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_label() {
        let key = SealingKey::new(&[7u8; 32]);
        let sealed = key.seal(b"secret", b"ctx").expect("seal");
        assert_eq!(key.open(&sealed, b"ctx").as_deref(), Some(&b"secret"[..]));
        assert_eq!(key.open(&sealed, b"other"), None);
        let mut flipped = sealed.clone();
        flipped[14] ^= 1;
        assert_eq!(key.open(&flipped, b"ctx"), None);
        assert_eq!(SealingKey::new(&[8u8; 32]).open(&sealed, b"ctx"), None);
    }

    #[test]
    fn root_keys_parse_from_base64_or_hex() {
        let hex = "00".repeat(32);
        let a = RootKey::parse(&hex).expect("hex");
        let b = RootKey::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").expect("base64");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(RootKey::parse("c2hvcnQ=").is_err());
        let wrapped = a.wrap(&[1u8; 32], "k/1").expect("wrap");
        assert_eq!(b.unwrap(&wrapped, "k/1").expect("unwrap"), [1u8; 32]);
        assert!(b.unwrap(&wrapped, "k/2").is_err());
    }
}
