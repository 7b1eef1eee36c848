//! Secrets in memory: a value that never shows itself in logs, errors or debug output.

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for comparison or sending to its one legitimate recipient.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared without revealing by timing how much of
    /// it matched or how long it is: both are hashed and the digests compared in constant
    /// time.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_secret() {
        let s = Secret::new("abc");
        assert!(s.matches("abc"));
        for other in ["", "ab", "abcd", "ABC", "abc "] {
            assert!(!s.matches(other), "{other:?}");
        }
    }
}
