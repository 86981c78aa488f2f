//! Session-scoped tokens: HS256 JWTs in the shape Trigger.dev's SDK signs, so the tokens its
//! `auth.createPublicToken` makes locally and the ones chatfn mints are interchangeable.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::SecretKeys;

/// What a token lets its bearer do with one chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read the chat: its messages and its output stream.
    Read,
    /// Write to the chat: send messages, stop turns, close the session.
    Write,
}

/// The scope string for an access to one chat: `read:sessions:{chatId}`.
pub fn scope(access: Access, chat_id: &str) -> String {
    match access {
        Access::Read => format!("read:sessions:{chat_id}"),
        Access::Write => format!("write:sessions:{chat_id}"),
    }
}

/// The claims of a session token (a JWT in the shape Trigger.dev's SDK signs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The environment (or, with end-user auth, the owner) the token was minted for.
    #[serde(default)]
    pub sub: String,
    /// A public token, safe to hand to a browser (`pub` on the wire).
    #[serde(rename = "pub", default)]
    pub public: bool,
    /// What the token grants, as `read:sessions:{chatId}` / `write:sessions:{chatId}` strings.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, in seconds since the Unix epoch, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl SessionClaims {
    /// Whether the token grants `access` to `chat_id`.
    pub fn allows(&self, access: Access, chat_id: &str) -> bool {
        let wanted = scope(access, chat_id);
        self.scopes.contains(&wanted)
    }
}

/// Why a session token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT we can read, or not signed with a live key.
    #[error("the token is malformed or its signature does not match")]
    Invalid,
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before its `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A valid token without the scope the request needs, which the variant holds.
    #[error("the token does not grant {0}")]
    MissingScope(String),
}

/// Mints and checks session tokens.
pub struct SessionToken;

impl SessionToken {
    /// Seconds a token is allowed to be early or late, for clocks that drift between hosts.
    const LEEWAY_SECONDS: u64 = 5;

    /// A token granting read and write on one chat for `ttl_seconds`.
    pub fn mint(
        keys: &SecretKeys,
        subject: &str,
        chat_id: &str,
        now_seconds: u64,
        ttl_seconds: u64,
    ) -> String {
        let scopes = vec![scope(Access::Read, chat_id), scope(Access::Write, chat_id)];
        Self::mint_with_scopes(keys, subject, scopes, now_seconds, ttl_seconds)
    }

    /// A token with exactly these scopes.
    pub fn mint_with_scopes(
        keys: &SecretKeys,
        subject: &str,
        scopes: Vec<String>,
        now_seconds: u64,
        ttl_seconds: u64,
    ) -> String {
        let claims = SessionClaims {
            sub: subject.to_owned(),
            public: true,
            scopes,
            iat: now_seconds,
            // A lifetime to the end of time is the caller's to ask for; it must not overflow.
            exp: now_seconds.saturating_add(ttl_seconds),
            nbf: None,
        };
        // The protected header is exactly `{"alg":"HS256"}`, as the Trigger SDK writes it.
        let header = Header {
            typ: None,
            ..Header::new(Algorithm::HS256)
        };
        let key = EncodingKey::from_secret(keys.signing_key().as_bytes());
        // HMAC signing of a serializable struct cannot fail.
        jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default()
    }

    /// Checks the signature against every live key, then the times, then the scope.
    pub fn verify(
        token: &str,
        keys: &SecretKeys,
        chat_id: &str,
        access: Access,
        now_seconds: u64,
    ) -> Result<SessionClaims, TokenError> {
        let claims = Self::authenticate(token, keys, now_seconds)?;
        if !claims.allows(access, chat_id) {
            return Err(TokenError::MissingScope(scope(access, chat_id)));
        }
        Ok(claims)
    }

    /// Checks the signature against every live key, then the times, but no scope: whether the
    /// token is one at all, before a request says which chat it wants.
    pub fn authenticate(
        token: &str,
        keys: &SecretKeys,
        now_seconds: u64,
    ) -> Result<SessionClaims, TokenError> {
        let claims = Self::decode(token, keys)?;
        // Checked: a validly signed `exp` near `u64::MAX` must not overflow; past it, the token
        // cannot have expired.
        if claims
            .exp
            .checked_add(Self::LEEWAY_SECONDS)
            .is_some_and(|end| end <= now_seconds)
        {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| {
            now_seconds
                .checked_add(Self::LEEWAY_SECONDS)
                .is_some_and(|latest| nbf > latest)
        }) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    fn decode(token: &str, keys: &SecretKeys) -> Result<SessionClaims, TokenError> {
        // RFC 7515: a `crit` header names extensions the verifier must understand, and this one
        // understands none.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.crit.is_some() {
            return Err(TokenError::Invalid);
        }
        // Times are checked by the caller with the host's clock: the library's own clock is
        // `SystemTime`, which some hosts lack.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        for key in keys.all().iter() {
            let key = DecodingKey::from_secret(key.as_bytes());
            if let Ok(data) = jsonwebtoken::decode::<SessionClaims>(token, &key, &validation) {
                return Ok(data.claims);
            }
        }
        Err(TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const NOW: u64 = 1_795_466_771;

    fn keys() -> SecretKeys {
        SecretKeys::parse("tr_dev_secret").expect("key")
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn hs256(header: &str, payload: &str, secret: &[u8]) -> String {
        let key = EncodingKey::from_secret(secret);
        let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
        format!("{message}.{signature}")
    }

    #[test]
    fn a_minted_token_opens_its_own_chat_only() {
        let token = SessionToken::mint(&keys(), "env_local", "chat-1", NOW, 3600);
        let claims =
            SessionToken::verify(&token, &keys(), "chat-1", Access::Write, NOW).expect("valid");
        assert_eq!(claims.sub, "env_local");
        assert!(claims.public);
        assert_eq!(
            SessionToken::verify(&token, &keys(), "chat-2", Access::Read, NOW),
            Err(TokenError::MissingScope("read:sessions:chat-2".into()))
        );
    }

    #[test]
    fn the_header_is_exactly_alg_hs256() {
        let token = SessionToken::mint(&keys(), "env", "c", NOW, 60);
        let header = token.split('.').next().expect("header");
        assert_eq!(header, b64(br#"{"alg":"HS256"}"#));
    }

    #[test]
    fn tokens_signed_like_the_trigger_sdk_verify() {
        let payload = format!(
            r#"{{"sub":"env_123","pub":true,"scopes":["read:sessions:chat-basic","write:sessions:chat-basic"],"iss":"https://id.trigger.dev","aud":"https://api.trigger.dev","exp":{},"iat":{NOW}}}"#,
            NOW + 3600
        );
        let token = hs256(r#"{"alg":"HS256"}"#, &payload, b"tr_dev_secret");
        SessionToken::verify(&token, &keys(), "chat-basic", Access::Read, NOW).expect("valid");
    }

    #[test]
    fn expired_and_early_tokens_are_rejected() {
        let token = SessionToken::mint(&keys(), "env", "c", NOW, 60);
        assert_eq!(
            SessionToken::verify(&token, &keys(), "c", Access::Read, NOW + 120),
            Err(TokenError::Expired)
        );
        let payload = format!(
            r#"{{"scopes":["read:sessions:c"],"iat":{NOW},"exp":{},"nbf":{}}}"#,
            NOW + 7200,
            NOW + 3600
        );
        let early = hs256(r#"{"alg":"HS256"}"#, &payload, b"tr_dev_secret");
        assert_eq!(
            SessionToken::verify(&early, &keys(), "c", Access::Read, NOW),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn times_at_the_edge_of_u64_do_not_overflow() {
        // Found by fuzzing: `exp + leeway` wrapped, so a token valid forever read as expired
        // (and a debug build panicked).
        let forever = format!(
            r#"{{"scopes":["read:sessions:c"],"iat":{NOW},"exp":{}}}"#,
            u64::MAX
        );
        let token = hs256(r#"{"alg":"HS256"}"#, &forever, b"tr_dev_secret");
        SessionToken::verify(&token, &keys(), "c", Access::Read, NOW).expect("valid");
        let late = format!(
            r#"{{"scopes":["read:sessions:c"],"iat":0,"exp":{},"nbf":{}}}"#,
            u64::MAX,
            u64::MAX
        );
        let token = hs256(r#"{"alg":"HS256"}"#, &late, b"tr_dev_secret");
        assert_eq!(
            SessionToken::verify(&token, &keys(), "c", Access::Read, u64::MAX - 1),
            Ok(SessionClaims {
                sub: String::new(),
                public: false,
                scopes: vec!["read:sessions:c".into()],
                iat: 0,
                exp: u64::MAX,
                nbf: Some(u64::MAX),
            })
        );
        let minted = SessionToken::mint(&keys(), "env", "c", NOW, u64::MAX);
        let claims = SessionToken::verify(&minted, &keys(), "c", Access::Read, NOW).expect("valid");
        assert_eq!(claims.exp, u64::MAX);
    }

    #[test]
    fn forged_tokens_are_rejected() {
        let payload = format!(
            r#"{{"scopes":["read:sessions:c"],"iat":{NOW},"exp":{}}}"#,
            NOW + 60
        );
        let wrong_key = hs256(r#"{"alg":"HS256"}"#, &payload, b"another key");
        let alg_none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(payload.as_bytes()));
        let good = hs256(r#"{"alg":"HS256"}"#, &payload, b"tr_dev_secret");
        let mut parts: Vec<&str> = good.split('.').collect();
        let widened = b64(format!(
            r#"{{"scopes":["read:sessions:c","read:sessions:d"],"iat":{NOW},"exp":{}}}"#,
            NOW + 60
        )
        .as_bytes());
        parts[1] = &widened;
        let tampered = parts.join(".");
        let hs512 = {
            let key = EncodingKey::from_secret(b"tr_dev_secret");
            let claims: serde_json::Value = serde_json::from_str(&payload).expect("json");
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).expect("sign")
        };
        for token in [
            wrong_key,
            alg_none,
            tampered,
            hs512,
            "garbage".into(),
            String::new(),
        ] {
            assert_eq!(
                SessionToken::verify(&token, &keys(), "c", Access::Read, NOW),
                Err(TokenError::Invalid),
                "{token}"
            );
        }
    }

    #[test]
    fn a_critical_header_extension_is_refused() {
        let payload = format!(
            r#"{{"scopes":["read:sessions:c"],"iat":{NOW},"exp":{}}}"#,
            NOW + 60
        );
        let plain = hs256(r#"{"alg":"HS256"}"#, &payload, b"tr_dev_secret");
        assert!(SessionToken::verify(&plain, &keys(), "c", Access::Read, NOW).is_ok());
        for header in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":[]}"#,
        ] {
            let token = hs256(header, &payload, b"tr_dev_secret");
            assert_eq!(
                SessionToken::verify(&token, &keys(), "c", Access::Read, NOW),
                Err(TokenError::Invalid),
                "{header}"
            );
        }
    }

    #[test]
    fn times_at_the_end_of_u64_neither_overflow_nor_flip() {
        let payload = |exp: u64, nbf: u64| {
            format!(r#"{{"scopes":["read:sessions:c"],"iat":0,"exp":{exp},"nbf":{nbf}}}"#)
        };
        let forever = hs256(
            r#"{"alg":"HS256"}"#,
            &payload(u64::MAX, 0),
            b"tr_dev_secret",
        );
        for now in [0, NOW, u64::MAX - 5, u64::MAX] {
            assert!(
                SessionToken::verify(&forever, &keys(), "c", Access::Read, now).is_ok(),
                "{now}"
            );
        }
        let late = hs256(
            r#"{"alg":"HS256"}"#,
            &payload(u64::MAX, u64::MAX),
            b"tr_dev_secret",
        );
        assert_eq!(
            SessionToken::verify(&late, &keys(), "c", Access::Read, NOW),
            Err(TokenError::NotYetValid)
        );
        assert!(SessionToken::verify(&late, &keys(), "c", Access::Read, u64::MAX - 5).is_ok());
    }

    #[test]
    fn rotated_keys_still_verify_and_the_new_one_signs() {
        let old = SessionToken::mint(&keys(), "env", "c", NOW, 60);
        let rotated = SecretKeys::parse("new_key,tr_dev_secret").expect("keys");
        SessionToken::verify(&old, &rotated, "c", Access::Read, NOW).expect("old key verifies");
        let fresh = SessionToken::mint(&rotated, "env", "c", NOW, 60);
        assert_eq!(
            SessionToken::verify(&fresh, &keys(), "c", Access::Read, NOW),
            Err(TokenError::Invalid)
        );
    }
}
