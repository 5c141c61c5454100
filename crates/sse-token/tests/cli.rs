//! `sse-token` run as a user runs it: the token it prints verifies with the server's key and
//! grants exactly what was asked; bad flags are refused naming the flag.

use std::process::Command;

use sse_core::auth::JwtKey;
use sse_core::topic::Selector;

const SECRET: &str = "sse-token-test-secret-0123456789";

fn sse_token(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sse-token"))
        .args(args)
        .env_remove("SSE_JWT_SECRET")
        .output()
        .expect("sse-token runs")
}

#[test]
fn a_minted_token_grants_what_was_asked_and_nothing_else() {
    let output = sse_token(&[
        "--secret",
        SECRET,
        "--subscribe",
        "news/*",
        "--publish",
        "users/42",
        "--ttl",
        "5m",
    ]);
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("UTF-8");
    let grant = JwtKey::secret(SECRET)
        .expect("a key")
        .verify(token.trim())
        .map_err(|reply| reply.body)
        .expect("the server's key verifies it");
    let selector = |text| Selector::parse(text).expect("a selector");
    assert!(grant.may_subscribe(&selector("news/eu")));
    assert!(!grant.may_subscribe(&selector("users/42")));
    assert!(grant.may_publish(&selector("users/42")));
    assert!(!grant.may_publish(&selector("news/eu")));
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    for (args, flag) in [
        (&["--subscribe", "a"][..], "--secret"),
        (&["--secret", SECRET, "--subscribe", "a b"], "--subscribe"),
        (&["--secret", SECRET, "--ttl", "soon"], "--ttl"),
        (&["--private-key", "/no/such.pem"], "--private-key"),
    ] {
        let output = sse_token(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}
