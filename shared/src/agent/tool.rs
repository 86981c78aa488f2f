//! Tools an agent can call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::model::ToolSpec;

/// What a tool knows about the call it serves.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The chat the call belongs to.
    pub chat_id: String,
    /// The model's id for the call, as in the reply's tool part.
    pub tool_call_id: String,
    /// Cancelled when the turn is stopped; long tools should give up when it fires.
    pub stop: CancellationToken,
    /// The chat's state that survives between turns.
    pub state: super::ChatState,
    /// Injects messages into the conversation and defers work the turn waits for.
    pub controls: super::TurnControls,
    /// Writes data parts, metadata and preliminary outputs into the reply.
    pub writer: super::DataWriter,
}

/// A failed tool call. Its message goes to the model (so it can recover) and to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    /// A failure the model and the client read as `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ToolError(message.into())
    }
}

/// A tool: its description for the model, and (for server tools) how to run it.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls the tool by; unique within an agent.
    fn name(&self) -> &str;
    /// What the tool does, for the model to decide when to call it.
    fn description(&self) -> &str;
    /// The JSON schema of the input object.
    fn input_schema(&self) -> Value;

    /// Client-side tools have no server execution: the turn ends at their call and the browser
    /// answers with `addToolOutput`.
    fn runs_on_client(&self) -> bool {
        false
    }

    /// Whether this call must wait for a person's approval (human in the loop).
    fn needs_approval(&self, _input: &Value) -> bool {
        false
    }

    /// Runs the call. The output goes back to the model as JSON; an error goes back as its message.
    async fn execute(&self, input: Value, context: ToolContext) -> Result<Value, ToolError>;

    /// The name, description and input schema the model is given.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            input_schema: self.input_schema(),
        }
    }
}

type ToolFuture = Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;

type ToolHandler = Arc<dyn Fn(Value, ToolContext) -> ToolFuture + Send + Sync>;

/// A server tool made from a name, a description, a schema and an async function. This is what
/// [`AgentBuilder::tool`](super::AgentBuilder::tool) takes (any [`Tool`] does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use chatfn::agent::{DataWriter, FunctionTool, Tool, ToolContext, ToolError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, schemars::JsonSchema)]
/// struct Convert {
///     /// Degrees Celsius.
///     celsius: f64,
/// }
///
/// #[derive(Serialize)]
/// struct Converted {
///     fahrenheit: f64,
/// }
///
/// let tool = FunctionTool::typed(
///     "to_fahrenheit",
///     "Convert a temperature from Celsius to Fahrenheit.",
///     |input: Convert, _context: ToolContext| async move {
///         if input.celsius < -273.15 {
///             return Err(ToolError::new("below absolute zero"));
///         }
///         Ok(Converted { fahrenheit: input.celsius * 9.0 / 5.0 + 32.0 })
///     },
/// );
///
/// // The schema the model sees is derived from `Convert`.
/// assert_eq!(tool.spec().input_schema["required"], serde_json::json!(["celsius"]));
///
/// // The engine calls `execute` with the model's input and the call's context.
/// let context = ToolContext {
///     chat_id: "chat-1".into(),
///     tool_call_id: "call-1".into(),
///     stop: Default::default(),
///     state: Default::default(),
///     controls: Default::default(),
///     writer: DataWriter::detached(),
/// };
/// let output = tool
///     .execute(serde_json::json!({"celsius": 100.0}), context.clone())
///     .await;
/// assert_eq!(output, Ok(serde_json::json!({"fahrenheit": 212.0})));
///
/// // Input that does not fit the type is an error the model can read and fix.
/// let output = tool.execute(serde_json::json!({"celsius": "hot"}), context).await;
/// assert!(output.is_err());
/// # }
/// ```
pub struct FunctionTool {
    name: String,
    description: String,
    input_schema: Value,
    handler: Option<ToolHandler>,
}

impl FunctionTool {
    /// A server tool whose input is raw JSON: `input_schema` is what the model sees, and `handler`
    /// gets whatever the model sent (check it yourself, or use [`FunctionTool::typed`]).
    pub fn new<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> Self
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        FunctionTool {
            name: name.into(),
            description: description.into(),
            input_schema,
            handler: Some(Arc::new(move |input, context| {
                Box::pin(handler(input, context))
            })),
        }
    }

    /// A server tool whose input is a Rust type: the JSON schema the model sees is derived from
    /// it, and the model's input is checked against it before `handler` runs (a mismatch is a
    /// tool error the model can read and fix).
    pub fn typed<I, O, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Self
    where
        I: schemars::JsonSchema + serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize,
        F: Fn(I, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let schema = serde_json::to_value(schemars::schema_for!(I)).unwrap_or(Value::Null);
        let handler = Arc::new(handler);
        Self::new(name, description, schema, move |input: Value, context| {
            let handler = handler.clone();
            async move {
                let input: I = serde_json::from_value(input)
                    .map_err(|error| ToolError::new(format!("invalid input: {error}")))?;
                let output = handler(input, context).await?;
                serde_json::to_value(output)
                    .map_err(|error| ToolError::new(format!("the output is not JSON: {error}")))
            }
        })
    }

    /// A tool the browser executes: the model may call it, the server never runs it.
    pub fn client_side(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
    ) -> Self {
        FunctionTool {
            name: name.into(),
            description: description.into(),
            input_schema,
            handler: None,
        }
    }
}

#[async_trait]
impl Tool for FunctionTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        self.input_schema.clone()
    }

    fn runs_on_client(&self) -> bool {
        self.handler.is_none()
    }

    async fn execute(&self, input: Value, context: ToolContext) -> Result<Value, ToolError> {
        match &self.handler {
            Some(handler) => handler(input, context).await,
            None => Err(ToolError::new(format!(
                "`{}` runs in the browser, not on the server",
                self.name
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Deserialize, schemars::JsonSchema)]
    struct Forecast {
        /// The city to forecast.
        city: String,
        days: Option<u8>,
    }

    #[derive(Serialize)]
    struct Report {
        summary: String,
    }

    fn context() -> ToolContext {
        ToolContext {
            chat_id: "c".into(),
            tool_call_id: "t".into(),
            stop: CancellationToken::new(),
            state: Default::default(),
            controls: Default::default(),
            writer: super::super::DataWriter::detached(),
        }
    }

    fn forecast() -> FunctionTool {
        FunctionTool::typed(
            "forecast",
            "Weather.",
            |input: Forecast, _context| async move {
                Ok(Report {
                    summary: format!("{} for {} days", input.city, input.days.unwrap_or(1)),
                })
            },
        )
    }

    #[test]
    fn the_schema_comes_from_the_input_type() {
        let schema = forecast().input_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["city"]));
        assert_eq!(
            schema["properties"]["city"]["description"],
            "The city to forecast."
        );
    }

    #[tokio::test]
    async fn input_is_checked_and_output_serialized() {
        let tool = forecast();
        let output = tool
            .execute(json!({"city": "Oslo", "days": 3}), context())
            .await;
        assert_eq!(output, Ok(json!({"summary": "Oslo for 3 days"})));
        let error = tool
            .execute(json!({"days": "many"}), context())
            .await
            .expect_err("invalid");
        assert!(error.0.starts_with("invalid input"), "{error}");
    }
}
