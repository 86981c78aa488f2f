//! When to list a server's tools again (sans-IO, on millisecond timestamps): a list is kept for
//! a while instead of asked for on every turn; a server that failed is left alone for a while,
//! so a server that is down costs one turn its timeout rather than every turn; and its failure
//! is logged once per interval, not once per turn.

use std::sync::Arc;
use std::time::Duration;

use super::schema::McpTool;

/// How long the timings of a cache are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long a listed set of tools is used before it is listed again.
    pub ttl: Duration,
    /// How long a server whose listing failed is skipped before it is tried again.
    pub retry_after_failure: Duration,
    /// The least time between two warnings about the same failing server.
    pub warning_interval: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            ttl: Duration::from_secs(300),
            retry_after_failure: Duration::from_secs(30),
            warning_interval: Duration::from_secs(300),
        }
    }
}

/// What to do for a turn that wants the server's tools.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Use these.
    Listed(Arc<[McpTool]>),
    /// List them (none are kept, or they are too old).
    List,
    /// The server failed a moment ago: go on without its tools.
    Skip,
}

/// What the last listings of one server came to.
#[derive(Debug, Clone, Default)]
pub struct ToolListCache {
    policy: CachePolicy,
    listed: Option<(u64, Arc<[McpTool]>)>,
    failed_at: Option<u64>,
    warned_at: Option<u64>,
}

impl ToolListCache {
    /// An empty cache that lists again as `policy` says.
    pub fn new(policy: CachePolicy) -> Self {
        ToolListCache {
            policy,
            ..ToolListCache::default()
        }
    }

    /// Whether a turn at `now_ms` uses the kept tools, lists them again, or skips the server.
    pub fn lookup(&self, now_ms: u64) -> Lookup {
        if let Some(failed_at) = self.failed_at {
            return if elapsed(failed_at, now_ms) < self.policy.retry_after_failure {
                Lookup::Skip
            } else {
                Lookup::List
            };
        }
        match &self.listed {
            Some((listed_at, tools)) if elapsed(*listed_at, now_ms) < self.policy.ttl => {
                Lookup::Listed(tools.clone())
            }
            _ => Lookup::List,
        }
    }

    /// The server listed `tools`. True when it had been failing (worth saying it is back).
    pub fn listed(&mut self, now_ms: u64, tools: Arc<[McpTool]>) -> bool {
        self.listed = Some((now_ms, tools));
        self.warned_at = None;
        self.failed_at.take().is_some()
    }

    /// Listing failed; its tools are dropped until a listing succeeds. True when the failure
    /// is to be logged: the first since the server last worked, or the first for an interval.
    pub fn failed(&mut self, now_ms: u64) -> bool {
        self.listed = None;
        self.failed_at = Some(now_ms);
        let warn = self
            .warned_at
            .is_none_or(|warned_at| elapsed(warned_at, now_ms) >= self.policy.warning_interval);
        if warn {
            self.warned_at = Some(now_ms);
        }
        warn
    }

    /// Forgets the list, so the next turn lists again (the server said its tools changed, or
    /// it did not know a tool it had listed).
    pub fn invalidate(&mut self) {
        self.listed = None;
    }
}

fn elapsed(since_ms: u64, now_ms: u64) -> Duration {
    // A clock that went back counts as no time passed.
    Duration::from_millis(now_ms.saturating_sub(since_ms))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tools() -> Arc<[McpTool]> {
        Arc::from(vec![McpTool {
            name: "echo".into(),
            description: "Echoes".into(),
            input_schema: json!({"type": "object"}),
        }])
    }

    fn cache() -> ToolListCache {
        ToolListCache::new(CachePolicy {
            ttl: Duration::from_secs(60),
            retry_after_failure: Duration::from_secs(10),
            warning_interval: Duration::from_secs(100),
        })
    }

    #[test]
    fn a_list_is_used_until_its_ttl_runs_out() {
        let mut cache = cache();
        assert_eq!(cache.lookup(0), Lookup::List);
        assert!(!cache.listed(1_000, tools()));
        assert_eq!(cache.lookup(60_999), Lookup::Listed(tools()));
        assert_eq!(cache.lookup(61_000), Lookup::List);
        // A clock that went back keeps the list.
        assert_eq!(cache.lookup(500), Lookup::Listed(tools()));
    }

    #[test]
    fn a_failing_server_is_skipped_then_tried_again() {
        let mut cache = cache();
        cache.listed(0, tools());
        assert!(cache.failed(70_000), "the first failure is logged");
        assert_eq!(cache.lookup(70_001), Lookup::Skip);
        assert_eq!(cache.lookup(79_999), Lookup::Skip);
        assert_eq!(cache.lookup(80_000), Lookup::List);
    }

    #[test]
    fn failures_are_logged_once_per_interval() {
        let mut cache = cache();
        assert!(cache.failed(0));
        assert!(!cache.failed(10_000));
        assert!(!cache.failed(99_999));
        assert!(cache.failed(100_000));
        assert!(!cache.failed(110_000));
    }

    #[test]
    fn a_recovery_is_reported_and_resets_the_warnings() {
        let mut cache = cache();
        assert!(cache.failed(0));
        assert!(cache.listed(20_000, tools()), "back after failing");
        assert_eq!(cache.lookup(20_001), Lookup::Listed(tools()));
        assert!(cache.failed(30_000), "a new outage is logged at once");
    }

    #[test]
    fn invalidating_lists_again() {
        let mut cache = cache();
        cache.listed(0, tools());
        cache.invalidate();
        assert_eq!(cache.lookup(1), Lookup::List);
    }
}
