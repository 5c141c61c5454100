//! Who may subscribe to and publish on which topics: JWT bearer tokens.
//!
//! With `--jwt-secret` (HS256) or `--jwt-public-key` (a PEM file: RS256 or ES256), every
//! stream needs a token, read from `Authorization: Bearer`, else the cookie `sse_token`, else
//! `?access_token=` (for clients that can neither set headers nor share cookies; it must
//! never reach a log line, so nothing here logs a request's URL or token). The rights are one
//! nested claim, as Mercure nests its `mercure` claim:
//!
//! ```json
//! {"exp": 1764590000, "sse": {"subscribe": ["news/*", "users/42"], "publish": ["users/42"]}}
//! ```
//!
//! A missing list grants nothing of its kind; `exp` is required and checked with no leeway
//! (the `jsonwebtoken` crate allows 60 s by default). The algorithm comes from the
//! configuration, never from the token's header: an HS256 token "signed" with an RSA public
//! key's bytes is the classic attack, and it is refused because the key only verifies the
//! algorithm it was configured for. The signature code is the `jsonwebtoken` crate's.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::reply::Reply;
use crate::request::RequestHead;
use crate::topic::Selector;

/// The cookie a browser carries its token in.
pub const TOKEN_COOKIE: &str = "sse_token";
/// The query parameter for clients that can neither set a header nor share a cookie.
pub const TOKEN_PARAM: &str = "access_token";

/// The key tokens are verified with, and the one algorithm it verifies.
#[derive(Clone)]
pub struct JwtKey {
    /// HS256, RS256 or ES256.
    algorithm: Algorithm,
    /// The secret or the public key.
    key: DecodingKey,
}

/// Never prints the key (a shared secret must not reach a log line).
impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKey({:?})", self.algorithm)
    }
}

impl JwtKey {
    /// An HS256 key from `--jwt-secret`.
    pub fn secret(secret: &str) -> Result<Self, String> {
        if secret.len() < 16 {
            return Err(
                "must be at least 16 characters (an HS256 secret is only as strong as its length)"
                    .to_owned(),
            );
        }
        Ok(JwtKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.as_bytes()),
        })
    }

    /// An RS256 or ES256 key from the PEM file at `path` (`--jwt-public-key`).
    pub fn public_key(path: &Path) -> Result<Self, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            return Ok(JwtKey {
                algorithm: Algorithm::ES256,
                key,
            });
        }
        DecodingKey::from_rsa_pem(&pem)
            .map(|key| JwtKey {
                algorithm: Algorithm::RS256,
                key,
            })
            .map_err(|_| {
                format!(
                    "{} is not an RSA or EC (P-256) public key in PEM form",
                    path.display()
                )
            })
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `token`'s signature, algorithm and expiry, and reads its rights; the contract's
    /// 401 otherwise.
    pub fn verify(&self, token: &str) -> Result<Grant, Reply> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &validation)
            .map_err(|error| unauthorized(&format!("invalid token: {}", describe(&error))))?;
        let claims = data.claims;
        let rights = claims.sse.unwrap_or_default();
        let parse = |list: Option<Vec<String>>| -> Result<Vec<Selector>, Reply> {
            list.unwrap_or_default()
                .iter()
                .map(|text| {
                    Selector::parse(text)
                        .map_err(|error| unauthorized(&format!("invalid token claim: {error}")))
                })
                .collect()
        };
        Ok(Grant {
            subscribe: parse(rights.subscribe)?,
            publish: parse(rights.publish)?,
            expires: UNIX_EPOCH + Duration::from_secs(claims.exp),
        })
    }
}

/// What a verified token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The selectors it may subscribe to (empty: none).
    pub subscribe: Vec<Selector>,
    /// The selectors it may publish on (empty: none).
    pub publish: Vec<Selector>,
    /// Its `exp`: a stream it opened ends then.
    pub expires: SystemTime,
}

impl Grant {
    /// Whether the grant covers `asked` for subscribing.
    pub fn may_subscribe(&self, asked: &Selector) -> bool {
        self.subscribe.iter().any(|granted| granted.covers(asked))
    }

    /// Whether the grant covers `asked` for publishing.
    pub fn may_publish(&self, asked: &Selector) -> bool {
        self.publish.iter().any(|granted| granted.covers(asked))
    }
}

/// A token's claims, as this server reads them.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Expiry, seconds since the Unix epoch; required.
    exp: u64,
    /// The rights; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sse: Option<Rights>,
}

/// The `sse` claim.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Rights {
    /// Selectors the holder may subscribe to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subscribe: Option<Vec<String>>,
    /// Selectors the holder may publish on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    publish: Option<Vec<String>>,
}

/// The contract's 401: JSON, with `WWW-Authenticate: Bearer`.
pub fn unauthorized(why: &str) -> Reply {
    Reply::error(401, why).with_header("www-authenticate", "Bearer")
}

/// The contract's 403 for a selector the token does not grant.
pub fn forbidden(what: &str, selector: &Selector) -> Reply {
    Reply::error(403, format!("the token does not allow {what} {selector}"))
}

/// A verification failure in words that say what to fix, without the token.
fn describe(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "it has expired",
        ErrorKind::InvalidSignature => "its signature does not match",
        ErrorKind::InvalidAlgorithm => "it is not signed with the server's algorithm",
        ErrorKind::MissingRequiredClaim(_) => "it has no exp claim",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "it is not a JWT",
        _ => "it cannot be verified",
    }
}

/// The token a request carries: `Authorization: Bearer`, else the `sse_token` cookie, else
/// `?access_token=`.
pub fn token_of<'a>(request: &RequestHead<'a>) -> Option<String> {
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let cookie = || {
        request.header("cookie").and_then(|cookies| {
            cookies.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == TOKEN_COOKIE && !value.is_empty()).then(|| value.to_owned())
            })
        })
    };
    bearer
        .map(str::to_owned)
        .or_else(cookie)
        .or_else(|| request.query_param(TOKEN_PARAM).filter(|t| !t.is_empty()))
}

/// How `sse-token` (and the tests) sign a token.
pub enum SigningKey {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 or ES256 with a private key in PEM form.
    Private {
        /// The algorithm the key is for.
        algorithm: Algorithm,
        /// The key.
        key: EncodingKey,
    },
}

impl SigningKey {
    /// A private key from PEM text: EC (ES256) or RSA (RS256).
    pub fn private_pem(pem: &[u8]) -> Result<Self, String> {
        if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            return Ok(SigningKey::Private {
                algorithm: Algorithm::ES256,
                key,
            });
        }
        EncodingKey::from_rsa_pem(pem)
            .map(|key| SigningKey::Private {
                algorithm: Algorithm::RS256,
                key,
            })
            .map_err(|_| "not an RSA or EC (P-256) private key in PEM form".to_owned())
    }

    /// A token granting `subscribe` and `publish` (selectors, or no list at all when
    /// `None`), expiring at `expires` (seconds since the Unix epoch).
    pub fn mint(
        &self,
        subscribe: Option<Vec<String>>,
        publish: Option<Vec<String>>,
        expires: u64,
    ) -> Result<String, String> {
        let claims = Claims {
            exp: expires,
            sse: Some(Rights { subscribe, publish }),
        };
        let (header, key) = match self {
            SigningKey::Secret(secret) => (
                Header::new(Algorithm::HS256),
                EncodingKey::from_secret(secret.as_bytes()),
            ),
            SigningKey::Private { algorithm, key } => (Header::new(*algorithm), key.clone()),
        };
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Headers;

    const SECRET: &str = "a-test-secret-of-some-length";

    fn key() -> JwtKey {
        JwtKey::secret(SECRET).expect("long enough")
    }

    fn signer() -> SigningKey {
        SigningKey::Secret(SECRET.to_owned())
    }

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn a_valid_token_grants_its_lists() {
        let token = signer()
            .mint(list(&["news/*"]), None, now_secs() + 60)
            .expect("signed");
        let grant = key().verify(&token).map_err(|r| r.body).expect("valid");
        let asked = Selector::parse("news/eu").expect("a selector");
        assert!(grant.may_subscribe(&asked));
        assert!(!grant.may_publish(&asked), "no publish list, no publishing");
    }

    #[test]
    fn expired_unsigned_and_exp_less_tokens_are_401() {
        let expired = signer()
            .mint(list(&["*"]), None, now_secs() - 1)
            .expect("signed");
        let other = SigningKey::Secret("another-secret-entirely".into())
            .mint(list(&["*"]), None, now_secs() + 60)
            .expect("signed");
        let header = Header::new(Algorithm::HS256);
        let no_exp = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sse": {"subscribe": ["*"]}}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signed");
        for token in [expired, other, no_exp, "not.a.jwt".to_owned()] {
            let refused = key().verify(&token).expect_err("refused");
            assert_eq!(refused.status, 401, "{token}");
            assert!(
                refused
                    .headers
                    .contains(&("www-authenticate", "Bearer".into()))
            );
            assert!(!refused.body.contains(&token), "the token is not echoed");
        }
    }

    #[test]
    fn public_keys_verify_their_own_algorithm_only() {
        let pair = rcgen::KeyPair::generate().expect("a P-256 key pair");
        let dir = std::env::temp_dir().join(format!("sse-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("public.pem");
        std::fs::write(&path, pair.public_key_pem()).expect("written");
        let public = JwtKey::public_key(&path).expect("an EC public key");
        let _ = std::fs::remove_dir_all(dir);
        assert_eq!(public.algorithm(), Algorithm::ES256);
        let signer = SigningKey::private_pem(pair.serialize_pem().as_bytes()).expect("a key");
        let genuine = signer
            .mint(list(&["*"]), None, now_secs() + 60)
            .expect("signed");
        assert!(
            public.verify(&genuine).is_ok(),
            "an ES256 token of this key"
        );
        // The classic attack: HS256 "signed" with the public key's own bytes.
        let forged = SigningKey::Secret(pair.public_key_pem())
            .mint(list(&["*"]), list(&["*"]), now_secs() + 60)
            .expect("signed");
        assert_eq!(public.verify(&forged).expect_err("refused").status, 401);
    }

    /// A request with one header (or none) and a query.
    struct One(Option<(&'static str, &'static str)>);

    impl Headers for One {
        fn raw(&self, name: &str) -> Option<&[u8]> {
            self.0
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn the_token_comes_from_the_header_else_the_cookie_else_the_query() {
        let token = |header, query| token_of(&RequestHead::new(&One(header), query));
        assert_eq!(
            token(Some(("authorization", "Bearer h")), Some("access_token=q")).as_deref(),
            Some("h")
        );
        assert_eq!(
            token(
                Some(("cookie", "a=1; sse_token=c; b=2")),
                Some("access_token=q")
            )
            .as_deref(),
            Some("c")
        );
        assert_eq!(
            token(None, Some("x=1&access_token=q")).as_deref(),
            Some("q")
        );
        assert_eq!(token(Some(("authorization", "Basic h")), None), None);
        assert_eq!(token(Some(("cookie", "sse_token=")), None), None);
        assert_eq!(token(None, None), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKey::secret("short").is_err());
        assert!(
            format!("{:?}", key()).contains("HS256") && !format!("{:?}", key()).contains(SECRET)
        );
    }
}
