//! CallPop's core: what a call is, independent of any phone system, and how each provider's
//! deliveries become that. Pure functions over bytes and values: no async runtime, database,
//! network or filesystem, so the parsers and the call derivation are fuzzed against this crate
//! alone (docs/FUZZING.md).
//!
//! The data flow starts here: a provider's body → its parser ([`ringcentral::webhook`],
//! [`ringcentral::calllog`], [`ringotel`]) → [`model::ParsedDelivery`] with normalized
//! [`model::CallEvent`]s → [`calls::derive`] → one [`model::Call`] row.
#![warn(missing_docs)]

pub mod calls;
pub mod contacts;
pub mod crm;
pub mod lines;
pub mod links;
pub mod model;
pub mod names;
pub mod numbers;
pub mod reparse;
pub mod request_head;
pub mod ringcentral;
pub mod ringotel;
pub mod routes;
pub mod secret;
pub mod text;
pub mod wire;

pub use secret::Secret;
pub use wire::ParseError;
