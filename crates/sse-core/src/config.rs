//! The flags every variant shares, each with an environment fallback.
//!
//! Values are checked as they are parsed, so a bad one stops the server at start with
//! clap's message naming the flag (`invalid value '0' for '--history <EVENTS>'`), and the
//! rest of the code can take the values as given.

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

use crate::auth::JwtKey;
use crate::tls::Tls;

/// Server configuration, shared by every variant.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about = "An SSE server that honours the sse-idioms contract (docs/CONTRACT.md)."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SSE_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on; 0 picks a free one (the bound address is printed on stdout).
    #[arg(long, env = "SSE_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Demo ticker period in milliseconds; 0 turns the ticker off.
    #[arg(long, env = "SSE_TICK_MS", value_name = "MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub tick_ms: u64,

    /// Events kept for replay after Last-Event-ID.
    #[arg(long, env = "SSE_HISTORY", value_name = "EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub history: u32,

    /// Seconds of silence before a `: keep-alive` comment is sent (fractions allowed).
    #[arg(long = "keepalive-secs", env = "SSE_KEEPALIVE_SECS", value_name = "SECS",
          default_value = "15", value_parser = parse_keepalive)]
    pub keepalive: Duration,

    /// Reconnection delay sent to clients in the `retry:` field, in milliseconds.
    #[arg(long, env = "SSE_RETRY_MS", value_name = "MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub retry_ms: u64,

    /// Spread of each connection's `retry:` (and of a 503's Retry-After): drawn uniformly
    /// from the base times [1 - J, 1 + J], so that clients cut off together do not all come
    /// back together; 0 sends the base exactly.
    #[arg(long, env = "SSE_RETRY_JITTER", value_name = "J", default_value_t = 0.2,
          value_parser = parse_jitter)]
    pub retry_jitter: f64,

    /// Seconds a subscriber's connection may hold bytes its peer has not acknowledged (its
    /// receive window closed while data waits) before it is cut (fractions allowed).
    #[arg(long = "write-timeout-secs", env = "SSE_WRITE_TIMEOUT_SECS", value_name = "SECS",
          default_value = "30", value_parser = parse_write_timeout)]
    pub write_timeout: Duration,

    /// Events a subscriber may fall behind before it is disconnected (slow-consumer policy).
    #[arg(long, env = "SSE_QUEUE", value_name = "EVENTS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub queue: u32,

    /// Origins allowed to use the API from a browser (comma-separated, e.g. http://localhost:8080).
    #[arg(long, env = "SSE_ALLOWED_ORIGINS", value_name = "ORIGINS", value_delimiter = ',',
          value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

    /// Token required as `Authorization: Bearer <token>` on POST /publish; unset means open.
    #[arg(long, env = "SSE_PUBLISH_TOKEN", value_name = "TOKEN", value_parser = parse_token,
          hide_env_values = true)]
    pub publish_token: Option<String>,

    /// HS256 secret (at least 16 characters) for subscriber and publisher tokens (JWTs); with
    /// it, or with --jwt-public-key, every stream needs a token.
    #[arg(long, env = "SSE_JWT_SECRET", value_name = "SECRET", value_parser = SecretParser,
          hide_env_values = true, conflicts_with = "jwt_public_key")]
    pub jwt_secret: Option<JwtKey>,

    /// A public key in PEM form (RSA for RS256, P-256 for ES256) to verify tokens with,
    /// instead of a shared secret.
    #[arg(long, env = "SSE_JWT_PUBLIC_KEY", value_name = "PATH",
          value_parser = parse_public_key)]
    pub jwt_public_key: Option<JwtKey>,

    /// A certificate chain in PEM form: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with it
    /// and --tls-key.
    #[arg(long, env = "SSE_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert, in PEM form.
    #[arg(long, env = "SSE_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// The loaded certificate, when --tls-cert and --tls-key are given (see
    /// [`Config::parse_checked`]).
    #[arg(skip)]
    pub tls: Option<Tls>,

    /// Where events live: `memory` (this process only) or `redis` (one log shared by every
    /// instance with the same --redis-url and --redis-prefix, outliving restarts).
    #[arg(long, env = "SSE_HUB", value_enum, default_value_t = HubKind::Memory)]
    pub hub: HubKind,

    /// The Redis server for --hub redis: redis://[:password@]host[:port][/db], or
    /// unix:///path/to/socket.
    #[arg(long, env = "SSE_REDIS_URL", value_name = "URL", default_value = "redis://127.0.0.1:6379",
          value_parser = RedisUrlParser, hide_env_values = true)]
    pub redis_url: RedisUrl,

    /// Names the shared log in Redis: instances with one prefix share one log; another
    /// prefix is an independent log in the same Redis.
    #[arg(long, env = "SSE_REDIS_PREFIX", value_name = "NAME", default_value = "sse",
          value_parser = parse_prefix)]
    pub redis_prefix: String,

    /// Streams served at once; past it GET /stream answers 503 with Retry-After.
    #[arg(long, env = "SSE_MAX_CLIENTS", value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_clients: u32,

    /// Threads that serve connections; by default one per core this process may use. When
    /// several instances share a host, give each its share of the cores.
    #[arg(long, env = "SSE_WORKERS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

impl Config {
    /// Parses `args` (the program name first) and checks what one flag cannot check alone:
    /// the TLS files are read, and the key must be the certificate's. The error names the
    /// flag at fault, as clap's own do.
    pub fn parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut config = Config::try_parse_from(args)?;
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            let tls = Tls::load(cert, key).map_err(|why| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value for {why}\n"),
                )
            })?;
            config.tls = Some(tls);
        }
        Ok(config)
    }

    /// The defaults, as if started with no flags and no environment.
    pub fn defaults() -> Self {
        // The empty argument list always parses: every flag has a valid default.
        Config::try_parse_from(["sse"]).expect("defaults are valid")
    }

    /// The `retry:` delay.
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms)
    }

    /// One connection's `retry:` delay: `--retry-ms` spread by `--retry-jitter`, so that
    /// clients cut off at the same moment (a restart) come back spread over time.
    pub fn jittered_retry(&self) -> Duration {
        let spread = 1.0 + self.retry_jitter * (2.0 * fastrand::f64() - 1.0);
        Duration::from_millis((self.retry_ms as f64 * spread).round() as u64)
    }

    /// The key tokens are verified with, if the server requires tokens.
    pub fn jwt(&self) -> Option<&JwtKey> {
        self.jwt_secret.as_ref().or(self.jwt_public_key.as_ref())
    }

    /// The ticker period, if the ticker is on.
    pub fn tick(&self) -> Option<Duration> {
        (self.tick_ms > 0).then(|| Duration::from_millis(self.tick_ms))
    }
}

/// Parses `--jwt-secret` without ever quoting it: clap quotes the raw value in the errors
/// of function parsers, and this value is a secret.
#[derive(Clone)]
struct SecretParser;

impl clap::builder::TypedValueParser for SecretParser {
    type Value = JwtKey;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<JwtKey, clap::Error> {
        value
            .to_str()
            .ok_or_else(|| "it is not UTF-8".to_owned())
            .and_then(JwtKey::secret)
            .map_err(|why| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value for '--jwt-secret <SECRET>': {why}\n"),
                )
            })
    }
}

/// `--jwt-public-key` names a readable PEM file holding an RSA or P-256 public key.
fn parse_public_key(value: &str) -> Result<JwtKey, String> {
    JwtKey::public_key(std::path::Path::new(value))
}

/// Where events live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HubKind {
    /// In this process: lost on restart, not shared between instances.
    Memory,
    /// A Redis Stream: shared by instances, kept across restarts.
    Redis,
}

/// A Redis URL that parsed, kept with a form that is safe to print.
#[derive(Clone)]
pub struct RedisUrl {
    /// The URL as given, password included: for connecting only.
    url: String,
    /// The URL with any password replaced by `***`: for messages and logs.
    shown: String,
}

impl RedisUrl {
    /// The URL to connect with (it may hold a password: never print it).
    pub fn secret(&self) -> &str {
        &self.url
    }
}

/// Prints the URL without its password, so that no log line or error message carries it.
impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Like `Display`: a `Config` printed with `{:?}` must not leak the password either.
impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisUrl({})", self.shown)
    }
}

/// Parses `--redis-url`: a URL the Redis client can parse (`redis://`, `rediss://`,
/// `unix://`, `redis+unix://`); the check connects to nothing.
///
/// A parser of its own rather than a function, because clap quotes the raw value in the
/// errors of function parsers, and the raw value may hold a password.
#[derive(Clone)]
struct RedisUrlParser;

impl clap::builder::TypedValueParser for RedisUrlParser {
    type Value = RedisUrl;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<RedisUrl, clap::Error> {
        let refuse = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '--redis-url <URL>': {why}\n"),
            )
        };
        let value = value
            .to_str()
            .ok_or_else(|| refuse("it is not UTF-8".to_owned()))?;
        let shown = redact_password(value);
        match redis::Client::open(value) {
            Ok(_) => Ok(RedisUrl {
                url: value.to_owned(),
                shown,
            }),
            Err(error) => Err(refuse(format!(
                "{shown:?} is not a Redis URL like redis://host:6379 or unix:///path ({error})"
            ))),
        }
    }
}

/// `scheme://user:password@host` becomes `scheme://user:***@host`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let (credentials, host) = rest[..authority_end].split_at(at);
            let user = credentials.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// A prefix goes into Redis key names (`{prefix}:log`): 1 to 64 of `A-Za-z0-9_.:-`, so that
/// it cannot break the hash-tag braces around it.
fn parse_prefix(value: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
    if (1..=64).contains(&value.len()) && value.chars().all(allowed) {
        Ok(value.to_owned())
    } else {
        Err("must be 1 to 64 of A-Z, a-z, 0-9 and _ . : -".to_owned())
    }
}

/// Keep-alive must be positive (a zero interval would spin) and at most an hour.
fn parse_keepalive(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if secs.is_finite() && (0.01..=3600.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err("must be between 0.01 and 3600 seconds".to_owned())
    }
}

/// The write timeout becomes `TCP_USER_TIMEOUT`, in whole milliseconds: at least 0.1 s
/// (shorter would cut healthy clients on a congested link), at most an hour.
fn parse_write_timeout(value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if secs.is_finite() && (0.1..=3600.0).contains(&secs) {
        Ok(Duration::from_millis((secs * 1000.0).round() as u64))
    } else {
        Err("must be between 0.1 and 3600 seconds".to_owned())
    }
}

/// Jitter is a fraction of the delay: from 0 (exact) up to, not including, 1 (which could
/// draw a zero delay).
fn parse_jitter(value: &str) -> Result<f64, String> {
    let jitter: f64 = value
        .parse()
        .map_err(|_| format!("{value:?} is not a fraction such as 0.2"))?;
    if (0.0..1.0).contains(&jitter) {
        Ok(jitter)
    } else {
        Err("must be at least 0 and below 1".to_owned())
    }
}

/// An origin is `scheme://host[:port]`, exactly as a browser sends it in `Origin`.
fn parse_origin(value: &str) -> Result<String, String> {
    let origin = value.trim().trim_end_matches('/');
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("{value:?} is not an origin like http://host:port"))?;
    if origin == "*" || rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*']) {
        return Err(format!(
            "{value:?} is not an origin like http://host:port (wildcards cannot carry credentials)"
        ));
    }
    Ok(origin.to_ascii_lowercase())
}

/// An empty token would make `Authorization: Bearer ` pass, so it is refused.
fn parse_token(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("must not be empty (leave the flag out for an open publish endpoint)".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::try_parse_from(std::iter::once("sse").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let config = Config::defaults();
        assert_eq!(config.port, 3000);
        assert_eq!(config.tick(), Some(Duration::from_millis(2000)));
        assert_eq!(config.history, 1000);
        assert_eq!(config.keepalive, Duration::from_secs(15));
        assert_eq!(config.retry(), Duration::from_millis(3000));
        assert_eq!(config.retry_jitter, 0.2);
        assert_eq!(config.write_timeout, Duration::from_secs(30));
        assert!(config.allowed_origins.is_empty() && config.publish_token.is_none());
        assert_eq!(config.workers, None, "one worker per core unless told");
        assert_eq!(parse(&["--workers", "1"]).map(|c| c.workers), Ok(Some(1)));
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--history", "0"][..], "--history"),
            (&["--port", "http"], "--port"),
            (&["--keepalive-secs", "0"], "--keepalive-secs"),
            (&["--queue=0"], "--queue"),
            (&["--allowed-origins", "*"], "--allowed-origins"),
            (
                &["--allowed-origins", "http://a.test/path"],
                "--allowed-origins",
            ),
            (&["--publish-token", ""], "--publish-token"),
            (&["--max-clients", "0"], "--max-clients"),
            (&["--workers", "0"], "--workers"),
            (&["--workers", "many"], "--workers"),
            (&["--retry-jitter", "1"], "--retry-jitter"),
            (&["--retry-jitter=-0.1"], "--retry-jitter"),
            (&["--write-timeout-secs", "0"], "--write-timeout-secs"),
            (&["--write-timeout-secs", "soon"], "--write-timeout-secs"),
            (&["--hub", "postgres"], "--hub"),
            (&["--redis-url", "http://127.0.0.1:6379"], "--redis-url"),
            (&["--redis-prefix", "a{b}"], "--redis-prefix"),
            (&["--jwt-secret", "short"], "--jwt-secret"),
            (
                &["--jwt-public-key", "/no/such/key.pem"],
                "--jwt-public-key",
            ),
        ] {
            let error = parse(args).expect_err("refused");
            assert!(error.contains(flag), "{args:?}: {error}");
        }
    }

    #[test]
    fn redis_passwords_never_reach_a_message() {
        let config = parse(&[
            "--hub",
            "redis",
            "--redis-url",
            "redis://:hunter2@db:6380/1",
        ])
        .expect("valid");
        assert_eq!(config.hub, HubKind::Redis);
        assert_eq!(config.redis_url.secret(), "redis://:hunter2@db:6380/1");
        assert_eq!(config.redis_url.to_string(), "redis://:***@db:6380/1");
        assert!(!format!("{config:?}").contains("hunter2"));
        let user = redact_password("redis://app:s3cret@db");
        assert_eq!(user, "redis://app:***@db");
        assert_eq!(
            redact_password("unix:///tmp/redis.sock"),
            "unix:///tmp/redis.sock"
        );
        let refused = parse(&["--redis-url", "redis://:hunter2@db:notaport"]).expect_err("bad");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn jittered_retries_stay_in_their_band_and_spread() {
        let config = parse(&["--retry-ms", "1000", "--retry-jitter", "0.2"]).expect("valid");
        let drawn: Vec<u128> = (0..200)
            .map(|_| config.jittered_retry().as_millis())
            .collect();
        assert!(
            drawn.iter().all(|ms| (800..=1200).contains(ms)),
            "{drawn:?}"
        );
        let distinct: std::collections::BTreeSet<_> = drawn.iter().collect();
        assert!(distinct.len() > 50, "spread over the band: {distinct:?}");
        let exact = parse(&["--retry-ms", "1000", "--retry-jitter", "0"]).expect("valid");
        assert!((0..50).all(|_| exact.jittered_retry() == Duration::from_millis(1000)));
    }

    #[test]
    fn origins_are_a_comma_list_normalised_like_browsers_send_them() {
        let config =
            parse(&["--allowed-origins", "http://A.test:8080/,https://b.test"]).expect("valid");
        assert_eq!(
            config.allowed_origins,
            ["http://a.test:8080", "https://b.test"]
        );
        let fractional =
            parse(&["--keepalive-secs", "0.25", "--write-timeout-secs", "1.5"]).expect("valid");
        assert_eq!(fractional.keepalive, Duration::from_millis(250));
        assert_eq!(fractional.write_timeout, Duration::from_millis(1500));
    }
}
