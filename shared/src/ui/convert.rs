//! UI messages to model messages, with the rules of the `ai` package's `convertToModelMessages`.

use serde_json::Value;

use super::{Role, ToolPart, ToolState, UIMessage, UIPart};
use crate::model::{
    AssistantContent, ModelMessage, ToolContent, ToolOutput, ToolResult, UserContent,
};

/// Options of the conversion.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvertOptions {
    /// Drop tool calls that never got past streaming their input or never got a result, instead
    /// of sending the model a call without an answer.
    pub ignore_incomplete_tool_calls: bool,
}

/// Converts a conversation for a model call.
pub fn to_model_messages(messages: &[UIMessage], options: ConvertOptions) -> Vec<ModelMessage> {
    let mut out = Vec::new();
    for message in messages {
        match message.role {
            Role::System => {
                let content: String = message
                    .parts
                    .iter()
                    .filter_map(|part| match part {
                        UIPart::Text(text) => Some(text.text.as_str()),
                        _ => None,
                    })
                    .collect();
                out.push(ModelMessage::System { content });
            }
            Role::User => {
                let content: Vec<UserContent> = message
                    .parts
                    .iter()
                    .filter_map(|part| match part {
                        UIPart::Text(text) => Some(UserContent::Text {
                            text: text.text.clone(),
                        }),
                        UIPart::File(file) => Some(UserContent::File {
                            data: file.url.clone(),
                            media_type: file.media_type.clone(),
                            filename: file.filename.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                out.push(ModelMessage::User { content });
            }
            Role::Assistant => convert_assistant(message, options, &mut out),
        }
    }
    out
}

/// An assistant message becomes, per step, one assistant message and one tool message.
fn convert_assistant(message: &UIMessage, options: ConvertOptions, out: &mut Vec<ModelMessage>) {
    let mut block: Vec<&UIPart> = Vec::new();
    for part in &message.parts {
        if matches!(part, UIPart::StepStart) {
            flush_block(&block, options, out);
            block.clear();
        } else {
            block.push(part);
        }
    }
    flush_block(&block, options, out);
}

fn flush_block(block: &[&UIPart], options: ConvertOptions, out: &mut Vec<ModelMessage>) {
    if block.is_empty() {
        return;
    }
    let mut assistant = Vec::new();
    let mut tool_parts: Vec<&ToolPart> = Vec::new();
    for part in block {
        match part {
            UIPart::Text(text) => assistant.push(AssistantContent::Text {
                text: text.text.clone(),
            }),
            UIPart::Reasoning(reasoning) => assistant.push(AssistantContent::Reasoning {
                text: reasoning.text.clone(),
                provider_options: reasoning.provider_metadata.clone(),
            }),
            UIPart::File(file) => assistant.push(AssistantContent::File {
                data: file.url.clone(),
                media_type: file.media_type.clone(),
            }),
            UIPart::Tool(tool) => {
                if !tool_call_is_sendable(tool, options) {
                    continue;
                }
                let provider_executed = tool.provider_executed == Some(true);
                assistant.push(AssistantContent::ToolCall {
                    tool_call_id: tool.tool_call_id.clone(),
                    tool_name: tool.tool_name.clone(),
                    input: tool
                        .input
                        .clone()
                        .unwrap_or(Value::Object(Default::default())),
                    provider_executed,
                });
                if let Some(approval) = &tool.approval {
                    assistant.push(AssistantContent::ToolApprovalRequest {
                        approval_id: approval.id.clone(),
                        tool_call_id: tool.tool_call_id.clone(),
                    });
                }
                if provider_executed {
                    if let Some(output) = tool_output(tool) {
                        assistant.push(AssistantContent::ToolResult(ToolResult {
                            tool_call_id: tool.tool_call_id.clone(),
                            tool_name: tool.tool_name.clone(),
                            output,
                        }));
                    }
                } else {
                    tool_parts.push(tool);
                }
            }
            _ => {}
        }
    }
    if !assistant.is_empty() {
        out.push(ModelMessage::Assistant { content: assistant });
    }
    let mut tool_content = Vec::new();
    for tool in tool_parts {
        if let Some(approval) = &tool.approval
            && let Some(approved) = approval.approved
        {
            tool_content.push(ToolContent::ToolApprovalResponse {
                approval_id: approval.id.clone(),
                approved,
                reason: approval.reason.clone(),
            });
        }
        if let Some(output) = tool_output(tool) {
            tool_content.push(ToolContent::ToolResult(ToolResult {
                tool_call_id: tool.tool_call_id.clone(),
                tool_name: tool.tool_name.clone(),
                output,
            }));
        }
    }
    if !tool_content.is_empty() {
        out.push(ModelMessage::Tool {
            content: tool_content,
        });
    }
}

fn tool_call_is_sendable(tool: &ToolPart, options: ConvertOptions) -> bool {
    match tool.state {
        ToolState::InputStreaming => false,
        ToolState::InputAvailable | ToolState::ApprovalRequested | ToolState::ApprovalResponded => {
            !options.ignore_incomplete_tool_calls
        }
        ToolState::OutputAvailable | ToolState::OutputError | ToolState::OutputDenied => true,
    }
}

/// What the model is told about a tool's outcome, if it has one.
fn tool_output(tool: &ToolPart) -> Option<ToolOutput> {
    match tool.state {
        ToolState::OutputAvailable => Some(match &tool.output {
            Some(Value::String(text)) => ToolOutput::Text(text.clone()),
            Some(value) => ToolOutput::Json(value.clone()),
            None => ToolOutput::Json(Value::Null),
        }),
        ToolState::OutputError => Some(ToolOutput::ErrorText(
            tool.error_text.clone().unwrap_or_default(),
        )),
        ToolState::OutputDenied => Some(ToolOutput::ExecutionDenied(
            tool.approval.as_ref().and_then(|a| a.reason.clone()),
        )),
        ToolState::ApprovalResponded
            if tool.approval.as_ref().and_then(|a| a.approved) == Some(false) =>
        {
            Some(ToolOutput::ExecutionDenied(
                tool.approval.as_ref().and_then(|a| a.reason.clone()),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(value: Value) -> Vec<UIMessage> {
        serde_json::from_value(value).expect("valid messages")
    }

    fn convert(value: Value) -> Value {
        serde_json::to_value(to_model_messages(
            &messages(value),
            ConvertOptions::default(),
        ))
        .expect("json")
    }

    #[test]
    fn system_and_user_messages_keep_text_and_files() {
        let converted = convert(json!([
            {"id":"s","role":"system","parts":[{"type":"text","text":"Be "},{"type":"text","text":"kind."}]},
            {"id":"u","role":"user","parts":[
                {"type":"text","text":"What is this?"},
                {"type":"file","mediaType":"image/png","url":"https://x/a.png","filename":"a.png"},
                {"type":"data-ui","data":{}}
            ]}
        ]));
        assert_eq!(
            converted,
            json!([
                {"role":"system","content":"Be kind."},
                {"role":"user","content":[
                    {"type":"text","text":"What is this?"},
                    {"type":"file","data":"https://x/a.png","mediaType":"image/png","filename":"a.png"}
                ]}
            ])
        );
    }

    #[test]
    fn assistant_steps_split_into_calls_and_results() {
        let converted = convert(json!([
            {"id":"a","role":"assistant","parts":[
                {"type":"step-start"},
                {"type":"text","text":"Rolling.","state":"done"},
                {"type":"tool-roll_dice","toolCallId":"c1","state":"output-available","input":{"sides":6},"output":{"total":4}},
                {"type":"tool-fail","toolCallId":"c2","state":"output-error","input":{},"errorText":"boom"},
                {"type":"step-start"},
                {"type":"text","text":"You got 4.","state":"done"}
            ]}
        ]));
        assert_eq!(
            converted,
            json!([
                {"role":"assistant","content":[
                    {"type":"text","text":"Rolling."},
                    {"type":"tool-call","toolCallId":"c1","toolName":"roll_dice","input":{"sides":6}},
                    {"type":"tool-call","toolCallId":"c2","toolName":"fail","input":{}}
                ]},
                {"role":"tool","content":[
                    {"type":"tool-result","toolCallId":"c1","toolName":"roll_dice","output":{"type":"json","value":{"total":4}}},
                    {"type":"tool-result","toolCallId":"c2","toolName":"fail","output":{"type":"error-text","value":"boom"}}
                ]},
                {"role":"assistant","content":[{"type":"text","text":"You got 4."}]}
            ])
        );
    }

    #[test]
    fn approvals_become_requests_and_responses() {
        let converted = convert(json!([
            {"id":"a","role":"assistant","parts":[
                {"type":"tool-delete","toolCallId":"c1","state":"approval-responded","input":{"path":"/tmp"},
                 "approval":{"id":"ap1","approved":false,"reason":"not now"}}
            ]}
        ]));
        assert_eq!(
            converted,
            json!([
                {"role":"assistant","content":[
                    {"type":"tool-call","toolCallId":"c1","toolName":"delete","input":{"path":"/tmp"}},
                    {"type":"tool-approval-request","approvalId":"ap1","toolCallId":"c1"}
                ]},
                {"role":"tool","content":[
                    {"type":"tool-approval-response","approvalId":"ap1","approved":false,"reason":"not now"},
                    {"type":"tool-result","toolCallId":"c1","toolName":"delete","output":{"type":"execution-denied","value":"not now"}}
                ]}
            ])
        );
    }

    #[test]
    fn streaming_tool_calls_are_never_sent_and_incomplete_ones_can_be_dropped() {
        let history = messages(json!([
            {"id":"a","role":"assistant","parts":[
                {"type":"text","text":"Hi","state":"done"},
                {"type":"tool-x","toolCallId":"c1","state":"input-streaming"},
                {"type":"tool-y","toolCallId":"c2","state":"input-available","input":{}}
            ]}
        ]));
        let kept = to_model_messages(&history, ConvertOptions::default());
        assert_eq!(
            serde_json::to_value(&kept).expect("json")[0]["content"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let dropped = to_model_messages(
            &history,
            ConvertOptions {
                ignore_incomplete_tool_calls: true,
            },
        );
        assert_eq!(
            serde_json::to_value(&dropped).expect("json"),
            json!([{"role":"assistant","content":[{"type":"text","text":"Hi"}]}])
        );
    }

    #[test]
    fn provider_executed_results_stay_in_the_assistant_message() {
        let converted = convert(json!([
            {"id":"a","role":"assistant","parts":[
                {"type":"tool-web_search","toolCallId":"c1","state":"output-available","input":{"q":"x"},
                 "output":"results","providerExecuted":true}
            ]}
        ]));
        assert_eq!(
            converted,
            json!([{"role":"assistant","content":[
                {"type":"tool-call","toolCallId":"c1","toolName":"web_search","input":{"q":"x"},"providerExecuted":true},
                {"type":"tool-result","toolCallId":"c1","toolName":"web_search","output":{"type":"text","value":"results"}}
            ]}])
        );
    }
}
