//! Who may do what: the environment's secret keys and the session-scoped tokens they sign.

mod keys;
mod token;

pub use keys::SecretKeys;
pub use token::{Access, SessionClaims, SessionToken, TokenError, scope};
