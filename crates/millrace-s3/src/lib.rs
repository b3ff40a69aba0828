//! The embedded S3-compatible store of `millrace serve`: buckets are directories under
//! `<data-dir>/s3/`, objects files inside them, served over the S3 REST protocol so that
//! `aws s3 --endpoint-url …`, boto3 and delivery streams can use them without anything else
//! installed.
//!
//! The S3 protocol (request parsing, SigV4 with chunked payloads, XML replies) is `s3s`'s and
//! the file-system backend is `s3s-fs`'s; this crate adapts them to Millrace: secrets come from
//! the identity store through [`Secrets`], and with `--auth open` signatures are not checked
//! (as for every other service), so requests run anonymously.
//! **Invariant:** knows nothing of the other services; the server hands it whole requests.
#![deny(clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use s3s::service::{S3Service, S3ServiceBuilder};

/// Looks up the secret of an access key (the identity store's keys and sessions).
pub trait Secrets: Send + Sync + 'static {
    fn secret(&self, access_key_id: &str) -> Option<String>;
}

/// Decides whether a caller (by access key) may perform an IAM action (`s3:PutObject`) on a
/// resource (`arn:aws:s3:::bucket/key`): the identity store's policies under `--auth enforce`.
pub trait Access: Send + Sync + 'static {
    fn allowed(&self, access_key_id: &str, action: &str, resource: &str) -> bool;
}

/// The IAM action of an S3 operation (as the S3 authorization reference maps them).
fn iam_action(operation: &str) -> String {
    let action = match operation {
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListBuckets" => "ListAllMyBuckets",
        "HeadObject" => "GetObject",
        "UploadPart" | "CompleteMultipartUpload" | "CreateMultipartUpload" | "CopyObject" => {
            "PutObject"
        }
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "DeleteObjects" => "DeleteObject",
        other => other,
    };
    format!("s3:{action}")
}

struct Policies(Arc<dyn Access>);

#[async_trait::async_trait]
impl s3s::access::S3Access for Policies {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3s::s3_error!(AccessDenied));
        };
        let resource = match cx.s3_path() {
            s3s::path::S3Path::Root => "*".to_owned(),
            s3s::path::S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
            s3s::path::S3Path::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
        };
        let action = iam_action(cx.s3_op().name());
        if self.0.allowed(&credentials.access_key, &action, &resource) {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied))
        }
    }
}

struct Auth(Arc<dyn Secrets>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        match self.0.secret(access_key) {
            Some(secret) => Ok(s3s::auth::SecretKey::from(secret)),
            None => Err(s3s::s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// The store and its S3 front.
pub struct EmbeddedS3 {
    root: PathBuf,
    service: S3Service,
    /// `--auth open`: signatures are removed and the request runs anonymously.
    open: bool,
}

/// Query parameters of a presigned request.
const SIGNATURE_PARAMETERS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

impl EmbeddedS3 {
    /// Opens the store under `root` (created if missing). With `secrets`, requests must be
    /// signed with a known key; without, signatures are ignored. With `access`, every request is
    /// authorized by it.
    pub fn open(
        root: &Path,
        secrets: Option<Arc<dyn Secrets>>,
        access: Option<Arc<dyn Access>>,
    ) -> std::io::Result<EmbeddedS3> {
        std::fs::create_dir_all(root)?;
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|error| std::io::Error::other(format!("open the S3 store: {error:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        let open = secrets.is_none();
        if let Some(secrets) = secrets {
            builder.set_auth(Auth(secrets));
            if let Some(access) = access {
                builder.set_access(Policies(access));
            }
        }
        Ok(EmbeddedS3 {
            root: root.to_path_buf(),
            service: builder.build(),
            open,
        })
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serves one S3 request.
    pub async fn handle(
        &self,
        request: http::Request<Incoming>,
    ) -> http::Response<BoxBody<Bytes, Infallible>> {
        let (mut parts, body) = request.into_parts();
        if self.open {
            strip_signature(&mut parts);
        }
        let request = http::Request::from_parts(parts, s3s::Body::from(body));
        match self.service.call(request).await {
            Ok(response) => response.map(|body| Quiet(body).boxed()),
            Err(error) => {
                tracing::warn!(?error, "S3 request failed");
                http::Response::builder()
                    .status(500)
                    .body(
                        http_body_util::Full::new(Bytes::from_static(
                            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>",
                        ))
                        .boxed(),
                    )
                    .unwrap_or_else(|_| http::Response::new(http_body_util::Empty::new().boxed()))
            }
        }
    }
}

fn strip_signature(parts: &mut http::request::Parts) {
    parts.headers.remove(http::header::AUTHORIZATION);
    parts.headers.remove("x-amz-security-token");
    let Some(query) = parts.uri.query() else {
        return;
    };
    if !query.contains("X-Amz-") {
        return;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !SIGNATURE_PARAMETERS.contains(&name)
        })
        .collect();
    let path = parts.uri.path();
    let path_and_query = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut uri = http::uri::Parts::default();
    uri.scheme = parts.uri.scheme().cloned();
    uri.authority = parts.uri.authority().cloned();
    if let Ok(value) = path_and_query.parse() {
        uri.path_and_query = Some(value);
        if let Ok(rebuilt) = http::Uri::from_parts(uri) {
            parts.uri = rebuilt;
        }
    }
}

/// A response body whose read errors end it early (logged): the client sees a short body.
struct Quiet(s3s::Body);

impl Body for Quiet {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match Pin::new(&mut self.0).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(%error, "S3 response body failed");
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}
