//! The output items of tools OpenAI runs itself (web search, file search, code interpreter,
//! image generation, MCP servers, a shell in its containers), as provider-executed tool calls
//! with their results; and the items of tools a client would have to run, which no agent here
//! declared (custom tools, a local shell, patches, a computer), which are skipped.

use serde_json::{Map, Value};

/// What an output item of a tool amounts to.
#[derive(Debug, PartialEq)]
pub(super) enum HostedItem {
    /// A call the provider ran, with its result when the same item carries it.
    Call {
        id: String,
        name: &'static str,
        input: Value,
        result: Option<HostedResult>,
    },
    /// The result of a call an earlier item made (a hosted shell's output).
    Result {
        id: String,
        name: &'static str,
        result: HostedResult,
    },
    /// Nothing to show; the reason goes to the debug log.
    Skipped(String),
}

#[derive(Debug, PartialEq)]
pub(super) struct HostedResult {
    pub output: Value,
    pub failed: bool,
}

/// Reads a finished output item that is neither a message, reasoning nor a function call.
/// `hosted_shell_calls` are the ids of the hosted shell calls seen so far, whose outputs come
/// as items of their own.
pub(super) fn read_item(item: &Value, hosted_shell_calls: &[String]) -> HostedItem {
    let kind = item["type"].as_str().unwrap_or("untyped");
    let id = || item["id"].as_str().map(str::to_owned);
    let call = |name: &'static str, input: &[&str], output: &[&str]| match id() {
        Some(id) => HostedItem::Call {
            id,
            name,
            input: fields(item, input),
            result: Some(HostedResult {
                output: fields(item, output),
                failed: item["status"] == "failed",
            }),
        },
        None => HostedItem::Skipped(format!("a {kind} item without an id")),
    };
    match kind {
        "web_search_call" => call("web_search", &["action"], &["status"]),
        "file_search_call" => call("file_search", &["queries"], &["results", "status"]),
        "code_interpreter_call" => call(
            "code_interpreter",
            &["code", "container_id"],
            &["outputs", "status"],
        ),
        "image_generation_call" => call(
            "image_generation",
            &[
                "revised_prompt",
                "size",
                "quality",
                "background",
                "output_format",
            ],
            &["result", "status"],
        ),
        "mcp_call" => mcp_call(item),
        "shell_call" if is_hosted_shell(item) => match item["call_id"].as_str() {
            Some(call_id) => HostedItem::Call {
                id: call_id.to_owned(),
                name: "shell",
                input: fields(item, &["action"]),
                result: None,
            },
            None => HostedItem::Skipped("a shell call without a call id".into()),
        },
        "shell_call_output" => match item["call_id"].as_str() {
            Some(call_id) if hosted_shell_calls.iter().any(|id| id == call_id) => {
                HostedItem::Result {
                    id: call_id.to_owned(),
                    name: "shell",
                    result: HostedResult {
                        output: fields(item, &["output"]),
                        failed: item["status"] == "failed",
                    },
                }
            }
            _ => HostedItem::Skipped("the output of a shell call no item announced".into()),
        },
        other => HostedItem::Skipped(format!(
            "a {other} item, which is for a client to run or has no tool part"
        )),
    }
}

/// A call to a tool of a remote MCP server: its arguments are JSON text, its error is a
/// message.
fn mcp_call(item: &Value) -> HostedItem {
    let Some(id) = item["id"].as_str() else {
        return HostedItem::Skipped("an mcp_call item without an id".into());
    };
    let mut input = Map::new();
    for field in ["server_label", "name"] {
        if let Some(value) = item.get(field).filter(|value| !value.is_null()) {
            input.insert(field.into(), value.clone());
        }
    }
    if let Some(arguments) = item["arguments"].as_str() {
        let arguments = serde_json::from_str(arguments).unwrap_or_else(|_| arguments.into());
        input.insert("arguments".into(), arguments);
    }
    let error = item.get("error").filter(|error| !error.is_null());
    let result = match error {
        Some(error) => HostedResult {
            output: error.clone(),
            failed: true,
        },
        None => HostedResult {
            output: item.get("output").cloned().unwrap_or(Value::Null),
            failed: item["status"] == "failed",
        },
    };
    HostedItem::Call {
        id: id.to_owned(),
        name: "mcp",
        input: Value::Object(input),
        result: Some(result),
    }
}

/// A shell call runs in OpenAI's container when it names an environment other than the local
/// one; a local one is for the client to run.
fn is_hosted_shell(item: &Value) -> bool {
    item["environment"]["type"]
        .as_str()
        .is_some_and(|kind| kind != "local")
}

/// The fields of `item` that are there and not `null`, as an object.
fn fields(item: &Value, names: &[&str]) -> Value {
    let picked: Map<String, Value> = names
        .iter()
        .filter_map(|name| {
            let value = item.get(*name).filter(|value| !value.is_null())?;
            Some(((*name).to_owned(), value.clone()))
        })
        .collect();
    Value::Object(picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosted_tools_become_calls_with_their_results() {
        let search = json!({
            "id": "ws_1", "type": "web_search_call", "status": "completed",
            "action": { "type": "search", "query": "rust" },
        });
        assert_eq!(
            read_item(&search, &[]),
            HostedItem::Call {
                id: "ws_1".into(),
                name: "web_search",
                input: json!({ "action": { "type": "search", "query": "rust" } }),
                result: Some(HostedResult {
                    output: json!({ "status": "completed" }),
                    failed: false,
                }),
            }
        );
        let code = json!({
            "id": "ci_1", "type": "code_interpreter_call", "status": "failed",
            "code": "1/0", "container_id": "cntr", "outputs": null,
        });
        assert_eq!(
            read_item(&code, &[]),
            HostedItem::Call {
                id: "ci_1".into(),
                name: "code_interpreter",
                input: json!({ "code": "1/0", "container_id": "cntr" }),
                result: Some(HostedResult {
                    output: json!({ "status": "failed" }),
                    failed: true,
                }),
            }
        );
    }

    #[test]
    fn mcp_calls_parse_their_arguments_and_report_errors() {
        let ok = json!({
            "id": "mcp_1", "type": "mcp_call", "server_label": "docs", "name": "search",
            "arguments": "{\"q\":\"x\"}", "output": "found", "error": null,
        });
        assert_eq!(
            read_item(&ok, &[]),
            HostedItem::Call {
                id: "mcp_1".into(),
                name: "mcp",
                input: json!({ "server_label": "docs", "name": "search", "arguments": { "q": "x" } }),
                result: Some(HostedResult {
                    output: json!("found"),
                    failed: false,
                }),
            }
        );
        let failed = json!({
            "id": "mcp_2", "type": "mcp_call", "name": "search", "arguments": "not json",
            "error": "server unreachable",
        });
        let HostedItem::Call { input, result, .. } = read_item(&failed, &[]) else {
            panic!("a call");
        };
        assert_eq!(input, json!({ "name": "search", "arguments": "not json" }));
        assert_eq!(
            result,
            Some(HostedResult {
                output: json!("server unreachable"),
                failed: true,
            })
        );
    }

    #[test]
    fn a_hosted_shell_gets_its_output_from_a_later_item() {
        let call = json!({
            "id": "sh_1", "type": "shell_call", "call_id": "call_1",
            "action": { "commands": ["ls"] },
            "environment": { "type": "container_reference", "container_id": "cntr" },
        });
        assert_eq!(
            read_item(&call, &[]),
            HostedItem::Call {
                id: "call_1".into(),
                name: "shell",
                input: json!({ "action": { "commands": ["ls"] } }),
                result: None,
            }
        );
        let output = json!({
            "id": "sho_1", "type": "shell_call_output", "call_id": "call_1", "status": "completed",
            "output": [{ "stdout": "a\n" }],
        });
        assert_eq!(
            read_item(&output, &["call_1".to_owned()]),
            HostedItem::Result {
                id: "call_1".into(),
                name: "shell",
                result: HostedResult {
                    output: json!({ "output": [{ "stdout": "a\n" }] }),
                    failed: false,
                },
            }
        );
        assert!(matches!(read_item(&output, &[]), HostedItem::Skipped(_)));
    }

    #[test]
    fn tools_for_a_client_to_run_are_skipped() {
        for item in [
            json!({ "id": "sh_1", "type": "shell_call", "call_id": "c", "action": {} }),
            json!({ "id": "lsh_1", "type": "local_shell_call", "call_id": "c", "action": {} }),
            json!({ "id": "ct_1", "type": "custom_tool_call", "call_id": "c", "name": "sql", "input": "SELECT 1" }),
            json!({ "id": "ap_1", "type": "apply_patch_call", "call_id": "c" }),
            json!({ "id": "mcpl_1", "type": "mcp_list_tools", "tools": [] }),
            json!({ "type": "web_search_call" }),
            json!({ "id": "x" }),
        ] {
            assert!(
                matches!(read_item(&item, &[]), HostedItem::Skipped(_)),
                "{item}"
            );
        }
    }
}
