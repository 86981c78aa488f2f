//! The environment's secret keys. Several may be live during a rotation: the first signs, all
//! verify. A host that reads them from a store of secrets while it runs (the Lambda functions)
//! replaces them in place: every clone sees the new list.

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The live secret keys of an environment (`CHATFN_SECRET_KEY`): the first signs tokens and
/// approvals, every one verifies them. Clones share the list, which [`replace`](Self::replace)
/// changes for all of them. Never printed, not even by `Debug`.
#[derive(Clone)]
pub struct SecretKeys {
    /// Never empty.
    keys: Arc<RwLock<Arc<[String]>>>,
}

impl std::fmt::Debug for SecretKeys {
    // Never print a key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKeys({} live)", self.all().len())
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
        (!keys.is_empty()).then(|| SecretKeys::of(keys))
    }

    fn of(keys: Vec<String>) -> Self {
        SecretKeys {
            keys: Arc::new(RwLock::new(keys.into())),
        }
    }

    /// A fresh random key, for a local server started without one.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        // Without an OS random source there is no safe key to make; fall back to a UUID, which
        // draws from the same source but never fails to format.
        if getrandom::fill(&mut bytes).is_err() {
            return SecretKeys::of(vec![format!("sk_local_{}", uuid::Uuid::new_v4().simple())]);
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        SecretKeys::of(vec![format!("sk_local_{hex}")])
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> String {
        // `parse` and `generate` never build an empty list.
        self.all().first().cloned().unwrap_or_default()
    }

    /// Every live key, signing key first.
    pub fn all(&self) -> Arc<[String]> {
        // A writer cannot panic while it holds the lock (it swaps one pointer): a poisoned lock
        // still holds a whole list.
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Makes `fresh`'s keys the live ones, for this value and every clone of it. Whether they
    /// differed from the keys before.
    pub fn replace(&self, fresh: &SecretKeys) -> bool {
        let fresh = fresh.all();
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let changed = *keys != fresh;
        *keys = fresh;
        changed
    }

    /// Whether `candidate` is one of the live keys, in time independent of where they differ and
    /// of the keys' lengths: digests are compared, and a comparison of unequal lengths would
    /// return early.
    pub fn matches(&self, candidate: &str) -> bool {
        let candidate = Sha256::digest(candidate.as_bytes());
        let mut found = subtle::Choice::from(0);
        for key in self.all().iter() {
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
        assert_eq!(*keys.all(), ["new", "old"]);
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
    fn a_replacement_reaches_every_clone() {
        let keys = SecretKeys::parse("old").expect("keys");
        let clone = keys.clone();
        assert!(keys.replace(&SecretKeys::parse("new,old").expect("keys")));
        assert_eq!(clone.signing_key(), "new");
        assert!(clone.matches("old"));
        assert!(!keys.replace(&SecretKeys::parse("new , old").expect("keys")));
    }

    #[test]
    fn generated_keys_are_distinct_and_never_printed() {
        let a = SecretKeys::generate();
        let b = SecretKeys::generate();
        assert_ne!(a.signing_key(), b.signing_key());
        assert!(a.signing_key().len() > 32);
        assert!(!format!("{a:?}").contains(&a.signing_key()));
    }
}
