//! RingCentral: webhook wire formats and their parser, the REST client and call-log records. Nothing outside this module knows a
//! RingCentral field name.

pub mod api;
pub mod calllog;
pub mod webhook;
