//! Writing objects to an S3-compatible endpoint: requests signed by `rusty-s3` (presigned,
//! path-style URLs), sent by the shared hyper client.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use rusty_s3::actions::{CompleteMultipartUploadResponse, CreateMultipartUpload};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::http::{send, HttpClient};

/// Where objects go.
#[derive(Clone)]
pub struct S3Target {
    /// `http://host:port` (path-style requests).
    pub endpoint: url::Url,
    pub access_key_id: String,
    /// Never logged.
    pub secret_access_key: String,
    pub region: String,
    /// Whether a missing bucket is created on first use (the embedded store).
    pub create_buckets: bool,
}

impl std::fmt::Debug for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint.as_str())
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .field("create_buckets", &self.create_buckets)
            .finish_non_exhaustive()
    }
}

/// The bucket name of an S3 bucket ARN (`arn:aws:s3:::name`).
pub fn bucket_of_arn(arn: &str) -> &str {
    arn.rsplit(":::").next().unwrap_or(arn)
}

const SIGNATURE_LIFETIME: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_default()
}

/// The part size objects are uploaded in when they are larger than one part (S3 wants at least
/// 5 MiB for every part but the last).
pub const DEFAULT_PART_BYTES: usize = 16 << 20;

/// Writes one object: with one PutObject when it fits in `part_bytes`, otherwise with a
/// multipart upload of `part_bytes` parts (the last one shorter), aborted when a step fails.
pub async fn put_object_in_parts(
    client: &HttpClient,
    target: &S3Target,
    bucket_name: &str,
    key: &str,
    body: Bytes,
    content_encoding: Option<&str>,
    part_bytes: usize,
) -> Result<(), String> {
    let bucket = Bucket::new(
        target.endpoint.clone(),
        UrlStyle::Path,
        bucket_name.to_owned(),
        target.region.clone(),
    )
    .map_err(|error| format!("bucket {bucket_name}: {error}"))?;
    let credentials = Credentials::new(
        target.access_key_id.clone(),
        target.secret_access_key.clone(),
    );
    let part_bytes = part_bytes.max(1);
    let mut created = false;
    loop {
        let outcome = if body.len() > part_bytes {
            multipart(
                client,
                &bucket,
                &credentials,
                key,
                &body,
                content_encoding,
                part_bytes,
            )
            .await?
        } else {
            single(client, &bucket, &credentials, key, &body, content_encoding).await?
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err((status, code)) => {
                if code == "NoSuchBucket" && target.create_buckets && !created {
                    create_bucket(client, &bucket, &credentials).await?;
                    created = true;
                    continue;
                }
                let operation = if body.len() > part_bytes {
                    "CreateMultipartUpload"
                } else {
                    "PutObject"
                };
                return Err(format!(
                    "{operation} {bucket_name}/{key}: HTTP {status} {code}"
                ));
            }
        }
    }
}

/// A signed request to the store: `url` already carries the signature; the body's length and
/// the content encoding (when the signature covered one) are sent as headers.
fn signed(
    method: http::Method,
    url: &url::Url,
    content_encoding: Option<&str>,
    body: Bytes,
) -> Result<http::Request<Full<Bytes>>, String> {
    let mut request = http::Request::builder().method(method).uri(url.as_str());
    if let Some(encoding) = content_encoding {
        request = request.header("content-encoding", encoding);
    }
    request
        .header("content-length", body.len())
        .body(Full::new(body))
        .map_err(|error| format!("build request: {error}"))
}

/// The store's refusal of a first request: HTTP status and S3 error code.
type Refusal = (u16, String);

async fn single(
    client: &HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    key: &str,
    body: &Bytes,
    content_encoding: Option<&str>,
) -> Result<Result<(), Refusal>, String> {
    let mut action = bucket.put_object(Some(credentials), key);
    if let Some(encoding) = content_encoding {
        action.headers_mut().insert("content-encoding", encoding);
    }
    let url = action.sign(SIGNATURE_LIFETIME);
    let request = signed(http::Method::PUT, &url, content_encoding, body.clone())?;
    let reply = send(client, request, REQUEST_TIMEOUT).await?;
    if (200..300).contains(&reply.status) {
        return Ok(Ok(()));
    }
    Ok(Err((reply.status, error_code(&reply.body))))
}

/// CreateMultipartUpload, one UploadPart per `part_bytes` and CompleteMultipartUpload. A refused
/// CreateMultipartUpload is handed back (the caller may create the bucket); a failure after it
/// aborts the upload, so no parts are left behind.
async fn multipart(
    client: &HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    key: &str,
    body: &Bytes,
    content_encoding: Option<&str>,
    part_bytes: usize,
) -> Result<Result<(), Refusal>, String> {
    let mut action = bucket.create_multipart_upload(Some(credentials), key);
    if let Some(encoding) = content_encoding {
        action.headers_mut().insert("content-encoding", encoding);
    }
    let url = action.sign(SIGNATURE_LIFETIME);
    let request = signed(http::Method::POST, &url, content_encoding, Bytes::new())?;
    let reply = send(client, request, REQUEST_TIMEOUT).await?;
    if !(200..300).contains(&reply.status) {
        return Ok(Err((reply.status, error_code(&reply.body))));
    }
    let text = String::from_utf8_lossy(&reply.body);
    let created = CreateMultipartUpload::parse_response(&text)
        .map_err(|error| format!("CreateMultipartUpload {key}: unreadable reply: {error}"))?;
    let upload_id = created.upload_id().to_owned();
    let result = upload_parts(
        client,
        bucket,
        credentials,
        key,
        body,
        part_bytes,
        &upload_id,
    )
    .await;
    if let Err(error) = &result {
        let action = bucket.abort_multipart_upload(Some(credentials), key, &upload_id);
        let url = action.sign(SIGNATURE_LIFETIME);
        let aborted = match signed(http::Method::DELETE, &url, None, Bytes::new()) {
            Ok(request) => send(client, request, REQUEST_TIMEOUT)
                .await
                .map(|reply| reply.status),
            Err(error) => Err(error),
        };
        tracing::debug!(key, %error, ?aborted, "aborted a multipart upload");
    }
    result.map(Ok)
}

async fn upload_parts(
    client: &HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
    key: &str,
    body: &Bytes,
    part_bytes: usize,
    upload_id: &str,
) -> Result<(), String> {
    let count = body.len().div_ceil(part_bytes);
    if count > 10_000 {
        return Err(format!(
            "{key}: {count} parts of {part_bytes} bytes exceed S3's 10,000 parts"
        ));
    }
    let mut etags = Vec::with_capacity(count);
    for index in 0..count {
        let part = body.slice(index * part_bytes..((index + 1) * part_bytes).min(body.len()));
        let number = u16::try_from(index + 1).map_err(|_| "too many parts".to_owned())?;
        let action = bucket.upload_part(Some(credentials), key, number, upload_id);
        let url = action.sign(SIGNATURE_LIFETIME);
        let request = signed(http::Method::PUT, &url, None, part)?;
        let reply = send(client, request, REQUEST_TIMEOUT).await?;
        if !(200..300).contains(&reply.status) {
            return Err(format!(
                "UploadPart {key} part {number}: HTTP {} {}",
                reply.status,
                error_code(&reply.body)
            ));
        }
        let etag = reply
            .headers
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| format!("UploadPart {key} part {number}: no ETag in the reply"))?;
        etags.push(etag.to_owned());
    }
    let action = bucket.complete_multipart_upload(
        Some(credentials),
        key,
        upload_id,
        etags.iter().map(String::as_str),
    );
    let url = action.sign(SIGNATURE_LIFETIME);
    let xml = action.body();
    let request = signed(http::Method::POST, &url, None, Bytes::from(xml))?;
    let reply = send(client, request, REQUEST_TIMEOUT).await?;
    // S3 may answer 200 and still fail the completion: the body says which.
    let text = String::from_utf8_lossy(&reply.body);
    if !(200..300).contains(&reply.status) || CompleteMultipartUploadResponse::parse(&text).is_err()
    {
        return Err(format!(
            "CompleteMultipartUpload {key}: HTTP {} {}",
            reply.status,
            error_code(&reply.body)
        ));
    }
    Ok(())
}

async fn create_bucket(
    client: &HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
) -> Result<(), String> {
    let action = bucket.create_bucket(credentials);
    let url = action.sign(SIGNATURE_LIFETIME);
    let request = signed(http::Method::PUT, &url, None, Bytes::new())?;
    let reply = send(client, request, REQUEST_TIMEOUT).await?;
    let code = error_code(&reply.body);
    if (200..300).contains(&reply.status)
        || code == "BucketAlreadyOwnedByYou"
        || code == "BucketAlreadyExists"
    {
        tracing::info!(bucket = bucket.name(), "created the bucket on first use");
        return Ok(());
    }
    Err(format!(
        "CreateBucket {}: HTTP {} {code}",
        bucket.name(),
        reply.status
    ))
}
