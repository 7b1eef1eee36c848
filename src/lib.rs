//! CallPop engine: webhook receiver, provider parsers, call semantics and the local call
//! history. No GUI library is used here; the desktop shell embeds this crate.
#![warn(missing_docs)]

pub mod app;
pub mod backfill;
pub mod bindings;
pub mod calls;
pub mod clock;
pub mod config;
pub mod engine;
pub mod health;
pub mod model;
pub mod notify;
pub mod numbers;
pub mod popups;
pub mod receiver;
pub mod replay;
pub mod ringcentral;
pub mod ringotel;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod store;
pub mod subscriptions;
pub mod tray;
pub mod tunnel;
pub mod wake;
pub mod window;
pub mod wire;

pub use wire::ParseError;
