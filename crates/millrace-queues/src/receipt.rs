//! Receipt handles: which delivery of which record they name, signed so that a handle cannot
//! be made up or moved to another record.
//!
//! Layout before base64url: version 1 | queue u32 | shard u32 | position u64 | serial u32 |
//! path u8 (0 normal, 1 dead-letter) | the first 16 bytes of HMAC-SHA256 over the rest, keyed
//! by the account's receipt key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const BODY: usize = 1 + 4 + 4 + 8 + 4 + 1;
const TAG: usize = 16;

/// What a receipt handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub queue: u32,
    pub shard: u32,
    pub position: u64,
    pub serial: u32,
    pub dead_letter: bool,
}

fn tag(key: &[u8; 32], body: &[u8]) -> [u8; TAG] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG];
    out.copy_from_slice(&full[..TAG]);
    out
}

impl Receipt {
    pub fn encode(&self, key: &[u8; 32]) -> String {
        let mut bytes = Vec::with_capacity(BODY + TAG);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.queue.to_be_bytes());
        bytes.extend_from_slice(&self.shard.to_be_bytes());
        bytes.extend_from_slice(&self.position.to_be_bytes());
        bytes.extend_from_slice(&self.serial.to_be_bytes());
        bytes.push(u8::from(self.dead_letter));
        let mac = tag(key, &bytes);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The receipt a handle names, if it is genuine.
    pub fn decode(handle: &str, key: &[u8; 32]) -> Option<Receipt> {
        let bytes = URL_SAFE_NO_PAD.decode(handle).ok()?;
        if bytes.len() != BODY + TAG || bytes[0] != VERSION {
            return None;
        }
        let (body, mac) = bytes.split_at(BODY);
        let expected = tag(key, body);
        // Constant-time comparison of the tag.
        let difference = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return None;
        }
        let u32_at = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("4"));
        Some(Receipt {
            queue: u32_at(1),
            shard: u32_at(5),
            position: u64::from_be_bytes(body[9..17].try_into().expect("8")),
            serial: u32_at(17),
            dead_letter: match body[21] {
                0 => false,
                1 => true,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_reject_tampering() {
        let key = [7u8; 32];
        let receipt = Receipt {
            queue: 3,
            shard: 1,
            position: 99,
            serial: 2,
            dead_letter: true,
        };
        let handle = receipt.encode(&key);
        assert_eq!(Receipt::decode(&handle, &key), Some(receipt));
        assert_eq!(Receipt::decode(&handle, &[8u8; 32]), None);
        let mut tampered = handle.into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(Receipt::decode(&tampered, &key), None);
        assert_eq!(Receipt::decode("not a handle", &key), None);
    }
}
