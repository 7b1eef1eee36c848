//! CallPop's end-to-end, property and scenario tests, as one test binary (one link instead of
//! ten). Each module drives the real `callpop` binary, the real SQLite file, real HTTP and, where
//! it says so, a real desktop session. `tests/keyring.rs` stays a binary of its own: it points
//! its whole process at a private D-Bus session.

mod common;
mod contacts;
mod crash;
mod hostile;
mod hub;
mod hub_lan;
mod hub_popups;
mod notifications;
mod platform;
mod properties;
mod receiver;
mod scenarios;
mod secrets;
mod storage;
mod tunnel;
mod websocket;
