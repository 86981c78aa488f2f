//! A tool call streamed in pieces, as every provider sends one: its id and name, then its
//! arguments (JSON text) in fragments, then the end of the call. Providers map their wire onto
//! [`StreamedToolCall`]; it says the call's progress in [`ModelEvent`]s the same way for all.

use super::ModelEvent;

/// A tool call whose start has been announced and whose arguments are arriving.
#[derive(Debug)]
pub(crate) struct StreamedToolCall {
    id: String,
    name: String,
    arguments: String,
}

impl StreamedToolCall {
    /// The call begins: `ToolCallStart`.
    pub(crate) fn start(id: String, name: String, out: &mut Vec<ModelEvent>) -> Self {
        out.push(ModelEvent::ToolCallStart {
            id: id.clone(),
            name: name.clone(),
        });
        StreamedToolCall {
            id,
            name,
            arguments: String::new(),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The arguments so far.
    pub(crate) fn arguments(&self) -> &str {
        &self.arguments
    }

    /// A fragment of the arguments: `ToolCallDelta`, unless it is empty.
    pub(crate) fn push_arguments(&mut self, fragment: &str, out: &mut Vec<ModelEvent>) {
        if fragment.is_empty() {
            return;
        }
        self.arguments.push_str(fragment);
        out.push(ModelEvent::ToolCallDelta {
            id: self.id.clone(),
            arguments_delta: fragment.to_owned(),
        });
    }

    /// The whole call: `ToolCall`. A call without arguments takes no input, and `{}` is what the
    /// engine can parse.
    pub(crate) fn finish(self) -> ModelEvent {
        let arguments = if self.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            self.arguments
        };
        ModelEvent::ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_starts_streams_its_fragments_and_finishes_whole() {
        let mut out = Vec::new();
        let mut call = StreamedToolCall::start("c1".into(), "roll".into(), &mut out);
        call.push_arguments("{\"sides\":", &mut out);
        call.push_arguments("", &mut out);
        call.push_arguments(" 6}", &mut out);
        assert_eq!(call.id(), "c1");
        assert_eq!(call.arguments(), "{\"sides\": 6}");
        out.push(call.finish());
        assert_eq!(
            out,
            vec![
                ModelEvent::ToolCallStart {
                    id: "c1".into(),
                    name: "roll".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "c1".into(),
                    arguments_delta: "{\"sides\":".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "c1".into(),
                    arguments_delta: " 6}".into(),
                },
                ModelEvent::ToolCall {
                    id: "c1".into(),
                    name: "roll".into(),
                    arguments: "{\"sides\": 6}".into(),
                },
            ]
        );
    }

    #[test]
    fn a_call_without_arguments_takes_an_empty_object() {
        let mut out = Vec::new();
        let mut call = StreamedToolCall::start("c1".into(), "now".into(), &mut out);
        call.push_arguments(" \n", &mut out);
        assert_eq!(
            call.finish(),
            ModelEvent::ToolCall {
                id: "c1".into(),
                name: "now".into(),
                arguments: "{}".into(),
            }
        );
    }
}
