//! HTTPS for every variant: one acceptor (rustls, with the `ring` provider), offering `h2`
//! and `http/1.1` by ALPN, and the connection type every transport serves.
//!
//! Browsers speak HTTP/2 only over TLS, and HTTP/2 is what lifts the browser's six
//! connections per origin: every `EventSource` of an origin shares one connection. The
//! certificate and key come from `--tls-cert` and `--tls-key`, checked at start (each file
//! readable and PEM, the key the certificate's) so that a bad one stops the server naming
//! its flag. [`accept`] turns an accepted socket into a [`Conn`]: the write timeout set, the
//! socket [`Watched`], and the TLS handshake done when the server has a certificate. The
//! hyper transport (axum, warp) and actix's chain both serve that, so the idiom files know
//! nothing of TLS.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::connection::{self, Connection, Watched};

/// How long a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's certificate, ready to accept with.
#[derive(Clone)]
pub struct Tls {
    /// The acceptor, with ALPN `h2` then `http/1.1`.
    acceptor: TlsAcceptor,
}

/// Never prints the key.
impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// Loads `--tls-cert` and `--tls-key`; the error names the flag at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert {}: no certificate in it",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "--tls-key {} does not go with --tls-cert {}: {e}",
                    key.display(),
                    cert.display()
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// One accepted connection as the transports serve it: plain, or TLS over the socket.
pub enum Conn {
    /// Plain HTTP/1.1.
    Plain(Watched<TcpStream>),
    /// TLS; HTTP/2 or HTTP/1.1 by ALPN.
    Tls(Box<TlsStream<Watched<TcpStream>>>),
}

impl Conn {
    /// The connection's state, for the requests it carries.
    pub fn connection(&self) -> &Arc<Connection> {
        match self {
            Conn::Plain(io) => io.connection(),
            Conn::Tls(io) => io.get_ref().0.connection(),
        }
    }

    /// Whether the client chose HTTP/2 (by ALPN).
    pub fn is_http2(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Tls(io) => io.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }
}

/// Prepares an accepted socket (the write timeout), watches it, and, with `tls`, does the
/// handshake (bounded in time).
pub async fn accept(
    stream: TcpStream,
    write_timeout: Duration,
    tls: Option<&Tls>,
) -> io::Result<Conn> {
    if let Err(error) = connection::prepare(SockRef::from(&stream), write_timeout) {
        tracing::warn!(%error, "cannot set the write timeout on a connection");
    }
    let io = Watched::new(stream);
    let Some(tls) = tls else {
        return Ok(Conn::Plain(io));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(io)).await {
        Ok(Ok(stream)) => Ok(Conn::Tls(Box::new(stream))),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake took too long",
        )),
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(io) => io.is_write_vectored(),
            Conn::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for 127.0.0.1 and its key, written to a temp dir of their own.
    fn files(name: &str) -> (tempdir::Dir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempdir::Dir::new(name);
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("a certificate");
        let (cert, key) = (dir.path.join("cert.pem"), dir.path.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("written");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("written");
        (dir, cert, key)
    }

    /// A temp dir removed on drop.
    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new(name: &str) -> Self {
                let path =
                    std::env::temp_dir().join(format!("sse-tls-{}-{name}", std::process::id()));
                std::fs::create_dir_all(&path).expect("a temp dir");
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let (_dir, cert, key) = files("ok");
        assert!(Tls::load(&cert, &key).is_ok());
    }

    #[test]
    fn each_bad_file_is_refused_naming_its_flag() {
        let (dir, cert, key) = files("bad");
        let missing = dir.path.join("missing.pem");
        let junk = dir.path.join("junk.pem");
        std::fs::write(&junk, "not a pem").expect("written");
        let (_other_dir, _other_cert, other_key) = files("other");
        for (cert, key, flag) in [
            (&missing, &key, "--tls-cert"),
            (&junk, &key, "--tls-cert"),
            (&cert, &missing, "--tls-key"),
            (&cert, &junk, "--tls-key"),
            (&cert, &other_key, "--tls-key"),
        ] {
            let error = Tls::load(cert, key).expect_err("refused");
            assert!(error.starts_with(flag), "{error}");
        }
    }
}
