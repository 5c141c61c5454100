//! HTTPS for the load generator: a self-signed certificate for `127.0.0.1` that the http2
//! scenario starts its TLS instances with, the client configurations that trust it, and the
//! byte stream the raw HTTP/1.1 clients read and write, plain or TLS.
//!
//! The certificate and key are written into a temp dir of their own, removed when the
//! [`BenchCert`] is dropped, so that nothing of a run stays on disk. The clients trust that
//! one certificate and nothing else; they offer `http/1.1` alone for the raw clients (the
//! servers offer `h2` first, and would otherwise choose it) or `h2` alone for the HTTP/2
//! connections ([`crate::client::H2Pool`]).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::Target;
use crate::server::Launch;

/// ALPN for the raw HTTP/1.1 clients.
pub const HTTP1: &[u8] = b"http/1.1";
/// ALPN for the HTTP/2 connections.
pub const H2: &[u8] = b"h2";

/// A self-signed certificate for `127.0.0.1` and its key, on disk while it lives.
pub struct BenchCert {
    /// The temp dir holding `cert.pem` and `key.pem`.
    dir: PathBuf,
    /// The certificate, PEM, which the clients trust.
    pem: String,
}

impl BenchCert {
    /// Generates a pair and writes it into a fresh temp dir (the key readable by its owner
    /// only).
    pub fn generate() -> Result<Self, String> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sse-bench-cert-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // From here on, dropping `cert` removes the dir, whatever fails next.
        let cert = Self {
            dir,
            pem: certified.cert.pem(),
        };
        std::fs::write(cert.dir.join("cert.pem"), &cert.pem)
            .and_then(|()| {
                write_private(
                    &cert.dir.join("key.pem"),
                    &certified.signing_key.serialize_pem(),
                )
            })
            .map_err(|e| format!("{}: {e}", cert.dir.display()))?;
        Ok(cert)
    }

    /// `launch` serving HTTPS with this certificate.
    pub fn serving(&self, launch: &Launch) -> Launch {
        let path = |file: &str| self.dir.join(file).display().to_string();
        launch
            .with_flag("--tls-cert", &path("cert.pem"))
            .with_flag("--tls-key", &path("key.pem"))
    }

    /// A client configuration that trusts this certificate alone and offers `alpn`.
    pub fn client(&self, alpn: &[u8]) -> Result<Arc<ClientConfig>, String> {
        use rustls_pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("the bench certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the bench certificate: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

impl Drop for BenchCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `contents` to a new file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// One connection of the raw clients: plain TCP, or TLS over it.
pub enum Io {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS (boxed: the TLS state is some hundreds of bytes, and most connections are
    /// plain).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Io {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// Connects `socket` (configured by the caller) to `target`, through TLS if the target has
/// a TLS configuration, trusting its certificate for the target's IP address.
pub async fn connect(target: &Target, socket: TcpSocket) -> io::Result<Io> {
    let tcp = socket.connect(target.addr).await?;
    handshake(target, tcp).await
}

/// Connects to `target` with a default socket and `TCP_NODELAY` (for request/response
/// clients, whose small writes must leave at once).
pub async fn dial(target: &Target) -> io::Result<Io> {
    let tcp = TcpStream::connect(target.addr).await?;
    tcp.set_nodelay(true)?;
    handshake(target, tcp).await
}

/// `tcp` as it is, or after a TLS handshake when `target` has TLS.
async fn handshake(target: &Target, tcp: TcpStream) -> io::Result<Io> {
    let Some(config) = &target.tls else {
        return Ok(Io::Plain(tcp));
    };
    let tls = TlsConnector::from(config.clone())
        .connect(ServerName::from(target.addr.ip()), tcp)
        .await?;
    Ok(Io::Tls(Box::new(tls)))
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_on_disk_while_it_lives_and_trusted_for_one_protocol() {
        let cert = BenchCert::generate().expect("a certificate");
        let dir = cert.dir.clone();
        assert!(dir.join("cert.pem").is_file() && dir.join("key.pem").is_file());
        let config = cert.client(H2).expect("a client configuration");
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
        let base = Launch {
            name: "x".into(),
            program: "x".into(),
            prefix: Vec::new(),
            flags: vec!["--port".into(), "0".into()],
            log: "x.log".into(),
        };
        let flags = cert.serving(&base).flags;
        assert_eq!(flags[2], "--tls-cert");
        assert_eq!(flags[3], dir.join("cert.pem").display().to_string());
        assert_eq!(
            flags[4..6],
            [
                "--tls-key".to_owned(),
                dir.join("key.pem").display().to_string()
            ]
        );
        drop(cert);
        assert!(!dir.exists(), "the dir goes with the certificate");
    }
}
