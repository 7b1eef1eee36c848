//! CallPop's engine: everything `callpop serve` runs, and what the desktop app embeds.
//! Configuration and secrets, the webhook receiver and the server it runs on, the public URL
//! (tunnel), the RingCentral subscription keeper and backfill, popups, health, and
//! [`engine::Engine`], which wires them: HTTP → verify → parse (`callpop_core`) → store
//! (`callpop_store`, one transaction, synced) → acknowledge → broadcast → popups · window · CLI.
#![warn(missing_docs)]

pub mod backfill;
pub mod config;
pub mod deliveries;
pub mod desk;
pub mod engine;
pub mod health;
pub mod hub;
pub mod instance;
pub mod notify;
pub mod popups;
pub mod port_holder;
pub mod receiver;
pub mod replay;
pub mod secrets;
pub mod server;
pub mod subscriptions;
pub mod transport;
pub mod tunnel;
pub mod wake;
pub mod websocket;

/// Whether a log event may be written whatever the log filter says: tungstenite, below INFO,
/// traces the WebSocket upgrade request (its address carries a single-use token) and every
/// frame (among them the session's `wsc` token), so it never gets past INFO.
pub fn log_allowed(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    let websocket = target.starts_with("tungstenite") || target.starts_with("tokio_tungstenite");
    !websocket || *meta.level() <= tracing::Level::INFO
}
