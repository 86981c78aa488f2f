//! The environment's secret keys. Several may be live during a rotation: the first signs, all
//! verify.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The live secret keys of an environment (`CHATFN_SECRET_KEY`): the first signs tokens and
/// approvals, every one verifies them. Never printed, not even by `Debug`.
#[derive(Clone)]
pub struct SecretKeys {
    keys: Vec<String>,
}

impl std::fmt::Debug for SecretKeys {
    // Never print a key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKeys({} live)", self.keys.len())
    }
}

impl SecretKeys {
    /// Parses `CHATFN_SECRET_KEY`: comma-separated, blanks ignored. `None` when no key remains.
    pub fn parse(value: &str) -> Option<Self> {
        let keys: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(str::to_owned)
            .collect();
        (!keys.is_empty()).then_some(SecretKeys { keys })
    }

    /// A fresh random key, for a local server started without one.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        // Without an OS random source there is no safe key to make; fall back to a UUID, which
        // draws from the same source but never fails to format.
        if getrandom::fill(&mut bytes).is_err() {
            return SecretKeys {
                keys: vec![format!("sk_local_{}", uuid::Uuid::new_v4().simple())],
            };
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        SecretKeys {
            keys: vec![format!("sk_local_{hex}")],
        }
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &str {
        // `parse` and `generate` never build an empty list.
        self.keys.first().map(String::as_str).unwrap_or_default()
    }

    /// Every live key, signing key first.
    pub fn all(&self) -> &[String] {
        &self.keys
    }

    /// Whether `candidate` is one of the live keys, in time independent of where they differ and
    /// of the keys' lengths: digests are compared, and a comparison of unequal lengths would
    /// return early.
    pub fn matches(&self, candidate: &str) -> bool {
        let candidate = Sha256::digest(candidate.as_bytes());
        let mut found = subtle::Choice::from(0);
        for key in &self.keys {
            found |= Sha256::digest(key.as_bytes())
                .as_slice()
                .ct_eq(candidate.as_slice());
        }
        found.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_lists_are_parsed_in_order() {
        let keys = SecretKeys::parse(" new , old ,, ").expect("keys");
        assert_eq!(keys.signing_key(), "new");
        assert_eq!(keys.all(), ["new", "old"]);
        assert!(SecretKeys::parse(" , ").is_none());
    }

    #[test]
    fn every_live_key_matches_and_nothing_else() {
        let keys = SecretKeys::parse("new,old").expect("keys");
        assert!(keys.matches("new"));
        assert!(keys.matches("old"));
        assert!(!keys.matches("ne"));
        assert!(!keys.matches("new,old"));
        assert!(!keys.matches(""));
    }

    #[test]
    fn generated_keys_are_distinct_and_never_printed() {
        let a = SecretKeys::generate();
        let b = SecretKeys::generate();
        assert_ne!(a.signing_key(), b.signing_key());
        assert!(a.signing_key().len() > 32);
        assert!(!format!("{a:?}").contains(a.signing_key()));
    }
}
