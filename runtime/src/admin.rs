//! The admin HTTP server every binary runs: `/livez` (the process serves requests), `/readyz`
//! (the binary says it is ready, e.g. its caches are synced) and `/metrics` (its Prometheus
//! registry in OpenMetrics text).
//!
//! Readiness is a `watch` channel the binary owns, so the probe reports the binary's own view and
//! never a guess made here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The content type of the OpenMetrics text format that Prometheus negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The admin server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("binding the admin server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct AdminState {
    ready: watch::Receiver<bool>,
    registry: Arc<Registry>,
}

/// A bound admin server; binding first lets the caller learn the port (tests bind port 0) and
/// fail fast on a taken address before starting any other work.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl AdminServer {
    /// Binds the listening socket.
    pub async fn bind(addr: SocketAddr) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| AdminError::Bind { addr, source })?;
        Ok(Self { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight.
    pub async fn serve(
        self,
        ready: watch::Receiver<bool>,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> Result<(), AdminError> {
        let router = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(AdminState { ready, registry });
        let addr = self.addr;
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| AdminError::Serve { addr, source })
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One HTTP/1.1 request over a fresh loopback connection; returns (status, headers+body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status line");
        (status, response)
    }

    struct Running {
        addr: SocketAddr,
        ready: watch::Sender<bool>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), AdminError>>,
    }

    async fn start(registry: Registry) -> Running {
        let server = AdminServer::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind loopback");
        let addr = server.local_addr();
        let (ready, ready_rx) = watch::channel(false);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.serve(ready_rx, Arc::new(registry), shutdown.clone()));
        Running {
            addr,
            ready,
            shutdown,
            task,
        }
    }

    #[tokio::test]
    async fn livez_answers_ok() {
        let server = start(Registry::default()).await;
        let (status, _) = get(server.addr, "/livez").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn readyz_is_503_until_the_binary_says_ready() {
        let server = start(Registry::default()).await;
        assert_eq!(get(server.addr, "/readyz").await.0, 503);
        server.ready.send(true).expect("receiver alive");
        assert_eq!(get(server.addr, "/readyz").await.0, 200);
        server.ready.send(false).expect("receiver alive");
        assert_eq!(get(server.addr, "/readyz").await.0, 503);
    }

    #[tokio::test]
    async fn metrics_serves_registered_metrics_as_openmetrics() {
        let mut registry = Registry::with_prefix("ferrolb");
        let reconciles = Counter::<u64>::default();
        registry.register("reconciles", "Reconciliations run", reconciles.clone());
        reconciles.inc_by(3);
        let server = start(registry).await;
        let (status, response) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(response.contains(OPENMETRICS), "{response}");
        assert!(
            response.contains("ferrolb_reconciles_total 3"),
            "{response}"
        );
        assert!(response.contains("# EOF"), "{response}");
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let server = start(Registry::default()).await;
        assert_eq!(get(server.addr, "/nothing").await.0, 404);
    }

    #[tokio::test]
    async fn cancelling_shutdown_stops_the_server() {
        let server = start(Registry::default()).await;
        server.shutdown.cancel();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), server.task)
            .await
            .expect("server stops")
            .expect("task not panicked");
        assert!(result.is_ok(), "{result:?}");
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let first = AdminServer::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        match AdminServer::bind(first.local_addr()).await {
            Err(AdminError::Bind { addr, .. }) => assert_eq!(addr, first.local_addr()),
            other => panic!("expected a bind error, got {other:?}"),
        }
    }
}
