//! Writing objects to an S3-compatible endpoint: requests signed by `rusty-s3` (presigned,
//! path-style URLs), sent by the shared hyper client.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
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

/// Writes one object; on failure, the reason (for logs and the retry loop).
pub async fn put_object(
    client: &HttpClient,
    target: &S3Target,
    bucket_name: &str,
    key: &str,
    body: Bytes,
    content_encoding: Option<&str>,
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
    let mut created = false;
    loop {
        let mut action = bucket.put_object(Some(&credentials), key);
        if let Some(encoding) = content_encoding {
            action.headers_mut().insert("content-encoding", encoding);
        }
        let url = action.sign(SIGNATURE_LIFETIME);
        let mut request = http::Request::put(url.as_str());
        if let Some(encoding) = content_encoding {
            request = request.header("content-encoding", encoding);
        }
        let request = request
            .header("content-length", body.len())
            .body(Full::new(body.clone()))
            .map_err(|error| format!("build request: {error}"))?;
        let reply = send(client, request, REQUEST_TIMEOUT).await?;
        if (200..300).contains(&reply.status) {
            return Ok(());
        }
        let code = error_code(&reply.body);
        if code == "NoSuchBucket" && target.create_buckets && !created {
            create_bucket(client, &bucket, &credentials).await?;
            created = true;
            continue;
        }
        return Err(format!(
            "PutObject {bucket_name}/{key}: HTTP {} {code}",
            reply.status
        ));
    }
}

async fn create_bucket(
    client: &HttpClient,
    bucket: &Bucket,
    credentials: &Credentials,
) -> Result<(), String> {
    let action = bucket.create_bucket(credentials);
    let url = action.sign(SIGNATURE_LIFETIME);
    let request = http::Request::put(url.as_str())
        .header("content-length", 0)
        .body(Full::new(Bytes::new()))
        .map_err(|error| format!("build request: {error}"))?;
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
