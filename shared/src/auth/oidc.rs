//! End users authenticated by an OpenID Connect ID token, checked against the configured
//! issuer's published keys (JWKS). The keys are cached and fetched again when a token names a key
//! the cache lacks, so the issuer can rotate them; one fetch runs at a time, and a failed one is
//! remembered for a few seconds.

use std::sync::Mutex;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::now_ms;

/// Why an ID token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a token we can read, or its signature is not the issuer's.
    #[error(
        "the ID token is malformed, signed with an unknown key, or its signature does not match"
    )]
    Invalid,
    /// A correctly signed token that is not accepted here: wrong issuer or audience, outside its
    /// validity times, or missing a required claim.
    #[error("the ID token was not issued for this service: {0}")]
    Rejected(String),
    /// The issuer's keys could not be fetched to check the token.
    #[error("the identity provider's keys could not be fetched: {0}")]
    Unavailable(String),
}

/// The identity an ID token proves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndUser {
    /// The user's subject id at the issuer, which chatfn uses as the owner of their chats.
    pub sub: String,
}

struct CachedKeys {
    keys: JwkSet,
    fetched_at_ms: u64,
}

/// Checks end users' OpenID Connect ID tokens against one issuer, with its keys cached.
pub struct OidcVerifier {
    issuer: String,
    audience: Option<String>,
    client: reqwest::Client,
    cache: Mutex<Option<CachedKeys>>,
    /// One fetch at a time: callers that need the keys while a fetch is under way wait for its
    /// outcome instead of each fetching them.
    fetching: tokio::sync::Mutex<()>,
    /// The last failed fetch (when, and why), answered to every caller for a while, so an issuer
    /// that is down is not asked again for each request.
    failure: Mutex<Option<(u64, String)>>,
}

/// Keys are trusted this long before a refresh.
const KEYS_TTL_MS: u64 = 10 * 60 * 1000;
/// An unknown key id refetches at most this often, so bad tokens cannot hammer the issuer.
const REFETCH_MIN_INTERVAL_MS: u64 = 30 * 1000;
/// A failed fetch is not tried again for this long.
const FAILURE_TTL_MS: u64 = 5 * 1000;
/// Only asymmetric algorithms: a symmetric one would let anyone who reads the JWKS sign.
const ALLOWED: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl OidcVerifier {
    /// A verifier for tokens of `issuer` (trailing `/` ignored), for `audience` when one is given.
    /// Fetches no keys until the first token comes.
    pub fn new(issuer: impl Into<String>, audience: Option<String>) -> Self {
        let builder = reqwest::Client::builder();
        // The Worker's fetch has no timeouts to set; workerd bounds a subrequest itself.
        #[cfg(not(target_arch = "wasm32"))]
        let builder = builder
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(10));
        let client = builder.build().unwrap_or_default();
        OidcVerifier {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience,
            client,
            cache: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            failure: Mutex::new(None),
        }
    }

    /// The issuer tokens must come from, without a trailing `/`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Checks the token's signature, issuer, audience and times; returns who it names.
    pub async fn verify(&self, token: &str) -> Result<EndUser, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::Invalid)?;
        // RFC 7515: `crit` names extensions the verifier must understand; none are understood.
        if !ALLOWED.contains(&header.alg) || header.crit.is_some() {
            return Err(OidcError::Invalid);
        }
        let key = match self.cached_key(header.kid.as_deref()) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.cached_key(header.kid.as_deref())
                    .ok_or(OidcError::Invalid)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.issuer.as_str(), &format!("{}/", self.issuer)]);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<EndUser>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                match error.kind() {
                    ErrorKind::ExpiredSignature => OidcError::Rejected("it has expired".into()),
                    ErrorKind::ImmatureSignature => {
                        OidcError::Rejected("it is not valid yet".into())
                    }
                    ErrorKind::InvalidIssuer => OidcError::Rejected("wrong issuer".into()),
                    ErrorKind::InvalidAudience => OidcError::Rejected("wrong audience".into()),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        OidcError::Rejected(format!("it has no `{claim}`"))
                    }
                    _ => OidcError::Invalid,
                }
            })
    }

    fn cached_key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let cached = cache.as_ref()?;
        if now_ms().saturating_sub(cached.fetched_at_ms) > KEYS_TTL_MS {
            return None;
        }
        let jwk = match kid {
            Some(kid) => cached.keys.find(kid)?,
            // Without a key id, only an issuer with a single key is unambiguous.
            None if cached.keys.keys.len() == 1 => cached.keys.keys.first()?,
            None => return None,
        };
        DecodingKey::from_jwk(jwk).ok()
    }

    async fn refresh(&self) -> Result<(), OidcError> {
        let _only_fetch = self.fetching.lock().await;
        // Checked once it is this caller's turn: a fetch that ran meanwhile answers it too.
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cached) = cache.as_ref() {
                let age = now_ms().saturating_sub(cached.fetched_at_ms);
                // Fresh keys that lack the wanted one: the token is bad, not the cache.
                if age < REFETCH_MIN_INTERVAL_MS {
                    return Ok(());
                }
            }
        }
        {
            let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, reason)) = failure.as_ref()
                && now_ms().saturating_sub(*at) < FAILURE_TTL_MS
            {
                return Err(OidcError::Unavailable(reason.clone()));
            }
        }
        let fetched = self.fetch_keys().await;
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok(keys) => {
                *failure = None;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                *cache = Some(CachedKeys {
                    keys,
                    fetched_at_ms: now_ms(),
                });
                Ok(())
            }
            Err(error) => {
                if let OidcError::Unavailable(reason) = &error {
                    *failure = Some((now_ms(), reason.clone()));
                }
                Err(error)
            }
        }
    }

    async fn fetch_keys(&self) -> Result<JwkSet, OidcError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let discovery_url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        self.get_json(&discovery.jwks_uri).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let request = self.client.get(url);
        let bytes = crate::runtime::sendable(async move {
            let response = request
                .send()
                .await
                .map_err(|e| OidcError::Unavailable(format!("{url}: {e}")))?;
            if !response.status().is_success() {
                return Err(OidcError::Unavailable(format!(
                    "{url} answered {}",
                    response.status()
                )));
            }
            response
                .bytes()
                .await
                .map_err(|e| OidcError::Unavailable(format!("{url}: {e}")))
        })
        .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| OidcError::Unavailable(format!("{url} is not what was expected: {e}")))
    }
}
