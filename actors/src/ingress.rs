//! The webhook's HTTP server, hardened for the internet: it serves an axum [`Router`] on any
//! [`axum::serve::Listener`] (plain TCP or [`crate::tls::TlsListener`]) under [`Limits`].
//!
//! # Guarantees
//! - A client must send its request headers within [`Limits::header_timeout`] (hyper's
//!   header read timeout), so a slow sender cannot hold a connection open by trickling them.
//! - A request must be answered within [`Limits::request_timeout`], body read included: a
//!   slow body gets `408 Request Timeout` and its slot back.
//! - At most [`Limits::max_requests`] requests are handled at once; beyond that the answer
//!   is `503 Service Unavailable` with `Retry-After` at once, without reading the body.
//!   (TLS handshakes have their own cap in [`crate::tls`].)
//! - Shutdown stops accepting, lets requests in hand finish, and closes idle connections.
//!
//! # Why not `axum::serve`
//! It sets no timer on hyper, so hyper's header read timeout never fires, and it has no hook
//! for one; this is the same hyper-util connection builder with the timer set.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// How the ingress protects itself.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a client may take to send its request headers.
    pub header_timeout: Duration,
    /// Longest a request may take, body read and handling included.
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503.
    pub max_requests: usize,
    /// The `Retry-After` (seconds) of a 503.
    pub retry_after_secs: u32,
    /// Longest shutdown waits for requests in hand.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_requests: 256,
            retry_after_secs: 5,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `router` behind the request cap and the request timeout of `limits`.
pub fn guard(router: Router, limits: &Limits) -> Router {
    let slots = Arc::new(Semaphore::new(limits.max_requests));
    let timeout = limits.request_timeout;
    let retry_after = HeaderValue::from(limits.retry_after_secs);
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let (slots, retry_after) = (slots.clone(), retry_after.clone());
            async move {
                let Ok(_slot) = slots.try_acquire_owned() else {
                    tracing::debug!("ingress busy: 503");
                    let mut busy =
                        (StatusCode::SERVICE_UNAVAILABLE, "busy, retry later\n").into_response();
                    busy.headers_mut().insert(RETRY_AFTER, retry_after);
                    return busy;
                };
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => {
                        (StatusCode::REQUEST_TIMEOUT, "request took too long\n").into_response()
                    }
                }
            }
        },
    ))
}

/// Serves `router` (already [`guard`]ed) on `listener` until `shutdown` completes.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(error = %error, "webhook connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("webhook connections still open after the shutdown grace");
    }
}
