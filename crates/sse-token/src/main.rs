//! `sse-token`: mints a token (a JWT) that an sse-idioms server started with `--jwt-secret`
//! or `--jwt-public-key` accepts, for development and tests.
//!
//! ```sh
//! sse-token --secret "$SECRET" --subscribe 'news/*' --subscribe users/42 --ttl 1h
//! sse-token --private-key es256.pem --publish users/42 --ttl 10m
//! ```
//!
//! The token goes to stdout and nothing else does, so it can be captured with `$(...)`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sse_core::auth::{SigningKey, now_secs};
use sse_core::topic::Selector;

/// Mints a token for an sse-idioms server: `{"exp", "sse": {"subscribe", "publish"}}`.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Example:\n  sse-token --secret \"$SECRET\" --subscribe 'news/*' --ttl 1h"
)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["secret", "private_key"])))]
struct Args {
    /// The server's --jwt-secret (HS256).
    #[arg(long, env = "SSE_JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A private key in PEM form (P-256 for ES256, RSA for RS256) whose public half the server
    /// has as --jwt-public-key.
    #[arg(long, value_name = "PEM")]
    private_key: Option<PathBuf>,
    /// A selector the token may subscribe to (a topic, PREFIX/* or *); repeatable.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector)]
    subscribe: Vec<String>,
    /// A selector the token may publish on; repeatable.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector)]
    publish: Vec<String>,
    /// How long the token is valid, e.g. 30s, 10m, 1h.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// A selector the servers accept.
fn parse_selector(value: &str) -> Result<String, String> {
    Selector::parse(value).map(|_| value.to_owned())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let key = match (&args.secret, &args.private_key) {
        (Some(secret), _) => SigningKey::Secret(secret.clone()),
        (None, Some(path)) => match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| SigningKey::private_pem(&pem))
        {
            Ok(key) => key,
            Err(error) => {
                eprintln!("error: --private-key {}: {error}", path.display());
                return ExitCode::from(2);
            }
        },
        // clap's group requires one of the two.
        (None, None) => return ExitCode::from(2),
    };
    let list = |selectors: Vec<String>| (!selectors.is_empty()).then_some(selectors);
    let expires = now_secs() + args.ttl.as_secs().max(1);
    match key.mint(list(args.subscribe), list(args.publish), expires) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot sign the token: {error}");
            ExitCode::FAILURE
        }
    }
}
