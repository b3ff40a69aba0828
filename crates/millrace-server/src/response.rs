//! Building HTTP responses with the headers every AWS response carries.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::Response;
use tokio::sync::mpsc;

use crate::dispatch::Format;
use crate::error::ApiError;

/// Every response body: a complete buffer, or a stream of event-stream messages.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A body fed by a channel: each message becomes one data frame; the body ends when the
/// sending side is dropped. The channel's small capacity bounds a slow reader's memory.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(context)
            .map(|message| message.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A streamed `application/vnd.amazon.eventstream` reply (no Content-Length).
pub fn event_stream(request_id: &str, messages: mpsc::Receiver<Bytes>) -> Response<ResponseBody> {
    builder(request_id, 200)
        .header(
            http::header::CONTENT_TYPE,
            "application/vnd.amazon.eventstream",
        )
        .body(ChannelBody(messages).boxed())
        .expect("static headers are valid")
}

/// The JSON 1.1 content type.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Headers each reply's builder inserts by name (lower case, as HTTP/2 requires and
/// HTTP/1 clients accept; names are case-insensitive).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const EXTENDED_REQUEST_ID: HeaderName = HeaderName::from_static("x-amz-id-2");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static(
    "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date",
);

/// The `Date` header: formatted once a second per thread, not once per reply.
fn date_header() -> HeaderValue {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, HeaderValue)> =
            const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            *cached = (
                second,
                HeaderValue::from_str(&text).expect("an HTTP date is a valid header value"),
            );
        }
        cached.1.clone()
    })
}

fn builder(request_id: &str, status: u16) -> http::response::Builder {
    let mut extended_id = [0u8; 72];
    rand::Rng::fill(&mut rand::thread_rng(), &mut extended_id[..]);
    let mut builder = Response::builder().status(status);
    if let Some(headers) = builder.headers_mut() {
        headers.reserve(8);
        if let Ok(value) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID, value);
        }
        headers.insert(
            EXTENDED_REQUEST_ID,
            HeaderValue::from_str(&STANDARD.encode(extended_id)).expect("base64 is valid"),
        );
        headers.insert(http::header::DATE, date_header());
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
    }
    builder
}

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Json => JSON_CONTENT_TYPE,
        Format::Cbor => millrace_wire::cbor::CONTENT_TYPE,
    }
}

/// A successful reply; an empty body means the operation has no output. CBOR replies are
/// transcoded from the JSON document the handler produced.
pub fn ok(
    request_id: &str,
    operation: &str,
    body: Vec<u8>,
    format: Format,
) -> Response<ResponseBody> {
    let body = match format {
        Format::Json => body,
        Format::Cbor => match millrace_wire::cbor::response_to_cbor(operation, &body) {
            Ok(encoded) => encoded,
            Err(failure) => {
                tracing::error!(%failure, operation, "failed to encode a CBOR reply");
                return error(request_id, &ApiError::internal(), format);
            }
        },
    };
    builder(request_id, 200)
        .header(http::header::CONTENT_TYPE, content_type(format))
        .body(full(body))
        .expect("static headers are valid")
}

/// An error reply in the protocol's shape (`__type` and message, JSON or CBOR).
pub fn error(request_id: &str, error: &ApiError, format: Format) -> Response<ResponseBody> {
    let format = match &error.wire {
        Some(crate::error::ErrorWire::Fixed { content_type, body }) => {
            let mut response = builder(request_id, error.status);
            if let Some(content_type) = content_type {
                response = response.header(http::header::CONTENT_TYPE, *content_type);
            }
            return response
                .body(full(body.clone()))
                .expect("static headers are valid");
        }
        Some(crate::error::ErrorWire::Cbor) => Format::Cbor,
        None => format,
    };
    let json = error.body();
    let body = match format {
        Format::Json => json,
        Format::Cbor => {
            millrace_wire::cbor::error_to_cbor(&json).expect("error bodies are plain JSON objects")
        }
    };
    builder(request_id, error.status)
        .header(http::header::CONTENT_TYPE, content_type(format))
        .header("x-amzn-ErrorType", error.code)
        .body(full(body))
        .expect("static headers are valid")
}

/// A reply of a JSON service beside Kinesis.
pub fn json_service(
    request_id: &str,
    reply: crate::json_services::JsonReply,
) -> Response<ResponseBody> {
    let mut response =
        builder(request_id, reply.status).header(http::header::CONTENT_TYPE, reply.content_type);
    if let Some(error_type) = reply.error_type {
        response = response.header("x-amzn-ErrorType", error_type);
    }
    if let Some(query_error) = reply.query_error {
        response = response.header("x-amzn-query-error", query_error);
    }
    if reply.smithy_protocol {
        response = response.header("Smithy-Protocol", "rpc-v2-cbor");
    }
    response
        .body(full(reply.body))
        .expect("static headers are valid")
}

/// A restJson1 reply: status, the members bound to headers, and the body as built.
pub fn rest_json(
    request_id: &str,
    status: u16,
    content_type: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Response<ResponseBody> {
    let mut response = builder(request_id, status);
    if !body.is_empty() || status != 204 {
        response = response.header(http::header::CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        match http::HeaderValue::from_str(&value) {
            Ok(value) => response = response.header(name.as_str(), value),
            Err(_) => tracing::debug!(header = %name, "header value not sendable"),
        }
    }
    response.body(full(body)).expect("static headers are valid")
}

/// An awsQuery reply (IAM, STS): XML, success or `ErrorResponse`.
pub fn xml(request_id: &str, status: u16, body: Vec<u8>) -> Response<ResponseBody> {
    builder(request_id, status)
        .header(http::header::CONTENT_TYPE, millrace_wire::xml::CONTENT_TYPE)
        .body(full(body))
        .expect("static headers are valid")
}

/// The Prometheus text exposition (`GET /metrics`).
pub fn prometheus(request_id: &str, body: String) -> Response<ResponseBody> {
    builder(request_id, 200)
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(full(body))
        .expect("static headers are valid")
}

/// A console asset.
pub fn static_asset(
    request_id: &str,
    content_type: &'static str,
    body: &'static str,
) -> Response<ResponseBody> {
    builder(request_id, 200)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(full(Bytes::from_static(body.as_bytes())))
        .expect("static headers are valid")
}

/// The answer to a browser's CORS preflight: no `x-amz-id-2` and no Content-Type, and the
/// requested headers and method echoed back, as the service answers.
pub fn cors_preflight(request_id: &str, headers: &http::HeaderMap) -> Response<ResponseBody> {
    let mut response = Response::builder()
        .status(200)
        .header(REQUEST_ID, request_id)
        .header(http::header::DATE, date_header())
        .header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS)
        .header(http::header::ACCESS_CONTROL_MAX_AGE, "172800");
    if let Some(requested) = headers.get("access-control-request-headers") {
        response = response.header("Access-Control-Allow-Headers", requested.clone());
    }
    if let Some(requested) = headers.get("access-control-request-method") {
        response = response.header("Access-Control-Allow-Methods", requested.clone());
    }
    response
        .body(full(Bytes::new()))
        .expect("static headers are valid")
}
