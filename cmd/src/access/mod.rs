//! Access control for the client APIs: tokens with scopes, kept hashed in
//! the volume. The daemon checks each request against them
//! (`daemon/auth.rs`); `hydra token` manages them.

mod scope;
mod tokens;

pub use scope::{Need, Prefix, Scope, ScopeError, allows};
pub use tokens::{SECRET_PREFIX, Token, TokenError, TokenInfo, Tokens, hash};
