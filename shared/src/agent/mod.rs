//! Agents: what a user defines (model, instructions, tools, limits) and the engine that runs a
//! turn with them.
//!
//! An [`Agent`] is built once per process with [`Agent::builder`] and shared by every turn:
//!
//! - **Tools** ([`FunctionTool::typed`] for a Rust input type with a derived JSON schema,
//!   [`FunctionTool::new`] for raw JSON, [`FunctionTool::client_side`] for tools the browser runs,
//!   [`SubAgentTool`] for an agent used as a tool, [`AgentBuilder::mcp`] for the tools of an MCP
//!   server, resolved at the start of every turn). A tool gets a [`ToolContext`]: the chat's
//!   [`ChatState`], a [`DataWriter`] for `data-*` parts, metadata and preliminary output, the stop
//!   signal and the turn's [`TurnControls`]. A [`ToolError`] reaches the model and the client as
//!   `tool-output-error`.
//! - **Approvals** ([`AgentBuilder::require_approval`], or [`Tool::needs_approval`] per call): the
//!   turn ends on the request and continues when the client answers. Requests are signed by the
//!   server ([`ApprovalSigner`]); an answer whose signature does not match the call is refused.
//! - **Hooks** ([`ChatHooks`]): chat start, turn start, turn complete (with the chat's total
//!   usage), message validation, history hydration, per-turn model choice, history summaries.
//! - **Actions** ([`AgentBuilder::on_action`], [`ActionContext`]): what a client's `sendAction`
//!   asks (undo the last exchange, say); the handler may change the history and may let the
//!   model answer it.
//! - **Usage limits** ([`AgentBuilder::usage_limits`], [`AgentBuilder::usage_limits_per_user`]):
//!   turns per minute per chat, output tokens per day per user, counted in the store.
//! - **Typed client data** ([`AgentBuilder::client_data`]) and **per-chat state** ([`ChatState`]).
//! - **Inject and defer** ([`TurnControls`], on [`TurnInfo::controls`] and
//!   [`ToolContext::controls`]): messages the model sees from its next step on and the history
//!   keeps; work the turn awaits (with a cap) before it completes.
//! - **Compaction** ([`Compaction`]): past a token budget the model sees a summary of the older
//!   history; the history itself keeps every message.
//! - **Raw turns** ([`AgentBuilder::handler`], [`TurnHandler`], [`RawTurn`]): your own code in
//!   place of the model loop, on the same lease, log, persistence and hooks.
//!
//! [`run_turn`] is the engine; hosts call it through [`crate::turn::TurnRunner`], which owns
//! the input log, the lease, the output log and persistence.

mod action;
mod approval;
pub mod compaction;
mod controls;
mod engine;
mod hooks;
mod limits;
mod mcp_tools;
mod subagent;
mod tool;
pub mod tools;
mod writer;

use std::sync::Arc;

pub use action::{ActionContext, ActionOutcome};
pub use approval::{ApprovalClaim, ApprovalSigner};
pub use compaction::{Compaction, HistorySummary};
pub use controls::{DeferredReport, TurnControls};
pub(crate) use engine::span_count;
pub use engine::{ChunkSink, SinkClosed, TurnOutcome, TurnRequest, refuse_turn, run_turn};
pub use engine::{RawTurn, TurnHandler};
pub use hooks::{ChatHooks, ChatState, HookError, NoHooks, StateError, TurnInfo};
pub use limits::UsageLimits;
pub use subagent::SubAgentTool;
pub use tool::{FunctionTool, Tool, ToolContext, ToolError};
pub use writer::DataWriter;

use crate::config::Config;
use crate::mcp::McpServer;
use crate::model::Model;

/// The instructions of the stock agent when `CHATFN_SYSTEM_PROMPT` is unset.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Answer concisely. Use the \
    tools you have when they help: they give exact answers.";

/// The agent every host serves unless its `main` builds its own: the configured model and
/// instructions, the stock tools, the tools of the configured MCP servers, the configured step
/// limit, and the stock action handler (`{"type": "undo"}` drops the last exchange).
pub fn configured_agent(config: &Config, model: Arc<dyn Model>) -> Agent {
    let builder = config
        .mcp_servers
        .iter()
        .cloned()
        .fold(Agent::builder(model), AgentBuilder::mcp);
    builder
        .system_prompt(
            config
                .system_prompt
                .clone()
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_owned()),
        )
        .tool(tools::current_time())
        .tool(tools::roll_dice())
        .require_approval(config.approval_tools.iter().cloned())
        .max_steps(config.max_steps)
        .action_handler(action::stock_handler())
        .usage_limits(UsageLimits {
            turns_per_minute: config.max_turns_per_minute,
            output_tokens_per_day: config.max_output_tokens_per_day,
        })
        .build()
}

/// A chat agent. Cheap to clone; share one per process.
///
/// ```
/// use std::sync::Arc;
///
/// use chatfn::agent::{Agent, FunctionTool, ToolError};
/// use chatfn::model::offline::OfflineModel;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, schemars::JsonSchema)]
/// struct Order {
///     /// The order's number, as printed on the receipt.
///     number: u32,
/// }
///
/// let order_status = FunctionTool::typed(
///     "order_status",
///     "Where an order is.",
///     |order: Order, _context| async move {
///         if order.number == 0 {
///             return Err(ToolError::new("order numbers start at 1"));
///         }
///         Ok(serde_json::json!({"number": order.number, "status": "shipped"}))
///     },
/// );
///
/// let agent = Agent::builder(Arc::new(OfflineModel::new()))
///     .system_prompt("You answer questions about orders.")
///     .tool(order_status)
///     .max_steps(4)
///     .build();
///
/// assert_eq!(agent.system_prompt(), Some("You answer questions about orders."));
/// assert!(agent.tool("order_status").is_some());
/// assert_eq!(agent.max_steps(), 4);
/// ```
#[derive(Clone)]
pub struct Agent {
    model: Arc<dyn Model>,
    system_prompt: Option<String>,
    tools: Vec<Arc<dyn Tool>>,
    /// MCP servers whose tools are added to `tools` at the start of every turn.
    mcp: mcp_tools::McpToolSource,
    max_steps: usize,
    /// Tools that only run after a person approves the call.
    approval_required: Vec<String>,
    hooks: Arc<dyn ChatHooks>,
    defer_timeout: std::time::Duration,
    model_idle_timeout: std::time::Duration,
    /// Checks the client data of every turn against the agent's type for it.
    client_data: Option<ClientDataCheck>,
    compaction: Option<Compaction>,
    /// Drives turns in place of the model loop, when set.
    handler: Option<Arc<dyn TurnHandler>>,
    /// The thinking budget of every model call, over the provider's own setting.
    thinking_budget: Option<u32>,
    /// Answers the clients' actions, when set.
    action: Option<action::ActionHandler>,
    /// The usage limits unless `limits_rule` decides otherwise.
    limits: UsageLimits,
    limits_rule: Option<limits::LimitsRule>,
}

/// Checks a turn's client data (JSON, `null` when the client sent none) against a type.
type ClientDataCheck = Arc<dyn Fn(&serde_json::Value) -> Result<(), String> + Send + Sync>;

impl Agent {
    /// The most model calls in one turn unless the agent says otherwise.
    pub const DEFAULT_MAX_STEPS: usize = 10;
    /// How long a turn waits for its deferred work unless the agent says otherwise.
    pub const DEFAULT_DEFER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    /// How long the model may send nothing (before its first token or between two events)
    /// before the turn gives up on it, unless the agent says otherwise.
    pub const DEFAULT_MODEL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

    /// Starts an agent that answers with `model`, with no instructions, no tools, no hooks and the
    /// default limits.
    pub fn builder(model: Arc<dyn Model>) -> AgentBuilder {
        AgentBuilder {
            agent: Agent {
                model,
                system_prompt: None,
                tools: Vec::new(),
                mcp: mcp_tools::McpToolSource::default(),
                max_steps: Self::DEFAULT_MAX_STEPS,
                approval_required: Vec::new(),
                hooks: Arc::new(NoHooks),
                defer_timeout: Self::DEFAULT_DEFER_TIMEOUT,
                model_idle_timeout: Self::DEFAULT_MODEL_IDLE_TIMEOUT,
                client_data: None,
                compaction: None,
                handler: None,
                thinking_budget: None,
                action: None,
                limits: UsageLimits::NONE,
                limits_rule: None,
            },
        }
    }

    /// The model the agent answers with (hooks may pick another per turn).
    pub fn model(&self) -> &Arc<dyn Model> {
        &self.model
    }

    /// The instructions the model gets before the conversation, if any.
    pub fn system_prompt(&self) -> Option<&str> {
        self.system_prompt.as_deref()
    }

    /// The agent's tools: its own, and after [`Agent::with_turn_tools`] its MCP servers' too.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// The agent as one turn sees it, start to end: its own tools and the tools its MCP servers
    /// offer now (each server's list cached per process). A server that is down, slow or
    /// answering garbage adds no tools, after at most its timeout.
    pub async fn with_turn_tools(&self) -> Agent {
        if self.mcp.is_empty() {
            return self.clone();
        }
        let taken: Vec<&str> = self.tools.iter().map(|tool| tool.name()).collect();
        let remote = self.mcp.resolve(&taken).await;
        let mut agent = self.clone();
        agent.tools.extend(remote);
        agent.mcp = mcp_tools::McpToolSource::default();
        agent
    }

    /// The tool called `name`, if the agent has one.
    pub fn tool(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|tool| tool.name() == name)
    }

    /// The most model calls in one turn.
    pub fn max_steps(&self) -> usize {
        self.max_steps
    }

    /// The same agent answering with another model.
    pub fn with_model(&self, model: Arc<dyn Model>) -> Agent {
        Agent {
            model,
            ..self.clone()
        }
    }

    /// The agent's hooks ([`NoHooks`] unless the builder set some).
    pub fn hooks(&self) -> &Arc<dyn ChatHooks> {
        &self.hooks
    }

    /// Checks a turn's client data against the type the agent declared with
    /// [`AgentBuilder::client_data`]; the error says what does not fit.
    pub fn check_client_data(&self, data: Option<&serde_json::Value>) -> Result<(), String> {
        match &self.client_data {
            None => Ok(()),
            Some(check) => check(data.unwrap_or(&serde_json::Value::Null)),
        }
    }

    /// The code that drives this agent's turns in place of the model loop, if any.
    pub fn handler(&self) -> Option<&Arc<dyn TurnHandler>> {
        self.handler.as_ref()
    }

    /// Runs the agent's action handler on `action` (as the client sent it, `null` for none);
    /// `None` when the agent has no handler.
    pub async fn on_action(
        &self,
        action: serde_json::Value,
        context: ActionContext,
    ) -> Option<Result<ActionOutcome, HookError>> {
        let handler = self.action.as_ref()?;
        Some(handler(action, context).await)
    }

    /// Whether any chat may have usage limits: when not, nothing is checked or counted.
    pub fn has_usage_limits(&self) -> bool {
        !self.limits.is_none() || self.limits_rule.is_some()
    }

    /// The usage limits of the chat with this session.
    pub fn usage_limits(&self, session: &crate::store::Session) -> UsageLimits {
        match &self.limits_rule {
            Some(rule) => rule(session, self.limits),
            None => self.limits,
        }
    }

    /// When and how the agent compacts a long history (none by default).
    pub fn compaction(&self) -> Option<&Compaction> {
        self.compaction.as_ref()
    }

    /// How long a turn waits for the work its hooks and tools deferred.
    pub fn defer_timeout(&self) -> std::time::Duration {
        self.defer_timeout
    }

    /// How long the model may send nothing before the turn gives up on it.
    pub fn model_idle_timeout(&self) -> std::time::Duration {
        self.model_idle_timeout
    }

    /// Whether this call of `tool` waits for a person's approval before it runs.
    pub fn needs_approval(&self, tool: &str, input: &serde_json::Value) -> bool {
        self.approval_required.iter().any(|name| name == tool)
            || self
                .tool(tool)
                .is_some_and(|tool| tool.needs_approval(input))
    }

    /// Whether the browser runs this tool (so its outputs come from the client).
    pub fn runs_on_client(&self, tool: &str) -> bool {
        self.tool(tool).is_some_and(|tool| tool.runs_on_client())
    }

    /// The tokens the model may think with on each call, when the agent sets it; `None` leaves
    /// it to the provider's settings (`CHATFN_MODEL_THINKING_BUDGET`).
    pub fn thinking_budget(&self) -> Option<u32> {
        self.thinking_budget
    }
}

/// Builds an [`Agent`]; start one with [`Agent::builder`] and end with [`AgentBuilder::build`].
pub struct AgentBuilder {
    agent: Agent,
}

impl AgentBuilder {
    /// The instructions the model gets before the conversation.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.agent.system_prompt = Some(prompt.into());
        self
    }

    /// Adds a tool; a later tool with the same name replaces the earlier one.
    pub fn tool(mut self, tool: impl Tool + 'static) -> Self {
        self.agent
            .tools
            .retain(|existing| existing.name() != tool.name());
        self.agent.tools.push(Arc::new(tool));
        self
    }

    /// Offers the model the tools of an MCP server (Streamable HTTP), e.g.
    /// `McpServer::http("https://example.com/mcp").header("Authorization", "Bearer …")`. The
    /// list is fetched on a turn's first need and cached per process; a tool keeps the
    /// server's name when the providers accept it (else a sanitised one, prefixed with the
    /// server's name only on a clash), and that name is the one approvals and logs use.
    pub fn mcp(mut self, server: McpServer) -> Self {
        self.agent.mcp.add(server);
        self
    }

    /// Hooks into the chat's life (chat start, turn start and end, validation, hydration).
    pub fn hooks(mut self, hooks: impl ChatHooks + 'static) -> Self {
        self.agent.hooks = Arc::new(hooks);
        self
    }

    /// Declares the type of the client data (the `metadata` a client sends with its messages):
    /// every turn's data must deserialize into `T`, or the message is refused with a 422 that
    /// says why, before it joins the history. Hooks read it typed with
    /// [`TurnInfo::client_data_as`]. `null` stands for no data, so make `T` an `Option` or give
    /// it defaults if clients may send none.
    pub fn client_data<T: serde::de::DeserializeOwned + 'static>(mut self) -> Self {
        self.agent.client_data = Some(Arc::new(|value: &serde_json::Value| {
            T::deserialize(value)
                .map(drop)
                .map_err(|error| format!("the client data is not valid: {error}"))
        }));
        self
    }

    /// Compacts long chats: once the history passes the budget, the model sees a summary of the
    /// older messages and the recent ones as they are (see [`compaction`]). The summary comes
    /// from [`ChatHooks::summarize_history`], or from the agent's own model.
    pub fn compaction(mut self, compaction: Compaction) -> Self {
        self.agent.compaction = Some(compaction);
        self
    }

    /// Drives every turn with `handler` instead of the model loop: the raw primitives (the
    /// turn's input and history, the reply's fold, the stop signal, writing chunks to the log)
    /// with everything else of a turn (lease, log, persistence, hooks, state) as usual.
    pub fn handler(mut self, handler: impl TurnHandler + 'static) -> Self {
        self.agent.handler = Some(Arc::new(handler));
        self
    }

    /// Answers the clients' actions (`sendAction`) with `handler`, given the action as `A` (an
    /// action that does not deserialize into `A` is refused with an error that says why) and the
    /// chat's history. The handler may change the history (the changes are stored), and ends
    /// with [`ActionContext::done`] (the action's stream ends with its turn-complete alone) or
    /// [`ActionContext::reply`] (the model answers the history, as a turn does). An agent
    /// without a handler acknowledges every action with a turn-complete alone.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use chatfn::agent::{ActionContext, Agent};
    /// use chatfn::model::offline::OfflineModel;
    ///
    /// #[derive(serde::Deserialize)]
    /// #[serde(tag = "type", rename_all = "kebab-case")]
    /// enum ChatAction {
    ///     Undo,
    ///     Retry,
    /// }
    ///
    /// let agent = Agent::builder(Arc::new(OfflineModel::new()))
    ///     .on_action(|action: ChatAction, mut chat: ActionContext| async move {
    ///         Ok(match action {
    ///             ChatAction::Undo => {
    ///                 chat.undo_last_exchange();
    ///                 chat.done()
    ///             }
    ///             ChatAction::Retry => chat.reply(),
    ///         })
    ///     })
    ///     .build();
    /// # let _ = agent;
    /// ```
    pub fn on_action<A, F, Fut>(self, handler: F) -> Self
    where
        A: serde::de::DeserializeOwned + Send + 'static,
        F: Fn(A, ActionContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<ActionOutcome, HookError>> + Send + 'static,
    {
        self.action_handler(action::typed_handler(handler))
    }

    /// Limits every chat's use (the stock agent takes them from `CHATFN_MAX_TURNS_PER_MINUTE`
    /// and `CHATFN_MAX_OUTPUT_TOKENS_PER_DAY`). A message past a limit is refused before it is
    /// stored, with a 429 that says when to try again.
    pub fn usage_limits(mut self, limits: UsageLimits) -> Self {
        self.agent.limits = limits;
        self
    }

    /// Decides each chat's limits from its session (its `owner`, the `metadata` its creator
    /// gave: a plan, a tier), given the defaults of [`usage_limits`](Self::usage_limits). Called
    /// before each message is accepted and as each turn ends, so keep it quick.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use chatfn::agent::{Agent, UsageLimits};
    /// use chatfn::model::offline::OfflineModel;
    ///
    /// let agent = Agent::builder(Arc::new(OfflineModel::new()))
    ///     .usage_limits(UsageLimits {
    ///         turns_per_minute: Some(5),
    ///         output_tokens_per_day: Some(20_000),
    ///     })
    ///     .usage_limits_per_user(|session, limits| {
    ///         let plan = session.metadata.as_ref().and_then(|m| m["plan"].as_str());
    ///         match plan {
    ///             Some("pro") => UsageLimits {
    ///                 output_tokens_per_day: Some(1_000_000),
    ///                 ..limits
    ///             },
    ///             _ => limits,
    ///         }
    ///     })
    ///     .build();
    /// assert!(agent.has_usage_limits());
    /// ```
    pub fn usage_limits_per_user(
        mut self,
        rule: impl Fn(&crate::store::Session, UsageLimits) -> UsageLimits + Send + Sync + 'static,
    ) -> Self {
        self.agent.limits_rule = Some(Arc::new(rule));
        self
    }

    fn action_handler(mut self, handler: action::ActionHandler) -> Self {
        self.agent.action = Some(handler);
        self
    }

    /// Requires a person's approval before any call of these tools runs.
    pub fn require_approval<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.agent
            .approval_required
            .extend(tools.into_iter().map(Into::into));
        self
    }

    /// How long a turn waits for deferred work before it completes (work still running then
    /// is dropped and logged). At most half the turn lease (15 s by default): the chat stays
    /// locked while the turn waits.
    pub fn defer_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.agent.defer_timeout = timeout;
        self
    }

    /// How long the model may send nothing, before its first event or between two, before the
    /// turn ends with an error chunk saying so (a call that has sent nothing yet is retried
    /// first). Two minutes by default: long enough for a model that thinks before it speaks.
    pub fn model_idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.agent.model_idle_timeout = timeout;
        self
    }

    /// The most model calls in one turn (at least one).
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.agent.max_steps = steps.max(1);
        self
    }

    /// The agent, ready to share across turns.
    pub fn build(self) -> Agent {
        self.agent
    }

    /// Extended thinking on every model call of the agent's turns, with this many tokens to
    /// think with (Anthropic, and Claude on Bedrock; at least 1024 there); 0 turns it off even
    /// where the provider's settings turn it on. Thinking travels back with its signature on
    /// the next step and in later turns.
    pub fn thinking_budget(mut self, tokens: u32) -> Self {
        self.agent.thinking_budget = Some(tokens);
        self
    }
}
