//! The SigV4 core shared by the server (which verifies) and the clients (which sign): URI and
//! query canonicalization, the canonical request, the string to sign, the signing key, the
//! signature, and SigV4's compact dates. Pure: the caller supplies the clock and the headers.
//!
//! Header values are looked up through a closure so that the server can read `http::HeaderMap`
//! and a client a plain list, without this crate knowing either.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The hex SHA-256 of an empty body.
pub const EMPTY_PAYLOAD_HASH: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The hex SHA-256 of a body.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// SigV4's URI encoding: unreserved characters stay, everything else becomes `%XX`.
pub fn encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
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

/// The canonical URI: the path as given, encoded once more (every service but S3).
pub fn canonical_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    if path.is_empty() {
        return "/".into();
    }
    encode_into(&mut out, path.as_bytes(), true);
    out
}

/// The canonical query string: decoded, re-encoded, sorted; a presigned request's own
/// `X-Amz-Signature` is left out.
pub fn canonical_query(query: Option<&str>, presigned: bool) -> String {
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
pub fn canonical_value(out: &mut String, value: &[u8]) {
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

/// The request pieces a signature covers, with the headers behind a lookup.
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub presigned: bool,
    /// Lower-case names, in the order of `SignedHeaders`.
    pub signed_headers: &'a [String],
    pub payload_hash: &'a str,
}

/// The hex SHA-256 of the canonical request. `header_values(name, out)` appends the values of a
/// signed header to `out`, each canonicalized, joined by commas.
pub fn canonical_request_hash(
    input: &CanonicalInput<'_>,
    mut header_values: impl FnMut(&str, &mut String),
) -> String {
    let mut canonical = String::with_capacity(512);
    canonical.push_str(input.method);
    canonical.push('\n');
    canonical.push_str(&canonical_uri(input.path));
    canonical.push('\n');
    canonical.push_str(&canonical_query(input.query, input.presigned));
    canonical.push('\n');
    for name in input.signed_headers {
        canonical.push_str(name);
        canonical.push(':');
        header_values(name, &mut canonical);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&input.signed_headers.join(";"));
    canonical.push('\n');
    canonical.push_str(input.payload_hash);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// `<date>/<region>/<service>/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hash>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_hash: &str) -> String {
    format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{canonical_hash}")
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

/// The hex signature of a string to sign.
pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
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
    Some(crate::timestamp::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// `yyyymmddThhmmssZ` of Unix seconds.
pub fn format_amz_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::timestamp::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Credentials a client signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A request as a client is about to send it.
#[derive(Clone, Copy)]
pub struct RequestToSign<'a> {
    pub method: &'a str,
    /// The path, already URI-encoded once.
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Signs a request with header authentication. `headers` are the (lower-case name, value) pairs
/// the request will carry, which must include `host`; the function adds `x-amz-date` (and
/// `x-amz-security-token` with a session token) and returns the headers to add, the
/// `authorization` header last.
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    unix_secs: i64,
    request: &RequestToSign<'_>,
) -> Vec<(String, String)> {
    let RequestToSign {
        method,
        path,
        headers,
        body,
    } = *request;
    let amz_date = format_amz_date(unix_secs);
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let mut added = vec![("x-amz-date".to_owned(), amz_date.clone())];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    all.extend(added.iter().cloned());
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut names: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
    names.dedup();
    let hash = payload_hash(body);
    let input = CanonicalInput {
        method,
        path,
        query: None,
        presigned: false,
        signed_headers: &names,
        payload_hash: &hash,
    };
    let canonical = canonical_request_hash(&input, |name, out| {
        let mut first = true;
        for (_, value) in all.iter().filter(|(k, _)| k == name) {
            if !first {
                out.push(',');
            }
            first = false;
            canonical_value(out, value.as_bytes());
        }
    });
    let date = &amz_date[..8];
    let scope = scope(date, region, service);
    let key = signing_key(&credentials.secret_access_key, date, region, service);
    let signature = signature(&key, &string_to_sign(&amz_date, &scope, &canonical));
    added.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            credentials.access_key_id,
            names.join(";")
        ),
    ));
    added
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

    /// AWS's published `get-vanilla` example of the SigV4 test suite, signed and verified.
    #[test]
    fn aws_get_vanilla_example() {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let added = sign_request(
            &credentials,
            "us-east-1",
            "service",
            1_440_938_160,
            &RequestToSign {
                method: "GET",
                path: "/",
                headers: &[("Host".into(), "example.amazonaws.com".into())],
                body: b"",
            },
        );
        let authorization = &added.last().expect("authorization").1;
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let key = signing_key(
            &credentials.secret_access_key,
            "20150830",
            "us-east-1",
            "service",
        );
        assert!(!signature_matches(&key, "x", &"0".repeat(64)));
        assert!(!signature_matches(&key, "x", "not hex"));
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
