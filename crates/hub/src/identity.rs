//! The hub's identity: an ECDSA P-256 key pair made once and kept (0600) in the hub's data dir,
//! and a self-signed certificate made on it at every start. Desks pin the key, not the
//! certificate, so a new certificate (or a restored data dir on a new PC) changes nothing for
//! them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, PublicKeyData};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::HubError;

/// File name of the hub's private key inside its data dir.
pub const KEY_FILE: &str = "hub-key.pem";

/// The name in the hub's certificate. Desks connect to an address and check the pinned key,
/// never this name, so it only has to be a valid DNS name.
pub const CERT_NAME: &str = "callpop-hub";

/// SHA-256 of a public key's SubjectPublicKeyInfo: what a desk pins and what mDNS announces.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(spki).into())
    }

    /// Reads the 64-digit hex form (dashes and spaces ignored, any case).
    pub fn parse(text: &str) -> Option<Fingerprint> {
        let digits: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | ':'))
            .collect();
        let bytes = hex::decode(digits).ok()?;
        Some(Fingerprint(bytes.try_into().ok()?))
    }

    /// The first 64 bits in four groups (`3F2A-91C0-…`), for people comparing two screens.
    pub fn short(&self) -> String {
        self.0[..8]
            .chunks(2)
            .map(hex::encode_upper)
            .collect::<Vec<_>>()
            .join("-")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.short())
    }
}

/// The hub's key pair and this run's certificate.
pub struct HubIdentity {
    key_der: Vec<u8>,
    cert: CertificateDer<'static>,
    fingerprint: Fingerprint,
}

impl HubIdentity {
    /// Loads the key from `dir` (making it on first run) and makes a certificate on it.
    pub fn load_or_create(dir: &Path) -> Result<HubIdentity, HubError> {
        let path = dir.join(KEY_FILE);
        let key_file = |source| HubError::KeyFile {
            path: path.clone(),
            source,
        };
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => KeyPair::from_pem(&pem).map_err(|e| HubError::BadKey {
                path: path.clone(),
                detail: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate().map_err(|e| HubError::Certificate(e.to_string()))?;
                callpop_files::write_atomically(
                    &path,
                    key.serialize_pem().as_bytes(),
                    callpop_files::Access::Private,
                )
                .map_err(key_file)?;
                key
            }
            Err(e) => return Err(key_file(e)),
        };
        HubIdentity::from_key(&key)
    }

    fn from_key(key: &KeyPair) -> Result<HubIdentity, HubError> {
        let params = CertificateParams::new(vec![CERT_NAME.to_string()])
            .map_err(|e| HubError::Certificate(e.to_string()))?;
        let cert = params
            .self_signed(key)
            .map_err(|e| HubError::Certificate(e.to_string()))?;
        Ok(HubIdentity {
            key_der: key.serialize_der(),
            cert: cert.der().clone(),
            fingerprint: Fingerprint::of_spki(&key.subject_public_key_info()),
        })
    }

    /// What desks pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// This run's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A TLS server configuration presenting this identity (TLS 1.3 and 1.2, no client
    /// certificates: desks authenticate with their token inside the channel).
    pub fn server_config(
        &self,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<rustls::ServerConfig, HubError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)?)
    }
}

/// Where the hub's key lives in a data dir.
pub fn key_path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_every_start_signs_a_new_certificate_on_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = HubIdentity::load_or_create(dir.path()).expect("create");
        let again = HubIdentity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_ne!(
            first.certificate(),
            again.certificate(),
            "a new certificate"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(dir.path()))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().expect("tempdir");
        let stranger = HubIdentity::load_or_create(other.path()).expect("create");
        assert_ne!(stranger.fingerprint(), first.fingerprint());
    }

    #[test]
    fn a_damaged_key_is_refused_and_left_for_the_person_to_decide() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(key_path(dir.path()), "not a key").expect("write");
        let err = HubIdentity::load_or_create(dir.path())
            .err()
            .expect("refused");
        assert!(matches!(err, HubError::BadKey { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(key_path(dir.path())).expect("kept"),
            "not a key"
        );
    }

    #[test]
    fn fingerprints_read_back_from_their_text_forms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fp = HubIdentity::load_or_create(dir.path())
            .expect("create")
            .fingerprint();
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        assert_eq!(Fingerprint::parse(&fp.to_string().to_uppercase()), Some(fp));
        assert_eq!(fp.short().len(), 19);
        assert_eq!(Fingerprint::parse("abc"), None);
    }
}
