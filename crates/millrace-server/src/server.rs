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
use millrace_engine::Engine;
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
    /// Region used when a request carries no credential scope.
    pub default_region: String,
    /// Whether control-plane call rates are limited (with the throughput limits).
    pub rate_limits: bool,
    /// When set, connections that open with a TLS handshake are served over TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

struct Shared {
    engine: Arc<Engine>,
    config: ServerConfig,
    rate_limiter: crate::rate_limit::RateLimiter,
}

/// Serves requests on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        engine,
        config,
        rate_limiter: Default::default(),
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
                let service = service_fn(move |request| {
                    let shared = shared_for_service.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(shared, request).await) }
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = shared.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let is_tls = match &tls {
                        Some(_) => matches!(stream.peek(&mut first).await, Ok(1) if first[0] == crate::tls::TLS_HANDSHAKE),
                        None => false,
                    };
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
    shared.engine.stop_subscriptions();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    let engine = shared.engine.clone();
    if let Err(error) = tokio::task::spawn_blocking(move || engine.sync_all()).await {
        tracing::error!(%error, "final sync failed");
    }
    Ok(())
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ResponseBody> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let operation = target.rsplit('.').next().unwrap_or("").to_owned();
    let span = tracing::debug_span!("request", %request_id, operation = %operation);
    handle_parts(shared, request_id, parts, body, target)
        .instrument(span)
        .await
}

async fn handle_parts(
    shared: Arc<Shared>,
    request_id: String,
    parts: http::request::Parts,
    body: Incoming,
    target: String,
) -> Response<ResponseBody> {
    let (format, _) = crate::dispatch::Format::of(&parts.headers);
    let operation = target.rsplit('.').next().unwrap_or("").to_owned();
    if parts.method == http::Method::OPTIONS {
        return response::cors_preflight(&request_id);
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
    let outcome = dispatch::route(
        &shared.engine,
        &shared.config,
        &shared.rate_limiter,
        &parts,
        &target,
        &body,
    )
    .await;
    match outcome {
        Ok(Reply::Body(reply)) => response::ok(&request_id, &operation, reply, format),
        Ok(Reply::EventStream(messages)) => response::event_stream(&request_id, messages),
        Err(error) => {
            tracing::debug!(code = error.code, status = error.status, "request rejected");
            response::error(&request_id, &error, format)
        }
    }
}
