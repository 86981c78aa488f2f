//! Shared helpers of the integration tests. Each test binary uses only some of them.
#![allow(dead_code)]

pub mod mock_openai;
