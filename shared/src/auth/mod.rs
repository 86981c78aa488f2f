//! Who may do what: the environment's secret keys and the session-scoped tokens they sign.

mod keys;
#[cfg(feature = "native")]
mod oidc;
mod token;

pub use keys::SecretKeys;
#[cfg(feature = "native")]
pub use oidc::{EndUser, OidcError, OidcVerifier};
pub use token::{Access, SessionClaims, SessionToken, TokenError, scope};
