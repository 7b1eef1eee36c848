//! How a desk checks the hub: by the key it pinned at pairing, not by a certificate authority
//! (there is none on a dealership's LAN). Before pairing, [`FirstSight`] accepts whatever key
//! answers and remembers it; the pairing exchange then proves that key belongs to the hub that
//! showed the code.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::identity::Fingerprint;
use crate::HubError;

/// The key a certificate carries, fingerprinted.
fn fingerprint_of(cert: &CertificateDer<'_>) -> Result<Fingerprint, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    Ok(Fingerprint::of_spki(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// Checks a hub's key. Pinned (after pairing): accepts only the key pinned; validity dates and
/// names are not checked, since the key is the identity and a hub renews its certificate on
/// the same key at every start. First sight (while pairing): accepts whatever key answers
/// (the handshake's signature still proves the server holds it), remembers it for the pairing
/// exchange to bind, and refuses a different key later in the same pairing.
#[derive(Debug)]
pub struct HubVerifier {
    /// The pinned key; None while pairing.
    pinned: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    /// The key accepted first (first sight).
    seen: Mutex<Option<Fingerprint>>,
    /// The other key a server at the hub's address last presented, so the desk can say "the
    /// hub's identity changed" instead of a TLS error; cleared once the right key answers.
    refused: Mutex<Option<Fingerprint>>,
}

impl HubVerifier {
    /// A verifier for the key pinned at pairing.
    pub fn pinned(pinned: Fingerprint, provider: Arc<CryptoProvider>) -> Arc<HubVerifier> {
        HubVerifier::with(Some(pinned), provider)
    }

    /// A verifier for a first connection to a hub.
    pub fn first_sight(provider: Arc<CryptoProvider>) -> Arc<HubVerifier> {
        HubVerifier::with(None, provider)
    }

    fn with(pinned: Option<Fingerprint>, provider: Arc<CryptoProvider>) -> Arc<HubVerifier> {
        Arc::new(HubVerifier {
            pinned,
            provider,
            seen: Mutex::new(None),
            refused: Mutex::new(None),
        })
    }

    /// The other key a server at the hub's address last presented, if one was refused.
    pub fn refused(&self) -> Option<Fingerprint> {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key a first-sight verifier accepted.
    pub fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self, key: Fingerprint) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let expected = self.pinned.or(*seen);
        let accepted = expected.is_none_or(|k| k == key);
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if accepted {
            *seen = Some(key);
            *refused = None;
        } else {
            *refused = Some(key);
        }
        accepted
    }
}

impl ServerCertVerifier for HubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check(fingerprint_of(end_entity)?) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that checks the server with `verifier`.
pub fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ClientConfig, HubError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::HubIdentity;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn hub() -> (tempfile::TempDir, HubIdentity) {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = HubIdentity::load_or_create(dir.path()).expect("identity");
        (dir, identity)
    }

    /// A whole TLS handshake in memory between a desk using `verifier` and `hub`.
    fn handshake(
        verifier: Arc<dyn ServerCertVerifier>,
        hub: &HubIdentity,
    ) -> Result<(), rustls::Error> {
        let client = client_config(verifier, provider()).expect("client config");
        let server = hub.server_config(provider()).expect("server config");
        let name = ServerName::try_from("callpop-hub").expect("name");
        let mut desk = rustls::ClientConnection::new(Arc::new(client), name)?;
        let mut hub = rustls::ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            desk.write_tls(&mut wire).expect("write");
            hub.read_tls(&mut wire.as_slice()).expect("read");
            hub.process_new_packets()?;
            let mut back = Vec::new();
            hub.write_tls(&mut back).expect("write");
            desk.read_tls(&mut back.as_slice()).expect("read");
            desk.process_new_packets()?;
            if !desk.is_handshaking() && !hub.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn the_pinned_key_is_accepted_with_any_certificate_made_on_it() {
        let (dir, first) = hub();
        let pin = HubVerifier::pinned(first.fingerprint(), provider());
        handshake(pin.clone(), &first).expect("pinned key");
        // A restart makes a new certificate on the same key.
        let renewed = HubIdentity::load_or_create(dir.path()).expect("again");
        handshake(pin.clone(), &renewed).expect("renewed certificate");
        assert_eq!(pin.refused(), None);
    }

    #[test]
    fn another_key_at_the_hubs_address_is_refused_and_named() {
        let (_dir, real) = hub();
        let (_other, impostor) = hub();
        let pin = HubVerifier::pinned(real.fingerprint(), provider());
        assert!(handshake(pin.clone(), &impostor).is_err());
        assert_eq!(pin.refused(), Some(impostor.fingerprint()));
        handshake(pin.clone(), &real).expect("the real hub again");
        assert_eq!(pin.refused(), None);
    }

    #[test]
    fn first_sight_remembers_the_key_and_refuses_a_second_one() {
        let (_dir, first) = hub();
        let (_other, second) = hub();
        let sight = HubVerifier::first_sight(provider());
        handshake(sight.clone(), &first).expect("first");
        assert_eq!(sight.seen(), Some(first.fingerprint()));
        assert!(handshake(sight.clone(), &second).is_err());
        assert_eq!(sight.seen(), Some(first.fingerprint()));
    }
}
