//! CallPop's desktop backend, without a GUI toolkit: [`app::App`] answers every command the
//! window sends and runs the engine; [`window`] is what the window reads, [`export`] its CSV export, [`settings`] what
//! it edits, [`tray`] what the tray shows; [`bindings`] renders the TypeScript contract. The
//! Tauri shell (`src-tauri/`) only forwards to it, so all of it is tested with `cargo test`.
#![warn(missing_docs)]

pub mod app;
pub mod bindings;
pub mod error;
pub mod export;
pub mod settings;
pub mod tray;
pub mod window;
