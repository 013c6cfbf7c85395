//! Typed configuration. Layers, lowest first: built-in defaults, `config/default.toml`,
//! `--config FILE`, then `SWITCHBOARD__SECTION__KEY` environment variables. String values may
//! use `${VAR}` / `${VAR:-default}`. Secrets are never literal: fields ending in `_env` name the
//! environment variable that holds them.

mod build;
mod load;
mod types;
mod validate;

pub use build::{ChannelIndex, TenantWiring, WebChatEndpoint, build_agents, build_callers, build_tenants};
pub use load::{ConfigError, load};
pub use types::*;
