//! Typed messages: your own message metadata and `data-*` part types in Rust, the counterpart of
//! the AI SDK's `UIMessage<Metadata, DataTypes>`. Tools write them through
//! [`DataWriter::part`](crate::agent::DataWriter::part) and
//! [`DataWriter::typed_metadata`](crate::agent::DataWriter::typed_metadata); code reading
//! messages gets them back typed. Derive `ts_rs::TS` on the same types to generate their
//! TypeScript for the frontend (the `research-desk` example shows how).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{UIMessage, UIPart};

/// A `data-*` part type: the part is `data-{NAME}` and its `data` is this type.
pub trait DataType: Serialize + DeserializeOwned {
    /// The name after `data-` (`weather` for `data-weather`).
    const NAME: &'static str;
}

impl UIMessage {
    /// The message's `data-{T::NAME}` parts, in order, as `T`.
    pub fn data_parts<T: DataType>(&self) -> Result<Vec<T>, serde_json::Error> {
        let kind = format!("data-{}", T::NAME);
        self.parts
            .iter()
            .filter_map(|part| match part {
                UIPart::Data(data) if data.kind == kind => Some(data),
                _ => None,
            })
            .map(|data| T::deserialize(&data.data))
            .collect()
    }

    /// The message metadata as `M` (`None` when the message has none).
    pub fn metadata_as<M: DeserializeOwned>(&self) -> Result<Option<M>, serde_json::Error> {
        self.metadata.as_ref().map(M::deserialize).transpose()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Weather {
        city: String,
        celsius: f64,
    }

    impl DataType for Weather {
        const NAME: &'static str = "weather";
    }

    #[test]
    fn data_parts_and_metadata_read_back_typed() {
        let message: UIMessage = serde_json::from_value(json!({
            "id": "m1",
            "role": "assistant",
            "metadata": {"model": "m"},
            "parts": [
                {"type": "data-weather", "id": "w1", "data": {"city": "Oslo", "celsius": 3.5}},
                {"type": "text", "text": "Cold."},
                {"type": "data-other", "data": 1}
            ]
        }))
        .expect("message");
        assert_eq!(
            message.data_parts::<Weather>().expect("typed"),
            [Weather {
                city: "Oslo".into(),
                celsius: 3.5
            }]
        );
        #[derive(Debug, PartialEq, Deserialize)]
        struct Meta {
            model: String,
        }
        assert_eq!(
            message.metadata_as::<Meta>().expect("typed"),
            Some(Meta { model: "m".into() })
        );
        assert!(message.metadata_as::<Vec<u8>>().is_err());
    }
}
