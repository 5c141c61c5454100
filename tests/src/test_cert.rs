//! A self-signed certificate for `127.0.0.1` and `localhost`, made fresh for one test binary,
//! so that the HTTPS trials (HTTP/2 over TLS, contract point 18) need no file in the
//! repository and no CA on the machine.
//!
//! The certificate and key are written to a temp dir of their own for the server's
//! `--tls-cert` and `--tls-key`; the clients trust the same PEM ([`TestCert::client`]).

use std::path::PathBuf;
use std::sync::Arc;

/// A certificate and its key on disk, removed on drop.
pub struct TestCert {
    /// The temp dir holding both files.
    dir: PathBuf,
    /// The certificate, PEM.
    pub pem: String,
}

impl TestCert {
    /// Generates the pair and writes `cert.pem` and `key.pem` into a fresh temp dir.
    pub fn generate(name: &str) -> Result<Self, String> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .map_err(|e| format!("no test certificate: {e}"))?;
        // Unique within the process too: trials of one binary run in parallel.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sse-cert-{}-{n}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let pem = certified.cert.pem();
        let written = std::fs::write(dir.join("cert.pem"), &pem).and_then(|()| {
            std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem())
        });
        let cert = TestCert { dir, pem };
        written.map_err(|e| e.to_string())?;
        Ok(cert)
    }

    /// `--tls-cert PATH --tls-key PATH`, for a server that serves this certificate.
    pub fn flags(&self) -> Vec<String> {
        let path = |file: &str| self.dir.join(file).display().to_string();
        vec![
            "--tls-cert".to_owned(),
            path("cert.pem"),
            "--tls-key".to_owned(),
            path("key.pem"),
        ]
    }

    /// A client configuration that trusts this certificate and offers `h2` (unless
    /// `http1_only`) and `http/1.1`.
    pub fn client(&self, http1_only: bool) -> Result<Arc<rustls::ClientConfig>, String> {
        crate::client::tls_trusting(self.pem.as_bytes(), http1_only)
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
