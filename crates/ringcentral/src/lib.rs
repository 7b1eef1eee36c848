//! The RingCentral REST client CallPop uses: JWT auth (one flow at a time, token cached),
//! rate groups with their penalties, retries, webhook subscriptions, the call log and the
//! WebSocket transport. It
//! fetches; the bodies it fetches are read by `callpop_core::ringcentral`.
#![warn(missing_docs)]

pub mod api;
pub mod filters;
pub mod servers;
pub mod tls;
pub mod websocket;

pub use tls::install_crypto_provider;
