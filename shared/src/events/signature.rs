//! The Standard Webhooks signature: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed with the decoded bytes of a `whsec_` secret. Several secrets (a rotation) each sign, and
//! the header carries their signatures space-separated, as the specification allows.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix every Standard Webhooks secret carries.
const SECRET_PREFIX: &str = "whsec_";

/// Why `CHATFN_WEBHOOK_SECRET` cannot be used. The secret itself is never part of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The variable holds no secret at all.
    #[error("CHATFN_WEBHOOK_SECRET is empty")]
    Empty,
    /// A secret lacks the `whsec_` prefix.
    #[error("CHATFN_WEBHOOK_SECRET: secret {position} does not start with `whsec_`")]
    MissingPrefix {
        /// Its place in the list, from 1.
        position: usize,
    },
    /// A secret is not base64 after its prefix, or decodes to nothing.
    #[error("CHATFN_WEBHOOK_SECRET: secret {position} is not base64 after `whsec_`")]
    NotBase64 {
        /// Its place in the list, from 1.
        position: usize,
    },
}

/// The signing secrets, decoded; during a rotation every one of them signs.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} redacted)", self.keys.len())
    }
}

impl WebhookSecrets {
    /// Parses space-separated `whsec_<base64>` secrets.
    pub fn parse(value: &str) -> Result<Self, SecretError> {
        let keys = value
            .split_whitespace()
            .enumerate()
            .map(|(index, secret)| {
                let position = index + 1;
                let encoded = secret
                    .strip_prefix(SECRET_PREFIX)
                    .ok_or(SecretError::MissingPrefix { position })?;
                match STANDARD.decode(encoded) {
                    Ok(key) if !key.is_empty() => Ok(key),
                    _ => Err(SecretError::NotBase64 { position }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecrets { keys })
    }

    /// The `webhook-signature` header's value for a message: one `v1,<base64>` per secret.
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &str) -> String {
        let signed = format!("{id}.{timestamp_secs}.{body}");
        self.keys
            .iter()
            .map(|key| {
                format!(
                    "v1,{}",
                    STANDARD.encode(hmac_sha256(key, signed.as_bytes()))
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_the_specification_example() {
        let secrets =
            WebhookSecrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secrets.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_secret_of_a_rotation_signs() {
        let secrets =
            WebhookSecrets::parse(" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  whsec_c2Vjb25k ")
                .expect("secrets");
        let header = secrets.sign("msg_1", 1, "{}");
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert!(signatures.iter().all(|s| s.starts_with("v1,")));
        assert_ne!(signatures[0], signatures[1]);
    }

    #[test]
    fn bad_secrets_are_named_by_position_and_never_printed() {
        assert_eq!(WebhookSecrets::parse("  ").err(), Some(SecretError::Empty));
        assert_eq!(
            WebhookSecrets::parse("whsec_c2Vjb25k s3cret").err(),
            Some(SecretError::MissingPrefix { position: 2 })
        );
        let error = WebhookSecrets::parse("whsec_!!not-base64!!").err();
        assert_eq!(error, Some(SecretError::NotBase64 { position: 1 }));
        assert!(
            !error
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("not-base64!!")
        );
        let secrets = WebhookSecrets::parse("whsec_c2Vjb25k").expect("secret");
        assert!(!format!("{secrets:?}").contains("c2Vjb25k"));
    }
}
