//! TLS for every HTTPS client in the process: rustls with the `ring` provider.

/// Installs the TLS crypto provider once per process (rustls needs one chosen); every HTTP
/// client in the process needs it, including test tools built on this crate. Calling it again
/// does nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
