//! RingCentral's formats: webhook (and WebSocket) notification bodies and call-log records.
//! Nothing outside these parsers knows a RingCentral field name; the REST client that fetches
//! them is the `callpop-ringcentral` crate.

pub mod calllog;
pub mod webhook;
