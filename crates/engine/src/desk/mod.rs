//! Hub mode, the desk's side (docs/HUB.md): joining a hub, the client for its desk API, and
//! the link that keeps the desk's replica of the hub's calls up to date.

pub mod client;
pub mod discover;
pub mod join;
pub mod link;
pub mod sse;
pub mod state;

pub use state::DeskState;
