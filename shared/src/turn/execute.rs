//! Running a started turn to its end: the chat's record is loaded, the agent answers (unless a
//! start hook refuses the turn), the turn's deferred work is waited for, the turn is settled, and
//! the next waiting input's turn starts. A stopped reply says so in its metadata.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::events::TurnEnd;
use super::heartbeat::LeaseHeartbeat;
use super::live::LiveTurn;
use super::moved_past::{AnnouncingSkipped, SkippedApproval};
use super::prepare::PreparedTurn;
use super::record::ChatRecord;
use super::runner::TurnRunner;
use super::writer::OutputWriter;
use crate::agent::{
    ChatState, HistorySummary, TurnInfo, TurnOutcome, TurnRequest, refuse_turn, run_turn,
};
use crate::model::Usage;
use crate::store::{StoreResult, TurnLease};
use crate::ui::UIMessage;

/// The chat's record as a starting turn read it under its lease: its state, and the last input
/// recorded then (a stop after it is meant for this turn).
pub(super) struct LoadedRecord {
    pub(super) state: StoreResult<Option<Value>>,
    pub(super) stop_after: Option<u64>,
}

/// What a turn works with from its start to its end.
pub(super) struct RunningTurn {
    pub(super) live: Arc<LiveTurn>,
    pub(super) lease: TurnLease,
    pub(super) info: TurnInfo,
    /// The chat's state, shared with the hooks and tools.
    pub(super) state: ChatState,
    pub(super) writer: OutputWriter,
    /// The new message, when storing it beside the model request failed: the turn stores it
    /// before its reply.
    pub(super) unstored: Option<UIMessage>,
}

impl TurnRunner {
    /// The turn's task: runs it to its end, then the turns of the inputs that arrived meanwhile.
    pub(super) async fn execute(
        self,
        live: Arc<LiveTurn>,
        lease: TurnLease,
        prepared: PreparedTurn,
        loaded: LoadedRecord,
    ) {
        let PreparedTurn {
            history,
            reply,
            info,
            quiet,
            skipped,
            unstored,
        } = prepared;
        let chat_id = live.chat_id().to_owned();
        if quiet {
            return self.execute_quiet(live, lease, info, loaded).await;
        }
        let heartbeat = LeaseHeartbeat::start(
            self.store.clone(),
            live.clone(),
            lease.holder.clone(),
            self.settings.lease_ttl_ms,
        );
        let (mut turn, record) = self.load(live, lease, info, loaded);
        // The new message is stored beside the model request, off the time to first token; the
        // reply is stored only after it (see `settle`).
        let stored = async {
            // Once the model's request is on its way: it goes first, the write right behind it.
            if unstored.is_some() {
                YieldOnce::default().await;
            }
            match &unstored {
                Some(message) => self.store.put_message(&chat_id, message).await,
                None => Ok(()),
            }
        };
        let ((mut outcome, new_summary), stored) = futures::join!(
            self.run(&mut turn, history, reply, record.summary.as_ref(), skipped),
            stored
        );
        if let Err(error) = stored {
            tracing::warn!(chat = %chat_id, "could not store the new message yet: {error}");
            turn.unstored = unstored;
        }
        if outcome.stopped {
            mark_stopped(&mut outcome.message);
        }
        let mut total_usage = record.usage;
        total_usage += outcome.usage;
        outcome.total_usage = total_usage;
        self.finish_work(&turn, &outcome).await;
        // Before the turn's end is shown: the next message is checked against this count.
        self.count_output_tokens(&chat_id, outcome.usage.output_tokens)
            .await;
        let saved = record_to_save(record, &turn.state, total_usage, new_summary);
        super::span::record_outcome(&tracing::Span::current(), &outcome);
        tracing::info!(
            chat = %chat_id,
            steps = outcome.steps,
            finish = ?outcome.finish_reason,
            stopped = outcome.stopped,
            input_tokens = outcome.usage.input_tokens,
            output_tokens = outcome.usage.output_tokens,
            "turn finished"
        );
        drop(heartbeat);
        if turn.writer.lease_lost() {
            // Someone recovered this chat while we stalled, and the turn is theirs to close; or
            // the chat was erased, perhaps created again since, and nothing of it is kept.
            if let Some(saved) = &saved
                && self.chat_outlived(&chat_id, &turn.lease).await
            {
                self.save_state(&chat_id, saved).await;
            }
            self.unlist(&turn.live);
            return;
        }
        let event = self
            .turn_event(
                &chat_id,
                TurnEnd {
                    input_seq: turn.lease.input_seq,
                    message: &outcome.message,
                    usage: outcome.usage,
                    total_usage: Some(outcome.total_usage),
                    finish_reason: outcome.finish_reason,
                    stopped: outcome.stopped,
                    recovered: false,
                    error: outcome.error.clone(),
                },
            )
            .await;
        if let Err(error) = self
            .settle(&mut turn, &outcome.message, saved.as_ref(), event.as_ref())
            .await
        {
            tracing::error!(chat = %chat_id, "could not settle the turn: {error}");
        }
        // Unlisted before its readers end: a client that saw the end and sends the next message
        // at once must not find this turn still running.
        self.unlist(&turn.live);
        // After the stream has ended, never in its way.
        if let Some(event) = &event {
            self.deliver_now(event).await;
        }
        self.run_next(chat_id).await;
    }

    /// A turn that answers its input with its end alone: no hooks, no model, no event.
    async fn execute_quiet(
        self,
        live: Arc<LiveTurn>,
        lease: TurnLease,
        info: TurnInfo,
        loaded: LoadedRecord,
    ) {
        let chat_id = live.chat_id().to_owned();
        let (mut turn, _) = self.load(live, lease, info, loaded);
        let nothing = UIMessage::new(String::new(), crate::ui::Role::Assistant);
        if let Err(error) = self.settle(&mut turn, &nothing, None, None).await {
            tracing::error!(chat = %chat_id, "could not settle the action: {error}");
        }
        self.unlist(&turn.live);
        self.run_next(chat_id).await;
    }

    /// The turn's writer, and the chat's record as the turn finds it.
    fn load(
        &self,
        live: Arc<LiveTurn>,
        lease: TurnLease,
        info: TurnInfo,
        loaded: LoadedRecord,
    ) -> (RunningTurn, ChatRecord) {
        let chat_id = live.chat_id().to_owned();
        let writer = OutputWriter::new(
            self.store.clone(),
            live.clone(),
            self.settings,
            loaded.stop_after,
        );
        let record = match loaded.state {
            Ok(value) => ChatRecord::decode(value),
            Err(error) => {
                tracing::error!(chat = %chat_id, "could not load the chat state: {error}");
                ChatRecord::default()
            }
        };
        let turn = RunningTurn {
            live,
            lease,
            info,
            state: ChatState::loaded(record.state.clone()),
            writer,
            unstored: None,
        };
        (turn, record)
    }

    /// The agent's reply, streamed through the turn's writer, or the refusal of a start hook.
    /// Returns how the turn ended, and the summary of the older history when compaction wrote a
    /// new one.
    async fn run(
        &self,
        turn: &mut RunningTurn,
        history: Vec<UIMessage>,
        reply: UIMessage,
        summary: Option<&HistorySummary>,
        skipped: Vec<SkippedApproval>,
    ) -> (TurnOutcome, Option<HistorySummary>) {
        let RunningTurn {
            live,
            info,
            state,
            writer,
            ..
        } = turn;
        let hooks = self.agent.hooks().clone();
        let mut writer = AnnouncingSkipped::new(writer, skipped);
        let started = match info.first_turn {
            true => hooks.on_chat_start(info, state).await,
            false => Ok(()),
        };
        let started = match started {
            Ok(()) => hooks.on_turn_start(info, state).await,
            refused => refused,
        };
        if let Err(refusal) = started {
            return (refuse_turn(reply, &mut writer, &refusal.0).await, None);
        }
        let compacted =
            crate::agent::compaction::compact(&self.agent, info, &history, summary).await;
        let request = TurnRequest {
            chat_id: live.chat_id().to_owned(),
            history: compacted.history,
            reply,
            state: state.clone(),
            approvals: self.approvals.clone(),
            controls: info.controls.clone(),
        };
        let stop = live.stop_signal().clone();
        let agent = match hooks.choose_model(info, state).await {
            Some(model) => Arc::new(self.agent.with_model(model)),
            None => self.agent.clone(),
        };
        let outcome = run_turn(&agent, request, &mut writer, &stop).await;
        (outcome, compacted.new_summary)
    }

    /// Tells the hooks the turn is complete, then waits for its deferred work (from hooks and
    /// tools, `on_turn_complete` included): it ends before the turn does, so its effects on the
    /// state are saved and the next turn sees them.
    async fn finish_work(&self, turn: &RunningTurn, outcome: &TurnOutcome) {
        self.agent
            .hooks()
            .on_turn_complete(&turn.info, &turn.state, outcome)
            .await;
        // The lease is not renewed while nothing is written: the wait stays well inside it.
        let cap = self
            .agent
            .defer_timeout()
            .min(Duration::from_millis(self.settings.lease_ttl_ms / 2));
        let deferred = turn.info.controls.settle_deferred(cap).await;
        if deferred.timed_out > 0 {
            tracing::warn!(
                chat = %turn.live.chat_id(),
                timed_out = deferred.timed_out,
                "deferred work still ran at the agent's cap and was dropped"
            );
        }
    }

    /// Takes the turn off the list of live turns and ends its readers.
    /// Whether the chat a turn that lost its lease ran in is still there: not erased, nor
    /// erased and created again after the turn took its lease.
    async fn chat_outlived(&self, chat_id: &str, lease: &TurnLease) -> bool {
        match self.store.session(chat_id).await {
            Ok(Some(session)) => session.created_at_ms <= lease.acquired_at_ms,
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(chat = %chat_id, "could not check the chat before saving its state: {error}");
                false
            }
        }
    }

    fn unlist(&self, live: &Arc<LiveTurn>) {
        self.live.remove(live);
        live.finish();
    }

    /// Runs the turn of the next unanswered input here. Messages that arrived during a turn
    /// queue as the next turns: a chat with no reader attached (server-side appends) must not
    /// stall.
    async fn run_next(&self, chat_id: String) {
        match self.claim_next(chat_id.clone()).await {
            Ok(Some((_, next))) => next.await,
            Ok(None) => {}
            Err(error) => tracing::warn!(chat = %chat_id, "could not start the next turn: {error}"),
        }
    }
}

/// Records in a stopped reply's metadata why it ended (`finishReason: "stopped"`): the stream of
/// a stopped turn ends without a `finish`, and a page reading the history shows the reply as
/// stopped from this. Metadata that is not an object is left as it is.
fn mark_stopped(message: &mut UIMessage) {
    let metadata = message
        .metadata
        .get_or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(fields) = metadata {
        fields.insert("finishReason".to_owned(), Value::from("stopped"));
    }
}

/// The chat's record as the turn leaves it, encoded for the store, when the turn changed it (its
/// state, the usage, the summary). It is saved as the turn frees the chat (one write on
/// DynamoDB), or alone if it cannot.
fn record_to_save(
    record: ChatRecord,
    state: &ChatState,
    total_usage: Usage,
    new_summary: Option<HistorySummary>,
) -> Option<Value> {
    let changed_state = state.changed_value();
    let changed = changed_state.is_some() || total_usage != record.usage || new_summary.is_some();
    changed.then(|| {
        ChatRecord {
            state: changed_state.or(record.state),
            usage: total_usage,
            summary: new_summary.or(record.summary),
        }
        .encode()
    })
}

/// Pending once, then ready: the tasks woken before it (the model request's connection) run
/// first, on any executor.
#[derive(Default)]
struct YieldOnce {
    yielded: bool,
}

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.yielded {
            return std::task::Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
