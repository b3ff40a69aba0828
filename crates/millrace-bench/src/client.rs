//! A minimal Kinesis JSON-protocol client: one keep-alive HTTP/1.1 connection per value, SigV4-signed requests.
//!
//! Each load-generating task owns one `Connection`, so requests on a connection never wait for another task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::sigv4::{payload_digest, AmzDate, SignedHeader, Signer};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Where requests go and how they are signed; shared by every connection of a run.
pub struct Endpoint {
    pub url: String,
    address: SocketAddr,
    host_header: String,
    signer: Signer,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/]` and resolves the host once.
    pub async fn resolve(url: &str, region: &str) -> anyhow::Result<Arc<Endpoint>> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("parse endpoint {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// endpoints are supported, got {url}");
        }
        let host = uri.host().context("endpoint has no host")?;
        let port = uri.port_u16().unwrap_or(80);
        let address = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolve {host}"))?
            .next()
            .with_context(|| format!("no address for {host}"))?;
        let host_header = match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Arc::new(Endpoint {
            url: url.trim_end_matches('/').to_owned(),
            address,
            host_header,
            signer: Signer::new("AKIDMILLRACEBENCH", "bench-secret-key", region, "kinesis"),
        }))
    }
}

/// A body with its SigV4 payload digest, so a body sent many times is hashed once.
#[derive(Clone)]
pub struct PreparedBody {
    pub bytes: Bytes,
    pub digest: Arc<str>,
}

impl PreparedBody {
    pub fn new(bytes: Vec<u8>) -> PreparedBody {
        let digest = payload_digest(&bytes);
        PreparedBody {
            bytes: Bytes::from(bytes),
            digest: digest.into(),
        }
    }
}

/// What the server answered.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    /// The AWS error type of a failed call, or `None` for success.
    pub fn error_type(&self) -> Option<String> {
        if self.status < 300 {
            return None;
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            #[serde(rename = "__type")]
            kind: Option<String>,
        }
        let kind = serde_json::from_slice::<ErrorBody>(&self.body)
            .ok()
            .and_then(|e| e.kind)
            .unwrap_or_else(|| format!("HTTP {}", self.status));
        Some(kind.rsplit('#').next().unwrap_or(&kind).to_owned())
    }
}

/// One keep-alive connection; reconnects lazily after a failure.
pub struct Connection {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub fn new(endpoint: Arc<Endpoint>) -> Connection {
        Connection {
            endpoint,
            sender: None,
        }
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let usable = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        if !usable {
            let stream = tokio::net::TcpStream::connect(self.endpoint.address)
                .await
                .with_context(|| format!("connect to {}", self.endpoint.url))?;
            stream.set_nodelay(true).context("set TCP_NODELAY")?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP handshake")?;
            tokio::spawn(async move {
                // The connection ends when the sender is dropped or the peer closes it; either is fine here.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("set just above");
        sender.ready().await.context("wait for the connection")?;
        Ok(sender)
    }

    /// Sends one signed request and returns the response with its body still streaming
    /// (SubscribeToShard's event stream).
    pub async fn open(
        &mut self,
        operation: &str,
        body: &PreparedBody,
    ) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
        let request = self.signed_request(operation, body)?;
        let response = self.sender().await?.send_request(request).await;
        if response.is_err() {
            self.sender = None;
        }
        Ok(response?)
    }

    fn signed_request(
        &self,
        operation: &str,
        body: &PreparedBody,
    ) -> anyhow::Result<http::Request<Full<Bytes>>> {
        let target = format!("Kinesis_20131202.{operation}");
        let when = AmzDate::now();
        let endpoint = &self.endpoint;
        let headers = [
            SignedHeader {
                name: "content-type",
                value: CONTENT_TYPE,
            },
            SignedHeader {
                name: "host",
                value: &endpoint.host_header,
            },
            SignedHeader {
                name: "x-amz-date",
                value: &when.timestamp,
            },
            SignedHeader {
                name: "x-amz-target",
                value: &target,
            },
        ];
        let authorization =
            endpoint
                .signer
                .authorization("POST", "/", "", &headers, &body.digest, &when);
        http::Request::post("/")
            .header(http::header::HOST, &endpoint.host_header)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-date", &when.timestamp)
            .header("x-amz-target", &target)
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(body.bytes.clone()))
            .context("build request")
    }

    /// Sends one signed request for `operation` and reads the whole reply.
    pub async fn call(&mut self, operation: &str, body: &PreparedBody) -> anyhow::Result<Reply> {
        let request = self.signed_request(operation, body)?;
        let result = async {
            let response = self.sender().await?.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Reply { status, body })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// Sends a small control-plane request and returns its JSON reply, failing on any AWS error.
    pub async fn call_json(&mut self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        let body = PreparedBody::new(serde_json::to_vec(input).expect("JSON values serialize"));
        let mut attempt = 0;
        let reply = loop {
            let reply = self.call(operation, &body).await?;
            let Some(kind) = reply.error_type() else {
                break reply;
            };
            // Control-plane calls have rate limits (AWS: 5 CreateStream/s); back off and retry those.
            let retryable = matches!(
                kind.as_str(),
                "LimitExceededException" | "ThrottlingException"
            );
            attempt += 1;
            if !retryable || attempt > 50 {
                return Err(anyhow!(
                    "{operation} failed: {kind}: {}",
                    String::from_utf8_lossy(&reply.body)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if reply.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice(&reply.body).with_context(|| format!("parse {operation} reply"))
    }

    /// Creates a stream (an existing one of that name is an error) and waits until it is ACTIVE.
    pub async fn create_stream(&mut self, name: &str, shards: u32) -> anyhow::Result<()> {
        self.call_json(
            "CreateStream",
            &json!({"StreamName": name, "ShardCount": shards}),
        )
        .await?;
        self.wait_active(name).await
    }

    /// Starts server-side encryption of a stream with `key` and waits until it is ACTIVE again.
    pub async fn encrypt_stream(&mut self, name: &str, key: &str) -> anyhow::Result<()> {
        self.call_json(
            "StartStreamEncryption",
            &json!({"StreamName": name, "EncryptionType": "KMS", "KeyId": key}),
        )
        .await?;
        self.wait_active(name).await
    }

    /// Polls DescribeStreamSummary until the stream is ACTIVE (peers keep new streams CREATING for a while).
    pub async fn wait_active(&mut self, name: &str) -> anyhow::Result<()> {
        for _ in 0..600 {
            let summary = self
                .call_json("DescribeStreamSummary", &json!({"StreamName": name}))
                .await?;
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("stream {name} did not become ACTIVE within 30 s")
    }

    /// Deletes a stream, ignoring the answer (a benchmark's cleanup must not fail the run).
    pub async fn delete_stream(&mut self, name: &str) {
        let input = json!({"StreamName": name, "EnforceConsumerDeletion": true});
        if let Err(error) = self.call_json("DeleteStream", &input).await {
            tracing::warn!(%error, stream = name, "failed to delete the benchmark stream");
        }
    }

    /// Lists the stream's shard ids with ListShards, following pagination.
    pub async fn list_shards(&mut self, name: &str) -> anyhow::Result<Vec<String>> {
        let shards = self.list_shards_with_start_keys(name).await?;
        Ok(shards.into_iter().map(|(id, _)| id).collect())
    }

    /// Lists the stream's shards as (shard id, starting hash key), following pagination.
    pub async fn list_shards_with_start_keys(
        &mut self,
        name: &str,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut shards = Vec::new();
        let mut input = json!({"StreamName": name});
        loop {
            let page = self.call_json("ListShards", &input).await?;
            for shard in page["Shards"].as_array().into_iter().flatten() {
                let id = shard["ShardId"].as_str().context("shard without ShardId")?;
                let start = shard["HashKeyRange"]["StartingHashKey"]
                    .as_str()
                    .unwrap_or("0");
                shards.push((id.to_owned(), start.to_owned()));
            }
            match page["NextToken"].as_str() {
                Some(token) => input = json!({"NextToken": token}),
                None => return Ok(shards),
            }
        }
    }

    /// Returns a TRIM_HORIZON or LATEST iterator for one shard.
    pub async fn shard_iterator(
        &mut self,
        stream: &str,
        shard: &str,
        kind: &str,
    ) -> anyhow::Result<String> {
        let reply = self
            .call_json(
                "GetShardIterator",
                &json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": kind}),
            )
            .await?;
        reply["ShardIterator"]
            .as_str()
            .map(str::to_owned)
            .context("GetShardIterator reply without ShardIterator")
    }
}
