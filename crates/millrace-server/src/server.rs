//! Accepting connections and turning HTTP requests into dispatched operations.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use millrace_iam::Iam;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::dispatch;
use crate::dispatch::Reply;
use crate::error::ApiError;
use crate::response::{self, ResponseBody};

/// Largest request body accepted (PutRecords allows 10 MiB of data, which base64 inflates).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Server settings that are not the engine's.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How requests are authenticated and authorized.
    pub auth: crate::auth::AuthMode,
    /// Where the audit log goes; `None` keeps none.
    pub audit: Option<crate::audit::AuditConfig>,
    /// Region used when a request carries no credential scope.
    pub default_region: String,
    /// Whether control-plane call rates are limited (with the throughput limits).
    pub rate_limits: bool,
    /// When set, connections that open with a TLS handshake are served over TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Everything the server serves: the accounts' Kinesis engines, the identity service and the
/// JSON services beside Kinesis.
pub struct Backends {
    pub accounts: crate::accounts::Accounts,
    pub iam: Arc<Iam>,
    pub json_services: crate::json_services::JsonServices,
    /// The metrics the Kinesis handlers record into and `GET /metrics` shows; `None` keeps none.
    pub metrics: Option<Arc<millrace_cloudwatch::Metrics>>,
    /// The embedded S3-compatible store, which requests signed for `s3` go to.
    pub s3: Option<Arc<dyn crate::s3_route::S3Front>>,
    /// Kinesis Channels (`None`: their operations are refused).
    pub channels: Option<Arc<dyn crate::channels_route::ChannelsFront>>,
}

struct Shared {
    accounts: crate::accounts::Accounts,
    json_services: crate::json_services::JsonServices,
    config: ServerConfig,
    rate_limiter: crate::rate_limit::RateLimiter,
    authenticator: crate::auth::Authenticator,
    policies: crate::authz::PolicyCache,
    decisions: crate::authz::DecisionCache,
    audit: Option<crate::audit::AuditLog>,
    metrics: Option<Arc<millrace_cloudwatch::Metrics>>,
    s3: Option<Arc<dyn crate::s3_route::S3Front>>,
    queues: millrace_queues::Queues,
    channels: Option<Arc<dyn crate::channels_route::ChannelsFront>>,
}

impl Shared {
    fn services(&self) -> dispatch::Services<'_> {
        dispatch::Services {
            accounts: &self.accounts,
            config: &self.config,
            rate_limiter: &self.rate_limiter,
            authenticator: &self.authenticator,
            policies: &self.policies,
            decisions: &self.decisions,
            audit: self.audit.as_ref(),
            metrics: self.metrics.as_deref(),
            queues: &self.queues,
            channels: self.channels.as_deref(),
        }
    }
}

/// Serves requests on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    backends: Backends,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let audit = match &config.audit {
        Some(audit) => Some(crate::audit::AuditLog::start(audit.clone())?),
        None => None,
    };
    let Backends {
        accounts,
        iam,
        json_services,
        metrics,
        s3,
        channels,
    } = backends;
    let shared = Arc::new(Shared {
        accounts,
        json_services,
        authenticator: crate::auth::Authenticator::new(config.auth, iam),
        config,
        rate_limiter: Default::default(),
        policies: Default::default(),
        decisions: Default::default(),
        audit,
        metrics,
        s3,
        queues: millrace_queues::Queues::new(Default::default()),
        channels,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared_for_service = shared.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = shared.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let is_tls = match &tls {
                        Some(_) => matches!(stream.peek(&mut first).await, Ok(1) if first[0] == crate::tls::TLS_HANDSHAKE),
                        None => false,
                    };
                    let peer_ip: Arc<str> = Arc::from(peer.ip().to_string());
                    let service = service_fn(move |request| {
                        let shared = shared_for_service.clone();
                        let peer = dispatch::Peer { ip: peer_ip.to_string(), secure: is_tls };
                        async move { Ok::<_, std::convert::Infallible>(handle(shared, peer, request).await) }
                    });
                    let result = match tls {
                        Some(acceptor) if is_tls => match acceptor.accept(stream).await {
                            Ok(secured) => {
                                let connection = builder.serve_connection_with_upgrades(TokioIo::new(secured), service);
                                watcher.watch(connection.into_owned()).await
                            }
                            Err(error) => {
                                tracing::debug!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                        },
                        _ => {
                            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                            watcher.watch(connection.into_owned()).await
                        }
                    };
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    for engine in shared.accounts.all() {
        engine.stop_subscriptions();
    }
    for service in shared.json_services.all() {
        service.shutdown();
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    let engines: Vec<_> = shared.accounts.all().cloned().collect();
    let synced = tokio::task::spawn_blocking(move || {
        for engine in engines {
            engine.sync_all();
        }
    });
    if let Err(error) = synced.await {
        tracing::error!(%error, "final sync failed");
    }
    Ok(())
}

async fn handle(
    shared: Arc<Shared>,
    peer: dispatch::Peer,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    if let Some(s3) = shared
        .s3
        .as_ref()
        .filter(|_| crate::s3_route::is_s3(&parts))
    {
        return s3.handle(Request::from_parts(parts, body)).await;
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut operation = target.rsplit('.').next().unwrap_or("").to_owned();
    if operation.is_empty() {
        if let Some((_, op)) = crate::json_services::rpc_v2_path(parts.uri.path()) {
            operation = op.to_owned();
        }
    }
    let span = tracing::info_span!("request", %request_id, operation = %operation);
    let started = std::time::Instant::now();
    let response = handle_parts(shared, peer, request_id, parts, body, target)
        .instrument(span.clone())
        .await;
    // The request log: one DEBUG line per request, inside the span that carries the request id
    // (the one `x-amzn-RequestId` returns).
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request finished"
        )
    });
    response
}

async fn handle_parts(
    shared: Arc<Shared>,
    peer: dispatch::Peer,
    request_id: String,
    parts: http::request::Parts,
    body: Incoming,
    target: String,
) -> Response<ResponseBody> {
    let (format, _) = crate::dispatch::Format::of(&parts.headers);
    let operation = target.rsplit('.').next().unwrap_or("").to_owned();
    if parts.method == http::Method::OPTIONS {
        return response::cors_preflight(&request_id, &parts.headers);
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let api_error = if too_large {
                ApiError::serialization(Some("Request body is too large.".into())).with_status(413)
            } else {
                ApiError::serialization(None)
            };
            return response::error(&request_id, &api_error, format);
        }
    };
    let services = shared.services();
    if parts.method == http::Method::GET {
        if let Some((content_type, asset)) = crate::console::asset(parts.uri.path()) {
            return response::static_asset(&request_id, content_type, asset);
        }
    }
    if parts.method == http::Method::GET && parts.uri.path() == "/metrics" {
        if let Some(metrics) = &shared.metrics {
            return response::prometheus(
                &request_id,
                millrace_cloudwatch::prometheus::render(metrics),
            );
        }
    }
    // restJson1 (Lambda): the method and path name the operation.
    if let Some(response) = crate::rest_json::route(
        &services,
        &shared.json_services,
        &peer,
        &request_id,
        &parts,
        &body,
    )
    .await
    {
        return response;
    }
    // Smithy RPC v2 CBOR (CloudWatch's first protocol): the service and operation are in the path.
    if let Some((service_name, operation)) = crate::json_services::rpc_v2_path(parts.uri.path()) {
        if let Some(service) = shared.json_services.by_prefix(service_name) {
            let reply = crate::json_services::route_rpc_v2(
                &services,
                service.as_ref(),
                &peer,
                &request_id,
                &parts,
                operation,
                &body,
            )
            .await;
            return response::json_service(&request_id, reply);
        }
    }
    if crate::query::is_query_request(&parts) {
        // awsQuery for a JSON service (CloudWatch), recognised by the credential scope's service.
        let scope = crate::auth::parse(&parts.headers, parts.uri.query())
            .ok()
            .map(|signed| signed.service);
        if let Some(service) = scope
            .as_deref()
            .and_then(|name| shared.json_services.by_signing_name(name))
        {
            let reply = crate::json_services::route_query(
                &services,
                service.as_ref(),
                &peer,
                &request_id,
                &parts,
                &body,
            )
            .await;
            return response::xml(&request_id, reply.status, reply.body);
        }
        let reply = crate::query::route(&services, &peer, &request_id, &parts, &body);
        return response::xml(&request_id, reply.status, reply.body);
    }
    if let Some((prefix, operation)) = target.split_once('.') {
        if let Some(service) = shared.json_services.by_prefix(prefix) {
            let reply = crate::json_services::route(
                &services,
                service.as_ref(),
                &peer,
                &request_id,
                &parts,
                operation,
                &body,
            )
            .await;
            return response::json_service(&request_id, reply);
        }
    }
    let outcome = dispatch::route(&services, &peer, &request_id, &parts, &target, &body).await;
    match outcome {
        Ok(Reply::Body(reply)) => response::ok(&request_id, &operation, reply, format),
        Ok(Reply::EventStream(messages)) => response::event_stream(&request_id, messages),
        Err(error) => {
            tracing::debug!(code = error.code, status = error.status, "request rejected");
            response::error(&request_id, &error, format)
        }
    }
}
