//! TLS for the client APIs (rustls): one server configuration from the
//! PEM files of `api.tls`, optionally requiring client certificates signed
//! by `client_ca` (mutual TLS), served on HTTP, gRPC and RESP3 alike.
//!
//! Handshakes run on tasks of their own, with a deadline, so that a client
//! that connects and says nothing holds up no other: [`incoming`] yields
//! only connections whose handshake completed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::TlsConfig;

/// Longest a client may take to finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// What each API offers in ALPN: HTTP/2 for gRPC, both for HTTP, none for
/// RESP.
#[derive(Debug, Clone, Copy)]
pub enum Alpn {
    Http,
    Grpc,
    None,
}

/// The server configuration of `api.tls`, checked at start.
pub fn load(c: &TlsConfig) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&c.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("api.tls.cert: {}", c.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("api.tls.cert: {} holds no certificate", c.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .with_context(|| format!("api.tls.key: {}", c.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &c.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("api.tls.client_ca: {}", path.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("api.tls.client_ca: {}", path.display()))?)
                    .with_context(|| format!("api.tls.client_ca: {}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .with_context(|| format!("api.tls.client_ca: {}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .context("api.tls: the key does not match the certificate")?;
    Ok(Arc::new(config))
}

/// An acceptor for one API.
pub fn acceptor(config: &Arc<rustls::ServerConfig>, alpn: Alpn) -> TlsAcceptor {
    let mut c = (**config).clone();
    c.alpn_protocols = match alpn {
        Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Grpc => vec![b"h2".to_vec()],
        Alpn::None => Vec::new(),
    };
    TlsAcceptor::from(Arc::new(c))
}

/// Accepts on `listener` and hands over each connection once its
/// handshake is done; failed handshakes are logged and dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let (socket, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("tls accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = socket.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(socket)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, "tls handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    rx
}

/// `axum::serve`'s view of TLS connections.
pub struct Listener {
    pub incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // The accept task ends only with the runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
