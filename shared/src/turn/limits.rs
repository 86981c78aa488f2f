//! Checking and counting the usage limits ([`UsageLimits`]) in the store, so every instance sees
//! one count: a chat's turns in the current minute of the clock, and its owner's (else its own)
//! output tokens in the current UTC day. A message is admitted before it is recorded, so a
//! refused one leaves nothing behind; a turn's output tokens are counted as it ends. An agent
//! without limits makes no store call for them.

use super::runner::{TurnError, TurnRunner};
use crate::agent::UsageLimits;
use crate::clock::now_ms;
use crate::store::Session;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Which limit refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The chat's turns per minute.
    TurnsPerMinute,
    /// The output tokens per day.
    OutputTokensPerDay,
}

/// A message refused by a usage limit, and when the limit's window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", match self.kind {
    LimitKind::TurnsPerMinute => "this chat has sent too many messages this minute; try again shortly",
    LimitKind::OutputTokensPerDay => "today's token budget is spent; try again tomorrow",
})]
pub struct LimitReached {
    /// The limit.
    pub kind: LimitKind,
    /// Seconds until the window ends (at least 1).
    pub retry_after_s: u64,
}

/// A fixed window of the clock: its index and its end, for `now_ms`.
fn window(now_ms: u64, length_ms: u64) -> (u64, u64) {
    let index = now_ms / length_ms;
    (index, (index + 1) * length_ms)
}

fn retry_after_s(window_end_ms: u64, now_ms: u64) -> u64 {
    window_end_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

/// The counter of the chat's turns in minute `minute`.
fn turns_key(chat_id: &str, minute: u64) -> String {
    format!("turns/chat/{chat_id}/{minute}")
}

/// The counter of the output tokens in day `day` of the session's owner, else of its chat.
fn tokens_key(session: &Session, day: u64) -> String {
    match &session.owner {
        Some(owner) => format!("{OWNER_SCOPE}{owner}/tokens/{day}"),
        None => format!("tokens/chat/{}/{day}", session.chat_id),
    }
}

/// How the counters shared by every chat of one owner begin.
const OWNER_SCOPE: &str = "owner/";

/// For a usage counter that several chats share (an owner's token budget), what it is shared by
/// (`owner/{subject}`); `None` for a counter of one chat. A host that keeps each chat's data
/// apart (the Worker: a Durable Object per chat) keeps the counters of one scope in one place.
pub fn shared_counter_scope(key: &str) -> Option<&str> {
    if !key.starts_with(OWNER_SCOPE) {
        return None;
    }
    let (rest, _window) = key.rsplit_once('/')?;
    let (scope, _counter) = rest.rsplit_once('/')?;
    Some(scope)
}

impl TurnRunner {
    /// Admits a message for the chat with `session`, or refuses it with [`LimitReached`]:
    /// checks the token budget, then counts the turn against the turns per minute (a refused
    /// message is not counted).
    pub async fn admit(&self, session: &Session) -> Result<(), TurnError> {
        if !self.agent.has_usage_limits() {
            return Ok(());
        }
        let limits = self.agent.usage_limits(session);
        if limits.is_none() {
            return Ok(());
        }
        let now = now_ms();
        if let Some(budget) = limits.output_tokens_per_day {
            let (day, end) = window(now, DAY_MS);
            let spent = self.store.counter(&tokens_key(session, day), now).await?;
            if spent >= budget {
                return Err(TurnError::LimitReached(LimitReached {
                    kind: LimitKind::OutputTokensPerDay,
                    retry_after_s: retry_after_s(end, now),
                }));
            }
        }
        if let Some(turns) = limits.turns_per_minute {
            let (minute, end) = window(now, MINUTE_MS);
            let counted = self
                .store
                .add_to_counter(
                    &turns_key(&session.chat_id, minute),
                    1,
                    Some(turns),
                    end,
                    now,
                )
                .await?;
            if counted.is_none() {
                return Err(TurnError::LimitReached(LimitReached {
                    kind: LimitKind::TurnsPerMinute,
                    retry_after_s: retry_after_s(end, now),
                }));
            }
        }
        Ok(())
    }

    /// Counts a finished turn's output tokens against its chat's budget, when it has one. A
    /// failure is logged: the turn is over either way.
    pub(super) async fn count_output_tokens(&self, chat_id: &str, output_tokens: u64) {
        if !self.agent.has_usage_limits() || output_tokens == 0 {
            return;
        }
        let session = match self.store.session(chat_id).await {
            Ok(Some(session)) => session,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(chat = %chat_id, "could not count the turn's tokens: {error}");
                return;
            }
        };
        let UsageLimits {
            output_tokens_per_day,
            ..
        } = self.agent.usage_limits(&session);
        if output_tokens_per_day.is_none() {
            return;
        }
        let now = now_ms();
        let (day, end) = window(now, DAY_MS);
        let key = tokens_key(&session, day);
        if let Err(error) = self
            .store
            .add_to_counter(&key, output_tokens, None, end, now)
            .await
        {
            tracing::warn!(chat = %chat_id, "could not count the turn's tokens: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::agent::Agent;
    use crate::model::offline::OfflineModel;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;

    async fn runner(limits: UsageLimits, chats: &[(&str, Option<&str>)]) -> TurnRunner {
        let store = Arc::new(MemoryStore::new());
        for (chat_id, owner) in chats {
            let mut session = Session::new(*chat_id, now_ms());
            session.owner = owner.map(str::to_owned);
            store.create_session(session).await.expect("session");
        }
        let agent = Agent::builder(Arc::new(OfflineModel::new()))
            .usage_limits(limits)
            .build();
        TurnRunner::new(store, Arc::new(agent))
    }

    async fn session(runner: &TurnRunner, chat_id: &str) -> Session {
        runner
            .store()
            .session(chat_id)
            .await
            .expect("store")
            .expect("session")
    }

    #[tokio::test]
    async fn turns_per_minute_are_counted_per_chat() {
        let limits = UsageLimits {
            turns_per_minute: Some(2),
            ..UsageLimits::NONE
        };
        let runner = runner(limits, &[("a", None), ("b", None)]).await;
        let (a, b) = (session(&runner, "a").await, session(&runner, "b").await);
        runner.admit(&a).await.expect("first");
        runner.admit(&a).await.expect("second");
        match runner.admit(&a).await {
            Err(TurnError::LimitReached(reached)) => {
                assert_eq!(reached.kind, LimitKind::TurnsPerMinute);
                assert!((1..=60).contains(&reached.retry_after_s), "{reached:?}");
            }
            other => panic!("the third is refused: {other:?}"),
        }
        runner
            .admit(&b)
            .await
            .expect("another chat has its own count");
    }

    #[tokio::test]
    async fn the_token_budget_is_the_owners_across_chats() {
        let limits = UsageLimits {
            output_tokens_per_day: Some(100),
            ..UsageLimits::NONE
        };
        let runner = runner(
            limits,
            &[
                ("mine", Some("ann")),
                ("also-mine", Some("ann")),
                ("bob", Some("bob")),
            ],
        )
        .await;
        let mine = session(&runner, "mine").await;
        runner.admit(&mine).await.expect("nothing spent yet");
        runner.count_output_tokens("mine", 60).await;
        runner.admit(&mine).await.expect("60 of 100");
        runner.count_output_tokens("also-mine", 40).await;
        let refused = runner.admit(&session(&runner, "also-mine").await).await;
        assert!(
            matches!(
                refused,
                Err(TurnError::LimitReached(LimitReached {
                    kind: LimitKind::OutputTokensPerDay,
                    ..
                }))
            ),
            "{refused:?}"
        );
        runner
            .admit(&session(&runner, "bob").await)
            .await
            .expect("another owner has a budget of their own");
    }

    #[test]
    fn owner_counters_are_shared_and_chat_counters_are_not() {
        let mut session = Session::new("c1", 0);
        assert_eq!(shared_counter_scope(&tokens_key(&session, 3)), None);
        assert_eq!(shared_counter_scope(&turns_key("c1", 3)), None);
        session.owner = Some("auth0|a/b".into());
        assert_eq!(
            shared_counter_scope(&tokens_key(&session, 3)),
            Some("owner/auth0|a/b")
        );
    }

    #[tokio::test]
    async fn without_limits_nothing_is_counted() {
        let runner = runner(UsageLimits::NONE, &[("free", None)]).await;
        let free = session(&runner, "free").await;
        for _ in 0..5 {
            runner.admit(&free).await.expect("no limit");
        }
        runner.count_output_tokens("free", 1_000).await;
        let (day, _) = window(now_ms(), DAY_MS);
        let spent = runner
            .store()
            .counter(&tokens_key(&free, day), now_ms())
            .await
            .expect("read");
        assert_eq!(spent, 0);
    }
}
