//! `dev-cert` as a user runs it: it writes a certificate and key that a server loads, the
//! key readable by its owner only, and names `--out-dir` when it cannot write there.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

#[test]
fn writes_a_pair_a_server_loads_with_a_private_key() {
    let dir = std::env::temp_dir().join(format!("sse-dev-cert-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_dev-cert"))
        .arg("--out-dir")
        .arg(&dir)
        .output()
        .expect("dev-cert runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("--tls-cert"), "{stdout}");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let loaded = sse_core::tls::Tls::load(&cert, &key);
    let mode = std::fs::metadata(&key).map(|m| m.permissions().mode() & 0o777);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(loaded.is_ok(), "{loaded:?}");
    assert_eq!(mode.ok(), Some(0o600));
}

#[test]
fn an_unwritable_directory_is_refused_naming_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_dev-cert"))
        .args(["--out-dir", "/proc/no-such-dir"])
        .output()
        .expect("dev-cert runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--out-dir"), "{stderr}");
}
