//! Authentication-header checks and the request's region from the SigV4 credential scope.
//!
//! Signatures are parsed but not yet verified against configured credentials.

use http::HeaderMap;

use crate::error::ApiError;

/// What the authentication information tells the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Caller {
    /// The region of the credential scope, when the request carries one.
    pub region: Option<String>,
}

fn query_parameters(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn region_of_credential(credential: &str) -> Option<String> {
    // AKID/20261122/us-east-1/kinesis/aws4_request; query form is percent-encoded.
    let decoded = credential.replace("%2F", "/").replace("%2f", "/");
    let parts: Vec<&str> = decoded.split('/').collect();
    (parts.len() == 5 && !parts[2].is_empty()).then(|| parts[2].to_owned())
}

/// Checks that the request carries complete SigV4 information, as the service does before
/// looking at the body's members.
pub fn check(headers: &HeaderMap, query: Option<&str>) -> Result<Caller, ApiError> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let query = query.map(query_parameters).unwrap_or_default();
    let query_value = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let query_auth = query_value("X-Amz-Algorithm").is_some();
    match (authorization, query_auth) {
        (Some(_), true) => Err(ApiError::new(
            "InvalidSignatureException",
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (None, false) => Err(ApiError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )),
        (Some(header), false) => {
            let fields = header.strip_prefix("AWS4-HMAC-SHA256").unwrap_or(header);
            let field = |name: &str| {
                fields
                    .split(',')
                    .map(str::trim)
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
            if !headers.contains_key("x-amz-date") && !headers.contains_key(http::header::DATE) {
                missing.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
                );
            }
            if !missing.is_empty() {
                return Err(ApiError::new(
                    "IncompleteSignatureException",
                    format!("{missing}Authorization={header}"),
                ));
            }
            Ok(Caller {
                region: field("Credential").and_then(region_of_credential),
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
                if query_value(name).is_none() {
                    missing.push_str(&format!(
                        "AWS query-string parameters must include '{name}'. "
                    ));
                }
            }
            if !missing.is_empty() {
                return Err(ApiError::new(
                    "IncompleteSignatureException",
                    format!("{missing}Re-examine the query-string parameters."),
                ));
            }
            Ok(Caller {
                region: query_value("X-Amz-Credential").and_then(region_of_credential),
            })
        }
    }
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
        let caller = check(
            &headers(&[
                ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261122/eu-west-1/kinesis/aws4_request, SignedHeaders=host, Signature=abc"),
                ("x-amz-date", "20261122T000000Z"),
            ]),
            None,
        )
        .expect("complete");
        assert_eq!(caller.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn missing_and_incomplete_authentication() {
        assert_eq!(
            check(&headers(&[]), None).map_err(|e| e.code),
            Err("MissingAuthenticationTokenException")
        );
        let error = check(
            &headers(&[("authorization", "AWS4-HMAC-SHA256 Signature=abc")]),
            None,
        )
        .expect_err("incomplete");
        assert_eq!(error.code, "IncompleteSignatureException");
        assert_eq!(
            error.message.as_deref(),
            Some("Authorization header requires 'Credential' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Signature=abc")
        );
    }
}
