//! The text and reasoning parts a model's deltas fill: which one is open, and the chunks that
//! open, fill and close them.

use serde_json::Value;

use super::{Run, SinkClosed};
use crate::ui::UIMessageChunk;

/// The streaming part kinds a model's deltas fill.
#[derive(Clone, Copy)]
pub(super) enum PartKind {
    Text,
    Reasoning,
}

impl PartKind {
    fn other(self) -> PartKind {
        match self {
            PartKind::Text => PartKind::Reasoning,
            PartKind::Reasoning => PartKind::Text,
        }
    }

    fn start(self, id: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextStart {
                id,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningStart {
                id,
                provider_metadata: None,
            },
        }
    }

    fn delta(self, id: String, delta: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextDelta {
                id,
                delta,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningDelta {
                id,
                delta,
                provider_metadata: None,
            },
        }
    }

    fn end(self, id: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextEnd {
                id,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningEnd {
                id,
                provider_metadata: None,
            },
        }
    }
}

/// The text and reasoning parts open in a step; their ids are unique within a turn.
#[derive(Default)]
pub(super) struct PartIds {
    text: Option<String>,
    reasoning: Option<String>,
}

impl PartIds {
    fn slot(&mut self, kind: PartKind) -> &mut Option<String> {
        match kind {
            PartKind::Text => &mut self.text,
            PartKind::Reasoning => &mut self.reasoning,
        }
    }
}

/// A delta of `kind`: closes the open part of the other kind, opens one of this kind if needed.
pub(super) async fn stream_delta(
    run: &mut Run<'_>,
    ids: &mut PartIds,
    kind: PartKind,
    delta: String,
) -> Result<(), SinkClosed> {
    if let Some(id) = ids.slot(kind.other()).take() {
        run.emit(kind.other().end(id)).await?;
    }
    let id = match ids.slot(kind) {
        Some(id) => id.clone(),
        None => {
            let prefix = match kind {
                PartKind::Text => "text",
                PartKind::Reasoning => "reasoning",
            };
            let id = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
            run.emit(kind.start(id.clone())).await?;
            *ids.slot(kind) = Some(id.clone());
            id
        }
    };
    run.emit(kind.delta(id, delta)).await
}

/// Ends the open reasoning part with the provider's metadata. With none open, the provider
/// reasoned without showing it: a part with no text keeps the metadata, so the reasoning goes
/// back to the provider on later calls.
pub(super) async fn end_reasoning(
    run: &mut Run<'_>,
    ids: &mut PartIds,
    provider_metadata: Option<Value>,
) -> Result<(), SinkClosed> {
    let id = match ids.reasoning.take() {
        Some(id) => id,
        None if provider_metadata.is_none() => return Ok(()),
        None => {
            if let Some(text) = ids.text.take() {
                run.emit(PartKind::Text.end(text)).await?;
            }
            let id = format!("reasoning-{}", uuid::Uuid::new_v4().simple());
            run.emit(PartKind::Reasoning.start(id.clone())).await?;
            id
        }
    };
    run.emit(UIMessageChunk::ReasoningEnd {
        id,
        provider_metadata,
    })
    .await
}
