//! `dev-cert`: makes a self-signed certificate for `localhost` and `127.0.0.1`, for trying
//! HTTPS (and so HTTP/2) on this machine: `cargo run -p sse-demo --bin dev-cert`, or
//! `just dev-cert`.
//!
//! It writes `cert.pem` and `key.pem` into `target/dev-cert/` (or the directory given) and
//! prints the flags that use them. Browsers warn about a certificate nobody vouches for:
//! accept it once for the origin, or start Chromium with `--ignore-certificate-errors`. The
//! key is written readable by its owner only; it is for development, never for a server
//! others reach.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Makes a self-signed certificate for local HTTPS.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Where to write cert.pem and key.pem, e.g. --out-dir /tmp/certs
    #[arg(long, value_name = "DIR", default_value = "target/dev-cert")]
    out_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match write(&args.out_dir) {
        Ok((cert, key)) => {
            println!("wrote {} and {}", cert.display(), key.display());
            println!(
                "serve with: --tls-cert {} --tls-key {}",
                cert.display(),
                key.display()
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: --out-dir {}: {why}", args.out_dir.display());
            ExitCode::from(2)
        }
    }
}

/// Generates the pair and writes it into `dir`; the paths written.
fn write(dir: &std::path::Path) -> Result<(PathBuf, PathBuf), String> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).map_err(|e| e.to_string())?;
    write_private(&key, &certified.signing_key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((cert, key))
}

/// Writes `contents` to a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
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
