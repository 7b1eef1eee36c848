//! Hub mode's protocol, without IO (docs/HUB.md): the hub's identity (a key pair kept in its
//! data dir and a self-signed certificate made on that key at every start), pinning that key on
//! a desk instead of trusting a CA, one-time pairing codes with a SPAKE2 exchange that proves
//! the hub's key to the desk and the desk to the hub, and the JSON the desk API speaks.
//!
//! The engine serves and calls this over HTTPS; nothing here opens a socket or a file other
//! than the hub's key.

pub mod identity;
pub mod pairing;
pub mod pin;
pub mod wire;

pub use identity::{Fingerprint, HubIdentity};
pub use pairing::{Code, PairingError};
pub use pin::HubVerifier;

/// What went wrong with the hub's identity or TLS set-up.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The key file could not be read or written.
    #[error("cannot use the hub's key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file holds something that is not a key CallPop made.
    #[error("the hub's key file {path} is damaged ({detail}); restore it from a backup, or move it away to make a new identity (every desk then pairs again)")]
    BadKey {
        /// The file.
        path: std::path::PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The certificate could not be made.
    #[error("cannot make the hub's certificate: {0}")]
    Certificate(String),
    /// rustls refused the set-up.
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
}
