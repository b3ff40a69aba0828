//! The hook that hands S3 requests to the embedded S3-compatible store (`millrace-s3`, served
//! by `millrace serve` for delivery streams): a request whose SigV4 credential scope names the
//! service `s3` (header or presigned query) goes to the [`S3Front`] whole, before the body is
//! read, since S3 bodies are large and may be streamed in signed chunks. The store verifies the
//! signature itself, against the same identity store.

use std::future::Future;
use std::pin::Pin;

use hyper::body::Incoming;

use crate::response::ResponseBody;

/// The embedded store as the server sees it.
pub trait S3Front: Send + Sync {
    fn handle<'a>(
        &'a self,
        request: S3Request,
    ) -> Pin<Box<dyn Future<Output = S3Reply> + Send + 'a>>;
}

/// Whether a request is signed for S3.
///
/// Every request passes here first, so the signature is only parsed (authentication parses it
/// again later for the other services) when its scope can name `s3`: an `Authorization` header
/// holding `/s3/aws4_request`, or a presigned query.
pub(crate) fn is_s3(parts: &http::request::Parts) -> bool {
    let header_names_s3 = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| contains(v.as_bytes(), b"/s3/aws4_request"));
    let presigned = parts
        .uri
        .query()
        .is_some_and(|q| q.contains("X-Amz-Credential"));
    if !header_names_s3 && !presigned {
        return false;
    }
    crate::auth::parse(&parts.headers, parts.uri.query())
        .map(|signed| signed.service == "s3")
        .unwrap_or(false)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A request as the store receives it.
pub type S3Request = http::Request<Incoming>;
/// A reply as the store gives it.
pub type S3Reply = http::Response<ResponseBody>;
