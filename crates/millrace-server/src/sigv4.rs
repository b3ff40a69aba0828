//! SigV4 verification (the canonicalization and signing core is `millrace_wire::sigv4`, shared with
//! the clients): the canonical request rebuilt from the request as received, the string
//! to sign, the cached signing key and a constant-time comparison of the signature.
//!
//! Header authentication (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…`) and presigned query strings (`X-Amz-Algorithm`, `X-Amz-Credential`, …,
//! `X-Amz-Signature`) are both read into one [`Signed`] value. The canonical URI encodes the
//! path as received once more (AWS's rule for every service but S3), the canonical query
//! string sorts the decoded-then-encoded parameters, and the payload hash is the body's SHA-256
//! unless the request says `UNSIGNED-PAYLOAD`.

use std::sync::RwLock;

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

use millrace_wire::sigv4::{canonical_value, CanonicalInput};
pub use millrace_wire::sigv4::{
    format_amz_date, parse_amz_date, payload_hash, percent_decode, signature_matches, signing_key,
    EMPTY_PAYLOAD_HASH,
};

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
    let input = CanonicalInput {
        method: request.method,
        path: request.path,
        query: request.query,
        presigned: signed.presigned,
        signed_headers: &signed.signed_headers,
        payload_hash,
    };
    millrace_wire::sigv4::canonical_request_hash(&input, |name, out| {
        if name == "host" {
            if let Some(host) = request
                .headers
                .get(http::header::HOST)
                .map(|v| v.as_bytes())
            {
                canonical_value(out, host);
            } else if let Some(host) = request.host {
                canonical_value(out, host.as_bytes());
            }
        } else {
            let mut first = true;
            for value in request.headers.get_all(name) {
                if !first {
                    out.push(',');
                }
                first = false;
                canonical_value(out, value.as_bytes());
            }
        }
    })
}

/// `AWS4-HMAC-SHA256\n<date>\n<scope>\n<hash>`.
pub fn string_to_sign(signed: &Signed, canonical_hash: &str) -> String {
    millrace_wire::sigv4::string_to_sign(&signed.amz_date, &signed.scope(), canonical_hash)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
