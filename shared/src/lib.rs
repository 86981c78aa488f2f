//! chatfn: durable AI chat agents as serverless functions.
//!
//! This crate is everything that does not depend on where chatfn runs: the two wires (the AI SDK
//! UI message stream and the Trigger.dev chat session wire), the agent engine, the `Model` and
//! `Store` ports with their implementations, sessions and tokens, and the HTTP routes. Each host
//! (local server, Lambda functions, Worker) only wires its runtime to [`http::router`].

#![warn(missing_docs)]

pub mod agent;
pub mod auth;
pub mod clock;
pub mod config;
pub mod events;
pub mod http;
pub mod mcp;
pub mod model;
pub mod runtime;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trigger;
pub mod turn;
pub mod ui;
