//! A model provider's API key, shared by the configuration and every client made from it, so
//! that a key read again from where it is kept (a rotated secret) reaches every client at once,
//! without rebuilding the model.

use std::sync::{Arc, RwLock};

/// A provider's API key. Clones share one key, which [`replace`](Self::replace) swaps for all
/// of them; a request reads the key it is sent with through [`current`](Self::current).
#[derive(Clone)]
pub struct ApiKey {
    key: Arc<RwLock<Arc<str>>>,
}

impl ApiKey {
    /// A key of its own.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey {
            key: Arc::new(RwLock::new(Arc::from(key.into()))),
        }
    }

    /// The key requests are sent with now.
    pub fn current(&self) -> Arc<str> {
        // A writer cannot panic while it holds the lock (it swaps one pointer): a poisoned lock
        // still holds a whole key.
        self.key
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Makes `fresh` the key of every clone: whether it differed from the one they had.
    pub fn replace(&self, fresh: &str) -> bool {
        let mut key = self
            .key
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let changed = **key != *fresh;
        if changed {
            *key = Arc::from(fresh);
        }
        changed
    }

    /// Whether the key is blank (a local server needs none).
    pub fn is_empty(&self) -> bool {
        self.current().trim().is_empty()
    }
}

impl std::fmt::Debug for ApiKey {
    // Never print a key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        ApiKey::new(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        ApiKey::new(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_key_reaches_every_clone() {
        let key = ApiKey::new("sk-old");
        let client_copy = key.clone();
        assert!(key.replace("sk-new"));
        assert_eq!(&*client_copy.current(), "sk-new");
        assert!(!client_copy.replace("sk-new"), "the same key is no change");
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = ApiKey::new("sk-secret");
        assert!(!format!("{key:?}").contains("sk-secret"));
    }

    #[test]
    fn blank_keys_count_as_none() {
        assert!(ApiKey::new(" ").is_empty());
        assert!(!ApiKey::new("k").is_empty());
    }
}
