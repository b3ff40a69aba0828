//! Building HTTP responses with the headers every AWS response carries.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::error::ApiError;

/// The JSON 1.1 content type.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

fn builder(request_id: &str, status: u16) -> http::response::Builder {
    let extended_id: [u8; 72] = std::array::from_fn(|_| rand::random());
    Response::builder()
        .status(status)
        .header("x-amzn-RequestId", request_id)
        .header("x-amz-id-2", STANDARD.encode(extended_id))
        .header(http::header::DATE, httpdate::fmt_http_date(std::time::SystemTime::now()))
        .header("Access-Control-Allow-Origin", "*")
        .header(
            "Access-Control-Expose-Headers",
            "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date",
        )
}

/// A successful reply; an empty body means the operation has no output.
pub fn ok(request_id: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    builder(request_id, 200)
        .header(http::header::CONTENT_TYPE, JSON_CONTENT_TYPE)
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}

/// An error reply in the JSON protocol's shape.
pub fn error(request_id: &str, error: &ApiError) -> Response<Full<Bytes>> {
    builder(request_id, error.status)
        .header(http::header::CONTENT_TYPE, JSON_CONTENT_TYPE)
        .header("x-amzn-ErrorType", error.code)
        .body(Full::new(Bytes::from(error.body())))
        .expect("static headers are valid")
}

/// The answer to a browser's CORS preflight.
pub fn cors_preflight(request_id: &str) -> Response<Full<Bytes>> {
    builder(request_id, 200)
        .header(
            "Access-Control-Allow-Methods",
            "GET,POST,PUT,DELETE,OPTIONS",
        )
        .header("Access-Control-Allow-Headers", "*")
        .header("Access-Control-Max-Age", "172800")
        .body(Full::new(Bytes::new()))
        .expect("static headers are valid")
}
