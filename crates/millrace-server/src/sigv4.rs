//! SigV4 verification: the canonical request rebuilt from the request as received, the string
//! to sign, the cached signing key and a constant-time comparison of the signature.
//!
//! Header authentication (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…`) and presigned query strings (`X-Amz-Algorithm`, `X-Amz-Credential`, …,
//! `X-Amz-Signature`) are both read into one [`Signed`] value. The canonical URI encodes the
//! path as received once more (AWS's rule for every service but S3), the canonical query
//! string sorts the decoded-then-encoded parameters, and the payload hash is the body's SHA-256
//! unless the request says `UNSIGNED-PAYLOAD`.

use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The longest a signature's date may be off the server's clock, either way.
pub const MAX_SKEW_SECS: i64 = 5 * 60;

/// What a request's SigV4 information says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    /// `yyyymmdd` of the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    /// `yyyymmddThhmmssZ` from `X-Amz-Date` (or the query).
    pub amz_date: String,
    /// Lower-case signed header names, as listed.
    pub signed_headers: Vec<String>,
    /// The signature, hex.
    pub signature: String,
    pub session_token: Option<String>,
    /// Presigned requests: `X-Amz-Expires` in seconds.
    pub expires_secs: Option<u64>,
    pub presigned: bool,
}

impl Signed {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.scope_date, self.region, self.service
        )
    }
}

/// SigV4's URI encoding: unreserved characters stay, everything else becomes `%XX`.
fn encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Percent-decoding of a query component (`+` stays a plus, as SigV4 signers send `%20`).
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn canonical_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if path.is_empty() {
        return "/".into();
    }
    encode_into(&mut out, path.as_bytes(), true);
    out
}

fn canonical_query(query: Option<&str>, presigned: bool) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .filter(|(k, _)| !(presigned && *k == "X-Amz-Signature"))
        .map(|(k, v)| {
            let mut key = String::new();
            encode_into(&mut key, &percent_decode(k), false);
            let mut value = String::new();
            encode_into(&mut value, &percent_decode(v), false);
            (key, value)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A header value as SigV4 canonicalizes it: trimmed, inner runs of spaces collapsed.
fn canonical_value(out: &mut String, value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    let mut previous_space = false;
    for c in text.trim().chars() {
        if c == ' ' || c == '\t' {
            if !previous_space {
                out.push(' ');
            }
            previous_space = true;
        } else {
            out.push(c);
            previous_space = false;
        }
    }
}

/// The request pieces the signature covers.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// `Host` for HTTP/1.1, the `:authority` for HTTP/2.
    pub host: Option<&'a str>,
}

/// The hex SHA-256 of the canonical request.
pub fn canonical_request_hash(
    signed: &Signed,
    request: &RequestParts<'_>,
    payload_hash: &str,
) -> String {
    let mut canonical = String::with_capacity(512);
    canonical.push_str(request.method);
    canonical.push('\n');
    canonical.push_str(&canonical_uri(request.path));
    canonical.push('\n');
    canonical.push_str(&canonical_query(request.query, signed.presigned));
    canonical.push('\n');
    for name in &signed.signed_headers {
        canonical.push_str(name);
        canonical.push(':');
        if name == "host" {
            if let Some(host) = request
                .headers
                .get(http::header::HOST)
                .map(|v| v.as_bytes())
            {
                canonical_value(&mut canonical, host);
            } else if let Some(host) = request.host {
                canonical_value(&mut canonical, host.as_bytes());
            }
        } else {
            let mut first = true;
            for value in request.headers.get_all(name.as_str()) {
                if !first {
                    canonical.push(',');
                }
                first = false;
                canonical_value(&mut canonical, value.as_bytes());
            }
        }
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed.signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(payload_hash);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// `AWS4-HMAC-SHA256\n<date>\n<scope>\n<hash>`.
pub fn string_to_sign(signed: &Signed, canonical_hash: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        signed.amz_date,
        signed.scope(),
        canonical_hash
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a secret for one scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Whether `signature_hex` is the HMAC of `string_to_sign` under `key`, compared in constant time.
pub fn signature_matches(key: &[u8; 32], string_to_sign: &str, signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// Signing keys by access key, scope and identity generation: deriving one costs four HMACs,
/// so it is done once a day per key and scope. A change to any identity bumps the generation,
/// which leaves stale keys unused. A server sees few keys at once, so the entries are scanned
/// with borrowed comparisons (no allocation on a hit); the list is cleared when it grows large.
#[derive(Default)]
pub struct SigningKeyCache {
    keys: RwLock<Vec<CachedKey>>,
}

struct CachedKey {
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    generation: u64,
    key: [u8; 32],
}

const CACHE_LIMIT: usize = 256;

impl SigningKeyCache {
    pub fn get(&self, signed: &Signed, secret: &str, generation: u64) -> [u8; 32] {
        let matches = |k: &CachedKey| {
            k.generation == generation
                && k.access_key_id == signed.access_key_id
                && k.scope_date == signed.scope_date
                && k.region == signed.region
                && k.service == signed.service
        };
        if let Some(found) = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|k| matches(k))
        {
            return found.key;
        }
        let derived = signing_key(secret, &signed.scope_date, &signed.region, &signed.service);
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.retain(|k| k.generation == generation);
        if keys.len() >= CACHE_LIMIT {
            keys.clear();
        }
        keys.push(CachedKey {
            access_key_id: signed.access_key_id.clone(),
            scope_date: signed.scope_date.clone(),
            region: signed.region.clone(),
            service: signed.service.clone(),
            generation,
            key: derived,
        });
        derived
    }
}

/// Seconds since the Unix epoch of `yyyymmddThhmmssZ`.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&b[range]).ok()?.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + s)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyymmddThhmmssZ` of Unix seconds.
pub fn format_amz_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `yyyy-mm-ddThh:mm:ssZ` of Unix seconds (audit records, `aws:CurrentTime`).
pub fn iso8601(secs: i64) -> String {
    let c = format_amz_date(secs);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &c[0..4],
        &c[4..6],
        &c[6..8],
        &c[9..11],
        &c[11..13],
        &c[13..15]
    )
}

/// The hex SHA-256 of an empty body.
pub const EMPTY_PAYLOAD_HASH: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The hex SHA-256 of a body.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let secs = parse_amz_date("20261201T082000Z").expect("date");
        assert_eq!(format_amz_date(secs), "20261201T082000Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    /// AWS's published `get-vanilla` example of the SigV4 test suite.
    #[test]
    fn aws_get_vanilla_example() {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().expect("header"));
        headers.insert("x-amz-date", "20150830T123600Z".parse().expect("header"));
        let signed = Signed {
            access_key_id: "AKIDEXAMPLE".into(),
            scope_date: "20150830".into(),
            region: "us-east-1".into(),
            service: "service".into(),
            amz_date: "20150830T123600Z".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
            session_token: None,
            expires_secs: None,
            presigned: false,
        };
        let request = RequestParts {
            method: "GET",
            path: "/",
            query: None,
            headers: &headers,
            host: None,
        };
        let hash = canonical_request_hash(&signed, &request, &payload_hash(b""));
        let to_sign = string_to_sign(&signed, &hash);
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "service",
        );
        assert!(signature_matches(&key, &to_sign, &signed.signature));
        assert!(!signature_matches(&key, &to_sign, &"0".repeat(64)));
        assert!(!signature_matches(&key, &to_sign, "not hex"));
    }

    #[test]
    fn query_is_sorted_and_reencoded() {
        assert_eq!(
            canonical_query(Some("b=2&a=x%20y&X-Amz-Signature=abc"), true),
            "a=x%20y&b=2"
        );
        assert_eq!(canonical_uri("/a b/%3A"), "/a%20b/%253A");
    }
}
