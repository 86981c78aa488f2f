//! Who may do what: the environment's secret keys and the session-scoped tokens they sign.

mod keys;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
mod oidc;
mod token;

pub use keys::SecretKeys;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub use oidc::{EndUser, OidcError, OidcVerifier};
pub use token::{Access, SessionClaims, SessionToken, TokenError, scope};
