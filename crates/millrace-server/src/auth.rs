//! Authentication: the SigV4 information a request carries, its verification against known
//! credentials, and the errors AWS gives, in the shape of each protocol.
//!
//! Three modes: `open` checks only that the signature information is complete (any credentials
//! are accepted; a known key still names its identity); `verify` and `enforce` verify the
//! signature against the identity store (`enforce` then authorizes, see `authz.rs`).

use std::sync::Arc;

use http::HeaderMap;
use millrace_iam::{Caller, Iam};

use crate::error::ApiError;
use crate::sigv4::{self, RequestParts, Signed, SigningKeyCache, MAX_SKEW_SECS};

/// How requests are authenticated and authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Any credentials; the signature's shape is still checked.
    Open,
    /// Signatures verified; every verified caller may do everything.
    Verify,
    /// Signatures verified, then requests authorized by policies.
    Enforce,
}

impl AuthMode {
    pub fn parse(text: &str) -> Option<AuthMode> {
        match text {
            "open" => Some(AuthMode::Open),
            "verify" => Some(AuthMode::Verify),
            "enforce" => Some(AuthMode::Enforce),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Verify => "verify",
            AuthMode::Enforce => "enforce",
        }
    }
}

/// Why authentication failed; rendered per protocol by [`AuthFailure::json`] and
/// [`AuthFailure::query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Incomplete(String),
    /// Signature-related failures with AWS's message (mismatch, expired, not yet current, scope).
    Signature(String),
    UnknownKey,
    ExpiredToken,
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you \
     provided. Check your AWS Secret Access Key and signing method. Consult the service \
     documentation for details.";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
const EXPIRED_TOKEN: &str = "The security token included in the request is expired";

impl AuthFailure {
    /// The error of the JSON and CBOR protocols (Kinesis and the other awsJson services).
    pub fn json(&self) -> ApiError {
        match self {
            AuthFailure::Missing => ApiError::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            AuthFailure::Incomplete(m) => ApiError::new("IncompleteSignatureException", m.clone()),
            AuthFailure::Signature(m) => ApiError::new("InvalidSignatureException", m.clone()),
            AuthFailure::UnknownKey => ApiError::new("UnrecognizedClientException", INVALID_TOKEN),
            AuthFailure::ExpiredToken => ApiError::new("ExpiredTokenException", EXPIRED_TOKEN),
        }
    }

    /// Code, status and message for the awsQuery services (IAM, STS).
    pub fn query(&self) -> (&'static str, u16, String) {
        match self {
            AuthFailure::Missing => (
                "MissingAuthenticationToken",
                403,
                "Request is missing Authentication Token".into(),
            ),
            AuthFailure::Incomplete(m) => ("IncompleteSignature", 400, m.clone()),
            AuthFailure::Signature(m) => ("SignatureDoesNotMatch", 403, m.clone()),
            AuthFailure::UnknownKey => ("InvalidClientTokenId", 403, INVALID_TOKEN.into()),
            AuthFailure::ExpiredToken => ("ExpiredToken", 403, EXPIRED_TOKEN.into()),
        }
    }
}

fn query_parameters(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn decoded(text: &str) -> String {
    String::from_utf8_lossy(&sigv4::percent_decode(text)).into_owned()
}

/// Splits `AKID/20261122/us-east-1/kinesis/aws4_request`.
fn credential_parts(credential: &str) -> Option<(String, String, String, String)> {
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" {
        return None;
    }
    Some((
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    ))
}

/// A credential without a valid scope: kept whole, so open mode can still answer and the
/// verifying modes report it.
fn unscoped(credential: &str) -> (String, String, String, String) {
    (
        credential.to_owned(),
        String::new(),
        String::new(),
        String::new(),
    )
}

/// Reads the request's SigV4 information, as the service does before looking at the body.
pub fn parse(headers: &HeaderMap, query: Option<&str>) -> Result<Signed, AuthFailure> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let query = query.map(query_parameters).unwrap_or_default();
    let query_value = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let query_auth = query_value("X-Amz-Algorithm").is_some();
    let token_header = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (authorization, query_auth) {
        (Some(_), true) => Err(AuthFailure::Signature(
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
                .into(),
        )),
        (None, false) => Err(AuthFailure::Missing),
        (Some(header), false) => {
            // The algorithm, then `Name=value` parameters separated by any run of commas and
            // white space.
            let mut tokens = header
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .peekable();
            if tokens.peek().is_some_and(|t| !t.contains('=')) {
                tokens.next();
            }
            let parameters: Vec<&str> = tokens.collect();
            let field = |name: &str| {
                parameters
                    .iter()
                    .find_map(|part| part.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            };
            let mut missing = String::new();
            for name in ["Credential", "Signature", "SignedHeaders"] {
                if field(name).is_none() {
                    missing.push_str(&format!(
                        "Authorization header requires '{name}' parameter. "
                    ));
                }
            }
            let date = headers
                .get("x-amz-date")
                .or_else(|| headers.get(http::header::DATE))
                .and_then(|v| v.to_str().ok());
            if date.is_none() {
                missing.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
                );
            }
            if !missing.is_empty() {
                return Err(AuthFailure::Incomplete(format!(
                    "{missing}Authorization={header}"
                )));
            }
            let credential = field("Credential").unwrap_or("");
            let (access_key_id, scope_date, region, service) =
                credential_parts(credential).unwrap_or_else(|| unscoped(credential));
            let date = date.unwrap_or("");
            let amz_date = if sigv4::parse_amz_date(date).is_some() {
                date.to_owned()
            } else {
                // A `Date` header in HTTP format.
                httpdate::parse_http_date(date)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| sigv4::format_amz_date(d.as_secs() as i64))
                    .ok_or_else(|| {
                        AuthFailure::Incomplete(format!(
                            "Date must be in ISO-8601 'basic format'. Got '{date}'. See \
                             http://en.wikipedia.org/wiki/ISO_8601"
                        ))
                    })?
            };
            Ok(Signed {
                access_key_id,
                scope_date,
                region,
                service,
                amz_date,
                signed_headers: field("SignedHeaders")
                    .unwrap_or("")
                    .split(';')
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect(),
                signature: field("Signature").unwrap_or("").to_owned(),
                session_token: token_header,
                expires_secs: None,
                presigned: false,
            })
        }
        (None, true) => {
            let mut missing = String::new();
            for name in [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Signature",
                "X-Amz-SignedHeaders",
                "X-Amz-Date",
            ] {
                // A parameter without a value counts as missing.
                if query_value(name).is_none_or(str::is_empty) {
                    missing.push_str(&format!(
                        "AWS query-string parameters must include '{name}'. "
                    ));
                }
            }
            if !missing.is_empty() {
                return Err(AuthFailure::Incomplete(format!(
                    "{missing}Re-examine the query-string parameters."
                )));
            }
            let credential = decoded(query_value("X-Amz-Credential").unwrap_or(""));
            let (access_key_id, scope_date, region, service) =
                credential_parts(&credential).unwrap_or_else(|| unscoped(&credential));
            Ok(Signed {
                access_key_id,
                scope_date,
                region,
                service,
                amz_date: decoded(query_value("X-Amz-Date").unwrap_or("")),
                signed_headers: decoded(query_value("X-Amz-SignedHeaders").unwrap_or(""))
                    .split(';')
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect(),
                signature: decoded(query_value("X-Amz-Signature").unwrap_or("")),
                session_token: query_value("X-Amz-Security-Token")
                    .map(decoded)
                    .or(token_header),
                expires_secs: query_value("X-Amz-Expires").and_then(|v| decoded(v).parse().ok()),
                presigned: true,
            })
        }
    }
}

/// The region of the request's credential scope, when it carries complete SigV4 information.
pub fn region_of(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    parse(headers, query)
        .ok()
        .map(|s| s.region)
        .filter(|r| !r.is_empty())
}

/// Verifies requests against the identity store, caching signing keys.
pub struct Authenticator {
    pub mode: AuthMode,
    pub iam: Arc<Iam>,
    keys: SigningKeyCache,
}

/// The request as the authenticator sees it.
pub struct Incoming<'a> {
    pub parts: &'a http::request::Parts,
    pub body: &'a [u8],
    /// The signing name the addressed service expects (`kinesis`, `iam`, `sts`).
    pub service: &'static str,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Authenticator {
    pub fn new(mode: AuthMode, iam: Arc<Iam>) -> Authenticator {
        Authenticator {
            mode,
            iam,
            keys: SigningKeyCache::default(),
        }
    }

    /// Authenticates a request whose SigV4 information `parse` has read; returns the caller.
    pub fn authenticate(
        &self,
        signed: &Signed,
        request: &Incoming<'_>,
    ) -> Result<Arc<Caller>, AuthFailure> {
        let known = self.iam.credential(&signed.access_key_id);
        if self.mode == AuthMode::Open {
            // Any credentials: a known long-term key still names its identity.
            return Ok(match known {
                Some(credential) if credential.session_token.is_none() => credential.caller.clone(),
                Some(credential)
                    if credential.session_token.as_deref() == signed.session_token.as_deref() =>
                {
                    credential.caller.clone()
                }
                _ => Arc::new(Caller::root(self.iam.default_account())),
            });
        }
        if signed.scope_date.is_empty() {
            return Err(AuthFailure::Incomplete(format!(
                "Credential should be scoped to a valid region. Credential={}",
                signed.access_key_id
            )));
        }
        if signed.service != request.service {
            return Err(AuthFailure::Signature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                request.service
            )));
        }
        let now = now_secs();
        let signed_at = sigv4::parse_amz_date(&signed.amz_date).ok_or_else(|| {
            AuthFailure::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601",
                signed.amz_date
            ))
        })?;
        if signed.presigned {
            let expires = signed.expires_secs.unwrap_or(0) as i64;
            if now > signed_at + expires {
                return Err(AuthFailure::Signature(format!(
                    "Signature expired: {} is now earlier than {} ({} - {} sec.)",
                    signed.amz_date,
                    sigv4::format_amz_date(now - expires),
                    sigv4::format_amz_date(now),
                    expires
                )));
            }
        } else if signed_at < now - MAX_SKEW_SECS {
            return Err(AuthFailure::Signature(format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                signed.amz_date,
                sigv4::format_amz_date(now - MAX_SKEW_SECS),
                sigv4::format_amz_date(now)
            )));
        }
        if signed_at > now + MAX_SKEW_SECS {
            return Err(AuthFailure::Signature(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                signed.amz_date,
                sigv4::format_amz_date(now + MAX_SKEW_SECS),
                sigv4::format_amz_date(now)
            )));
        }
        let credential = known.ok_or(AuthFailure::UnknownKey)?;
        match (&credential.session_token, &signed.session_token) {
            (None, None) => {}
            (Some(expected), Some(given)) => {
                if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                    return Err(AuthFailure::UnknownKey);
                }
            }
            _ => return Err(AuthFailure::UnknownKey),
        }
        if !credential.active {
            return Err(AuthFailure::UnknownKey);
        }
        if let Some(expires) = credential.expires_ms {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            if now_ms >= expires {
                return Err(AuthFailure::ExpiredToken);
            }
        }
        let key = self
            .keys
            .get(signed, &credential.secret, self.iam.generation());
        let host = request.parts.uri.authority().map(|a| a.as_str());
        let parts = RequestParts {
            method: request.parts.method.as_str(),
            path: request.parts.uri.path(),
            query: request.parts.uri.query(),
            headers: &request.parts.headers,
            host,
        };
        let declared = request
            .parts
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok());
        let payload = match declared {
            Some("UNSIGNED-PAYLOAD") => "UNSIGNED-PAYLOAD".to_owned(),
            _ => sigv4::payload_hash(request.body),
        };
        if let Some(declared) = declared {
            if declared != "UNSIGNED-PAYLOAD" && !declared.eq_ignore_ascii_case(&payload) {
                return Err(AuthFailure::Signature(
                    "The provided 'x-amz-content-sha256' header does not match what was computed."
                        .into(),
                ));
            }
        }
        let matches = |payload: &str| {
            let hash = sigv4::canonical_request_hash(signed, &parts, payload);
            sigv4::signature_matches(
                &key,
                &sigv4::string_to_sign(signed, &hash),
                &signed.signature,
            )
        };
        if matches(&payload) {
            return Ok(credential.caller.clone());
        }
        // A presigned URL carries the operation's parameters in its signed query string (the
        // SDKs move them there and sign an empty or unsigned payload). Its JSON body is then
        // accepted only when every member repeats a signed query parameter.
        if signed.presigned
            && (matches(sigv4::EMPTY_PAYLOAD_HASH) || matches("UNSIGNED-PAYLOAD"))
            && body_repeats_query(request.body, request.parts.uri.query())
        {
            return Ok(credential.caller.clone());
        }
        Err(AuthFailure::Signature(MISMATCH.into()))
    }
}

/// Whether each top-level member of a JSON body equals the query parameter of its name.
fn body_repeats_query(body: &[u8], query: Option<&str>) -> bool {
    if body.is_empty() {
        return true;
    }
    let Ok(serde_json::Value::Object(members)) = serde_json::from_slice(body) else {
        return false;
    };
    let parameters: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decoded(k), decoded(v)))
        .collect();
    members.iter().all(|(name, value)| {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return false,
        };
        parameters.iter().any(|(k, v)| k == name && *v == text)
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn region_comes_from_the_credential_scope() {
        let signed = parse(
            &headers(&[
                ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261122/eu-west-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc"),
                ("x-amz-date", "20261122T000000Z"),
            ]),
            None,
        )
        .expect("complete");
        assert_eq!(signed.region, "eu-west-1");
        assert_eq!(signed.service, "kinesis");
        assert_eq!(signed.access_key_id, "AKID");
    }

    #[test]
    fn missing_and_incomplete_authentication() {
        assert_eq!(parse(&headers(&[]), None), Err(AuthFailure::Missing));
        let error = parse(
            &headers(&[("authorization", "AWS4-HMAC-SHA256 Signature=abc")]),
            None,
        )
        .expect_err("incomplete");
        assert_eq!(
            error,
            AuthFailure::Incomplete("Authorization header requires 'Credential' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Signature=abc".into())
        );
        assert_eq!(error.json().code, "IncompleteSignatureException");
    }

    #[test]
    fn parameters_are_separated_by_any_run_of_commas_and_spaces() {
        let error = parse(
            &headers(&[("authorization", "AWS4- Signature=b Credential=a")]),
            None,
        )
        .expect_err("incomplete");
        assert_eq!(
            error,
            AuthFailure::Incomplete("Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4- Signature=b Credential=a".into())
        );
        let empty = parse(&headers(&[]), Some("X-Amz-Algorithm")).expect_err("incomplete");
        let AuthFailure::Incomplete(message) = empty else {
            panic!("incomplete expected");
        };
        assert!(message.starts_with("AWS query-string parameters must include 'X-Amz-Algorithm'."));
    }

    #[test]
    fn presigned_query_is_read() {
        let signed = parse(
            &headers(&[]),
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261201%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20261201T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=ff"),
        )
        .expect("complete");
        assert!(signed.presigned);
        assert_eq!(signed.expires_secs, Some(300));
        assert_eq!(signed.scope(), "20261201/us-east-1/kinesis/aws4_request");
    }
}
