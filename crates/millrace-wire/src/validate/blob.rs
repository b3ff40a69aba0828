//! Blob members in JSON: standard padded base64, checked the way Coral reports it.
//!
//! The checks run in Coral's order: length a multiple of 4, then the first character outside the
//! alphabet (a `=` followed by anything but `=` counts as one), then whether the last quantum
//! decodes canonically (padding of at most two and no stray bits in the last non-pad character).
//! Only the last quantum is decoded, so a 10 MiB record costs no allocation.

use base64::Engine as _;

/// The SerializationException message for `encoded`, or `None` when it is valid base64.
pub(super) fn base64_error(encoded: &str) -> Option<String> {
    if is_plainly_valid(encoded) {
        return None;
    }
    described_error(encoded)
}

/// The character-by-character check, which words Coral's message.
fn described_error(encoded: &str) -> Option<String> {
    let length = encoded.chars().count();
    if !length.is_multiple_of(4) {
        return Some(format!(
            "'{encoded}' can not be converted to a Blob: \
             Base64 encoded length is expected a multiple of 4 bytes but found: {length}"
        ));
    }
    let mut chars = encoded.chars().peekable();
    while let Some(c) = chars.next() {
        let misplaced_pad = c == '=' && chars.peek().is_some_and(|&next| next != '=');
        if !is_base64_alphabet(c) || misplaced_pad {
            return Some(format!(
                "'{encoded}' can not be converted to a Blob: Invalid Base64 character: '{c}'"
            ));
        }
    }
    if decode_last_quantum(encoded).is_none() {
        return Some(format!(
            "'{encoded}' can not be converted to a Blob: \
             Invalid last non-pad Base64 character dectected"
        ));
    }
    None
}

/// Number of bytes `encoded` decodes to. Meaningful only when [`base64_error`] accepted it.
pub(super) fn decoded_len(encoded: &str) -> usize {
    let quanta = encoded.len() / 4;
    match decode_last_quantum(encoded) {
        Some(last) => quanta.saturating_sub(1) * 3 + last,
        None => quanta * 3,
    }
}

/// The common case, checked a byte at a time: a multiple of 4 characters of the alphabet
/// followed by at most two pads, with a canonical last group. Anything else goes through the
/// character-by-character check that words the error.
fn is_plainly_valid(encoded: &str) -> bool {
    let bytes = encoded.as_bytes();
    let body = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="));
    let body = body.unwrap_or(bytes);
    bytes.len().is_multiple_of(4)
        && body
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        && decode_last_quantum(encoded).is_some()
}

fn is_base64_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
}

/// Bytes in the last 4-character group, or `None` if it does not decode canonically.
fn decode_last_quantum(encoded: &str) -> Option<usize> {
    if encoded.is_empty() {
        return Some(0);
    }
    let start = encoded.len().checked_sub(4)?;
    let last = encoded.get(start..)?;
    let mut buffer = [0u8; 3];
    base64::engine::general_purpose::STANDARD
        .decode_slice(last, &mut buffer)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_base64() {
        for valid in ["", "YQ==", "YWI=", "YWJj", "YWJjZA==", "+/+/", "AAAA"] {
            assert_eq!(base64_error(valid), None, "{valid}");
        }
    }

    #[test]
    fn decoded_lengths() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("YQ=="), 1);
        assert_eq!(decoded_len("YWI="), 2);
        assert_eq!(decoded_len("YWJj"), 3);
        assert_eq!(decoded_len("YWJjZA=="), 4);
    }

    #[test]
    fn coral_messages() {
        assert_eq!(
            base64_error("23456").as_deref(),
            Some(
                "'23456' can not be converted to a Blob: \
                 Base64 encoded length is expected a multiple of 4 bytes but found: 5"
            )
        );
        assert_eq!(
            base64_error("=+/=").as_deref(),
            Some("'=+/=' can not be converted to a Blob: Invalid Base64 character: '='")
        );
        assert_eq!(
            base64_error("ab!d").as_deref(),
            Some("'ab!d' can not be converted to a Blob: Invalid Base64 character: '!'")
        );
        assert_eq!(
            base64_error("+/+=").as_deref(),
            Some("'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected")
        );
        assert_eq!(
            base64_error("a===").as_deref(),
            Some("'a===' can not be converted to a Blob: Invalid last non-pad Base64 character dectected")
        );
        assert_eq!(
            base64_error("====").as_deref(),
            Some("'====' can not be converted to a Blob: Invalid last non-pad Base64 character dectected")
        );
    }

    #[test]
    fn the_byte_check_accepts_only_what_the_character_check_accepts() {
        let alphabet = ["A", "Q", "g", "+", "/", "=", "!", "é"];
        let mut texts = vec![String::new()];
        for _ in 0..4 {
            texts = texts
                .iter()
                .flat_map(|text| alphabet.iter().map(move |c| format!("{text}{c}")))
                .collect();
            for text in &texts {
                for candidate in [text.clone(), format!("QUJD{text}")] {
                    assert_eq!(
                        base64_error(&candidate),
                        described_error(&candidate),
                        "{candidate}"
                    );
                }
            }
        }
    }

    #[test]
    fn multibyte_characters_do_not_panic() {
        assert!(base64_error("ééé").is_some());
        assert!(base64_error("abcé").is_some());
        assert!(base64_error("abcdéééé").is_some());
    }
}
