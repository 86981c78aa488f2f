//! AWS Bedrock's ConverseStream API: any Bedrock model (or inference profile) behind one wire,
//! signed with SigV4 from the standard AWS credential chain, so a Lambda function needs no API
//! key, only its role.
//!
//! - [`event_stream`]: the binary framing of the response (sans IO).
//! - [`converse`]: the request body and the mapping of the stream's events (sans IO).
//! - `Bedrock`: the `Model`, which signs and sends the one HTTP call (`bedrock` feature).
//!
//! The two wire modules need no AWS crate, so they build with `native` alone: the fuzz targets
//! decode Bedrock's stream without compiling the AWS SDK.

#[cfg(feature = "bedrock")]
mod client;
pub mod converse;
pub mod event_stream;

#[cfg(feature = "bedrock")]
pub use client::{Bedrock, SIGNING_NAME, signature_headers};
