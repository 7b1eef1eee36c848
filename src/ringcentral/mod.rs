//! RingCentral: webhook wire formats and their parser. Nothing outside this module knows a
//! RingCentral field name.

pub mod webhook;
