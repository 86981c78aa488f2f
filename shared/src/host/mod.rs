//! Glue between the core and the platforms it runs on, for hosts whose `main` should stay a few
//! lines. The local server needs none; the Worker keeps its own.

#[cfg(feature = "lambda")]
pub mod lambda;
