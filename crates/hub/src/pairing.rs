//! Pairing a desk with a hub by a one-time code (docs/HUB.md has the threat model).
//!
//! The code is ten characters of Crockford base32 (`K7M2Q-9XH4P`): the first two name the
//! pending pairing on the hub, the other eight (40 bits) are the password of a SPAKE2 exchange
//! (Ed25519 group). Both sides then hold a key that only a party knowing the code can have, and
//! each proves it with an HMAC over the whole exchange, including the fingerprint of the TLS
//! key the desk saw. So a wrong code fails on both sides, a machine in between (which must
//! show the desk its own key) fails the hub's proof, and someone who only watched cannot
//! guess the code offline: each guess is one exchange with the hub, which allows only
//! [`ATTEMPTS_PER_CODE`] per code.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::identity::Fingerprint;

/// Crockford's base32 alphabet: no I, L, O or U, so nothing reads as another character.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a code, dash not counted.
pub const CODE_LEN: usize = 10;

/// Characters naming the pending pairing (the rest is the secret: 8 × 5 = 40 bits).
pub const ID_LEN: usize = 2;

/// How long a code may be used.
pub const CODE_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

/// Exchanges a code allows, right or wrong, before it is spent.
pub const ATTEMPTS_PER_CODE: u32 = 3;

/// SPAKE2 identities: the protocol and each side's role, so a message of one role can never
/// be replayed as the other's.
const DESK_ID: &[u8] = b"callpop-hub-pairing/1/desk";
const HUB_ID: &[u8] = b"callpop-hub-pairing/1/hub";

/// Why pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// Not ten characters of the code's alphabet.
    #[error("that is not a pairing code: it has ten letters and digits, like K7M2Q-9XH4P")]
    Malformed,
    /// No pending pairing has that code.
    #[error("the hub has no such pairing code: check it, or make a new one on the hub")]
    Unknown,
    /// The code is older than ten minutes.
    #[error("the pairing code has expired (codes last ten minutes): make a new one on the hub")]
    Expired,
    /// The code was already used by a desk.
    #[error("the pairing code was already used: make a new one on the hub")]
    Used,
    /// The code was tried too often.
    #[error(
        "the pairing code was tried too many times and no longer works: make a new one on the hub"
    )]
    TooManyAttempts,
    /// The proofs did not match: a mistyped code, or a machine between desk and hub.
    #[error("the pairing code does not match: check it (or make a new one on the hub); if it is right, something between this desk and the hub is not the hub")]
    WrongCode,
    /// A message of the exchange could not be read.
    #[error("the pairing message was damaged: {0}")]
    BadMessage(String),
}

impl PairingError {
    /// A stable name for the error, for the wire and for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            PairingError::Malformed => "malformed_code",
            PairingError::Unknown => "unknown_code",
            PairingError::Expired => "expired_code",
            PairingError::Used => "used_code",
            PairingError::TooManyAttempts => "too_many_attempts",
            PairingError::WrongCode => "wrong_code",
            PairingError::BadMessage(_) => "bad_message",
        }
    }

    /// The error named by [`PairingError::code`], for a desk reading the hub's answer.
    pub fn from_code(code: &str, detail: &str) -> PairingError {
        match code {
            "malformed_code" => PairingError::Malformed,
            "unknown_code" => PairingError::Unknown,
            "expired_code" => PairingError::Expired,
            "used_code" => PairingError::Used,
            "too_many_attempts" => PairingError::TooManyAttempts,
            "wrong_code" => PairingError::WrongCode,
            _ => PairingError::BadMessage(detail.to_string()),
        }
    }
}

/// A pairing code.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    chars: [u8; CODE_LEN],
}

impl Code {
    /// A new random code, from the operating system's generator.
    pub fn random() -> Result<Code, getrandom::Error> {
        let mut bytes = [0u8; CODE_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Code {
            chars: bytes.map(|b| ALPHABET[(b & 31) as usize]),
        })
    }

    /// Reads a code as a person typed it: any case, dashes and spaces anywhere, and the
    /// letters Crockford's alphabet leaves out read as the digits they look like.
    pub fn parse(text: &str) -> Result<Code, PairingError> {
        let mut chars = Vec::with_capacity(CODE_LEN);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(PairingError::Malformed);
            }
            chars.push(c as u8);
        }
        Ok(Code {
            chars: chars.try_into().map_err(|_| PairingError::Malformed)?,
        })
    }

    /// The part naming the pending pairing (not secret).
    pub fn id(&self) -> String {
        String::from_utf8_lossy(&self.chars[..ID_LEN]).into_owned()
    }

    /// The secret part: the exchange's password.
    fn secret(&self) -> &[u8] {
        &self.chars[ID_LEN..]
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.chars);
        write!(f, "{}-{}", &text[..5], &text[5..])
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret in a log.
        write!(f, "Code({}…)", self.id())
    }
}

/// What both proofs cover: everything either side said or saw.
struct Transcript<'a> {
    code_id: &'a str,
    desk_name: &'a str,
    hub_key: Fingerprint,
    desk_message: &'a [u8],
    hub_message: &'a [u8],
}

impl Transcript<'_> {
    fn proof(&self, key: &[u8], role: &[u8]) -> Result<Hmac<Sha256>, PairingError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| PairingError::BadMessage(e.to_string()))?;
        mac.update(b"callpop-hub-pairing/1/");
        mac.update(role);
        for part in [
            self.code_id.as_bytes(),
            self.desk_name.as_bytes(),
            &self.hub_key.0,
            self.desk_message,
            self.hub_message,
        ] {
            // Length-prefixed, so no two different transcripts read the same.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Ok(mac)
    }
}

/// The desk's side, between its first message and the hub's answer.
pub struct DeskPairing {
    spake: Spake2<Ed25519Group>,
    code_id: String,
    message: Vec<u8>,
}

impl DeskPairing {
    /// Starts pairing with `code`: the message to send the hub.
    pub fn start(code: &Code) -> (DeskPairing, Vec<u8>) {
        let (spake, message) = Spake2::<Ed25519Group>::start_a(
            &Password::new(code.secret()),
            &Identity::new(DESK_ID),
            &Identity::new(HUB_ID),
        );
        (
            DeskPairing {
                spake,
                code_id: code.id(),
                message: message.clone(),
            },
            message,
        )
    }

    /// Checks the hub's answer against the key the desk saw in TLS and the name the hub gives
    /// the desk; the desk's proof to send back. Fails with [`PairingError::WrongCode`] when
    /// the hub does not know the code, when the key seen is not the hub's, or when anything
    /// of the exchange was changed on the way.
    pub fn finish(
        self,
        hub_key_seen: Fingerprint,
        desk_name: &str,
        hub_message: &[u8],
        hub_proof: &[u8],
    ) -> Result<Vec<u8>, PairingError> {
        let key = self
            .spake
            .finish(hub_message)
            .map_err(|e| PairingError::BadMessage(format!("{e:?}")))?;
        let transcript = Transcript {
            code_id: &self.code_id,
            desk_name,
            hub_key: hub_key_seen,
            desk_message: &self.message,
            hub_message,
        };
        transcript
            .proof(&key, b"hub")?
            .verify_slice(hub_proof)
            .map_err(|_| PairingError::WrongCode)?;
        Ok(transcript
            .proof(&key, b"desk")?
            .finalize()
            .into_bytes()
            .to_vec())
    }
}

/// The hub's answer to a desk's first message.
pub struct HubAnswer {
    /// The hub's SPAKE2 message.
    pub message: Vec<u8>,
    /// The hub's proof of the shared key over the exchange.
    pub proof: Vec<u8>,
    /// What the desk's proof must be; kept by the hub until the desk answers.
    pub expected_desk_proof: Vec<u8>,
}

/// The hub answers a desk's first message for the pending `code`, with the key it serves TLS
/// with.
pub fn hub_answer(
    code: &Code,
    hub_key: Fingerprint,
    desk_name: &str,
    desk_message: &[u8],
) -> Result<HubAnswer, PairingError> {
    let (spake, message) = Spake2::<Ed25519Group>::start_b(
        &Password::new(code.secret()),
        &Identity::new(DESK_ID),
        &Identity::new(HUB_ID),
    );
    let key = spake
        .finish(desk_message)
        .map_err(|e| PairingError::BadMessage(format!("{e:?}")))?;
    let code_id = code.id();
    let transcript = Transcript {
        code_id: &code_id,
        desk_name,
        hub_key,
        desk_message,
        hub_message: &message,
    };
    let proof = transcript
        .proof(&key, b"hub")?
        .finalize()
        .into_bytes()
        .to_vec();
    let expected_desk_proof = transcript
        .proof(&key, b"desk")?
        .finalize()
        .into_bytes()
        .to_vec();
    Ok(HubAnswer {
        message,
        proof,
        expected_desk_proof,
    })
}

/// Compares the desk's proof with the expected one in constant time.
pub fn desk_proof_matches(expected: &[u8], given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == given.len() && bool::from(expected.ct_eq(given))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Fingerprint {
        Fingerprint([n; 32])
    }

    /// Runs the exchange; the desk's result and whether the hub accepted the desk's proof.
    fn pair(
        desk_code: &Code,
        hub_code: &Code,
        hub_key: Fingerprint,
        seen: Fingerprint,
    ) -> (Result<Vec<u8>, PairingError>, bool) {
        let (desk, first) = DeskPairing::start(desk_code);
        let answer = hub_answer(hub_code, hub_key, "Sales 3", &first).expect("answer");
        let result = desk.finish(seen, "Sales 3", &answer.message, &answer.proof);
        let accepted = result
            .as_ref()
            .is_ok_and(|proof| desk_proof_matches(&answer.expected_desk_proof, proof));
        (result, accepted)
    }

    #[test]
    fn the_right_code_pairs_both_sides() {
        let code = Code::random().expect("random");
        let (result, accepted) = pair(&code, &code, key(1), key(1));
        assert!(result.is_ok());
        assert!(accepted);
    }

    #[test]
    fn a_wrong_code_fails_on_the_desk_and_gives_the_hub_nothing_to_accept() {
        let code = Code::random().expect("random");
        let mut typo = code.clone();
        typo.chars[9] = if typo.chars[9] == b'0' { b'1' } else { b'0' };
        let (result, accepted) = pair(&typo, &code, key(1), key(1));
        assert_eq!(result, Err(PairingError::WrongCode));
        assert!(!accepted);
    }

    #[test]
    fn a_machine_in_between_showing_its_own_key_is_caught() {
        // It relays the messages but must present its own TLS key to the desk.
        let code = Code::random().expect("random");
        let (result, _) = pair(&code, &code, key(1), key(2));
        assert_eq!(result, Err(PairingError::WrongCode));
    }

    #[test]
    fn a_desk_name_changed_on_the_way_is_caught() {
        let code = Code::random().expect("random");
        let (desk, first) = DeskPairing::start(&code);
        let answer = hub_answer(&code, key(1), "Reception", &first).expect("answer");
        assert_eq!(
            desk.finish(key(1), "Sales 3", &answer.message, &answer.proof),
            Err(PairingError::WrongCode)
        );
    }

    #[test]
    fn codes_read_as_people_type_them() {
        let code = Code::random().expect("random");
        let text = code.to_string();
        assert_eq!(text.len(), 11);
        assert_eq!(Code::parse(&text), Ok(code.clone()));
        assert_eq!(
            Code::parse(&format!(" {} ", text.to_lowercase().replace('-', " "))),
            Ok(code.clone())
        );
        assert_eq!(
            Code::parse("K7M2Q-9XH4O").map(|c| c.to_string()),
            Ok("K7M2Q-9XH40".into())
        );
        assert_eq!(Code::parse("K7M2Q-9XH4"), Err(PairingError::Malformed));
        assert_eq!(Code::parse("K7M2Q-9XH4PP"), Err(PairingError::Malformed));
        assert_eq!(Code::parse("K7M2Q-9XH4U"), Err(PairingError::Malformed));
        assert_eq!(Code::parse("K7M2Q-9XH4é"), Err(PairingError::Malformed));
        assert!(!format!("{code:?}").contains(&text[ID_LEN..5]));
    }

    #[test]
    fn error_codes_read_back() {
        for e in [
            PairingError::Malformed,
            PairingError::Unknown,
            PairingError::Expired,
            PairingError::Used,
            PairingError::TooManyAttempts,
            PairingError::WrongCode,
        ] {
            assert_eq!(PairingError::from_code(e.code(), ""), e);
        }
    }
}
