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
pub(crate) fn is_s3(parts: &http::request::Parts) -> bool {
    crate::auth::parse(&parts.headers, parts.uri.query())
        .map(|signed| signed.service == "s3")
        .unwrap_or(false)
}

/// A request as the store receives it.
pub type S3Request = http::Request<Incoming>;
/// A reply as the store gives it.
pub type S3Reply = http::Response<ResponseBody>;
