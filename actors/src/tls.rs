//! HTTPS for the webhook when no proxy terminates TLS in front of it.
//!
//! [`server_config`] loads a PEM certificate chain and private key into a rustls server
//! configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`). [`TlsListener`] is an
//! [`axum::serve::Listener`], so `axum::serve(TlsListener::new(tcp, config), router)` keeps
//! axum's connection handling and graceful shutdown unchanged.
//!
//! Why this and not `axum-server`: `tokio-rustls` is already in the dependency tree (through
//! reqwest), so this module adds no crate; `axum-server` would add itself and `arc-swap` and
//! replace axum's own server loop.
//!
//! # Guarantees
//! - Handshakes run in their own tasks with a [`HANDSHAKE_TIMEOUT`], so a slow or silent
//!   client never holds up other connections; a failed handshake is logged and dropped.
//! - At most [`MAX_HANDSHAKES`] handshakes run at once; a connection beyond that is closed
//!   unanswered, so a flood of half-open handshakes costs a bounded amount of work.
//! - The accept task ends when the listener is dropped.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for axum to take them.
const BACKLOG: usize = 64;
/// TLS handshakes in progress at once; a connection beyond it is closed at once (it cannot be
/// told 503 before TLS is up), and its client retries.
pub const MAX_HANDSHAKES: usize = 128;

/// A TLS setup that failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading TLS certificate {}: {source}", path.display())]
    ReadCert { path: PathBuf, source: pem::Error },
    #[error("TLS certificate file {} holds no certificate", path.display())]
    NoCert { path: PathBuf },
    #[error("reading TLS private key {}: {source}", path.display())]
    ReadKey { path: PathBuf, source: pem::Error },
    #[error("building the TLS server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads the certificate chain (leaf first) and private key (PKCS#8, PKCS#1 or SEC1) from PEM
/// files into a server configuration.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::ReadCert {
            path: cert.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::ReadKey {
        path: key.to_owned(),
        source,
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener that hands out connections after a completed TLS handshake.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::AbortHandle,
}

impl TlsListener {
    /// Starts accepting on `tcp`; must be called inside a tokio runtime.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        let accept_task =
            tokio::spawn(accept_loop(tcp, acceptor, tx, MAX_HANDSHAKES)).abort_handle();
        Ok(Self {
            local_addr,
            ready,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    max_handshakes: usize,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(max_handshakes));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "webhook TLS accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many TLS handshakes in progress; closing");
            drop(stream);
            continue;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    drop(_permit);
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop holds a sender until it is aborted, which happens only on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
