//! Lenient readers for the loosely typed values providers send (shared by the provider parsers).
//!
//! RingCentral's own examples send ids both as strings and numbers and timestamps with and
//! without a colon in the offset (docs/PROTOCOL.md §1.5); these helpers accept every documented form
//! and reject the rest with a clear message.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};

/// Why a delivery body could not be used; the message is safe to send back to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    message: String,
}

impl ParseError {
    /// Builds an error from a human-readable message.
    pub fn new(message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
        }
    }
}

/// Reads a body that must be one non-empty JSON object, with a clear message for each failure.
pub fn parse_json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ParseError::new(format!(
            "body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(ParseError::new("body is empty"));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let detail = e.to_string();
        ParseError::new(match e.classify() {
            serde_json::error::Category::Eof => {
                format!("body is truncated JSON ({detail})")
            }
            _ if detail.contains("recursion limit") => {
                "body is nested too deeply (more than 128 levels)".to_string()
            }
            _ => format!("body is not valid JSON ({detail})"),
        })
    })?;
    match value {
        serde_json::Value::Object(map) if map.is_empty() => {
            Err(ParseError::new("body is an empty JSON object"))
        }
        serde_json::Value::Object(map) => Ok(map),
        other => Err(ParseError::new(format!(
            "body must be a JSON object, found {}",
            kind_of(&other)
        ))),
    }
}

/// An identifier sent as a JSON string or number; kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Id(s)),
            serde_json::Value::Number(n) => Ok(Id(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id (string or number), found {}",
                kind_of(&other)
            ))),
        }
    }
}

/// The longest extension number kept. Real ones have up to 8 digits; one longer than this is
/// not an extension but text trying to fill a popup title ("Answered by …").
pub const MAX_EXTENSION_CHARS: usize = 32;

impl Id {
    /// The id as text, or `None` when it is blank.
    pub fn into_non_empty(self) -> Option<String> {
        let s = self.0.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    /// The id as an extension number to show: control, bidi and zero-width characters
    /// removed, and `None` when blank or longer than [`MAX_EXTENSION_CHARS`].
    pub fn into_extension(self) -> Option<String> {
        let cleaned: String = self
            .0
            .chars()
            .filter(|c| !crate::text::is_invisible_control(*c))
            .collect();
        let cleaned = cleaned.trim();
        (!cleaned.is_empty() && cleaned.chars().count() <= MAX_EXTENSION_CHARS)
            .then(|| cleaned.to_string())
    }
}

/// An integer sent as a JSON number or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenientInt(pub i64);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LenientInt, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let parsed = match &v {
            serde_json::Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        parsed.map(LenientInt).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected an integer (number or numeric string), found {}",
                kind_of(&v)
            ))
        })
    }
}

/// A timestamp in any ISO 8601 variant RingCentral uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse_timestamp(&s)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("not a timestamp: {s:?}")))
    }
}

/// Parses RFC 3339, offsets without a colon (`+0000`), and zone-less times (taken as UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    None
}

/// Converts epoch milliseconds (Ringotel `call_start`) to a time, rejecting absurd values.
pub fn from_epoch_millis(ms: i64) -> Option<DateTime<Utc>> {
    // Before 2000 or after 2200 is not a call time: it is a unit mistake or garbage.
    const MIN: i64 = 946_684_800_000;
    const MAX: i64 = 7_258_118_400_000;
    if !(MIN..=MAX).contains(&ms) {
        return None;
    }
    DateTime::from_timestamp_millis(ms)
}

/// A short name for a JSON value's type, for error messages.
pub fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Trims a display string and drops it when empty; also removes control characters.
pub fn clean_text(s: Option<String>) -> Option<String> {
    let s = s?;
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// Stored request headers (a JSON object of strings) as name/value pairs; anything else is
/// read as no headers.
pub fn stored_headers<C: FromIterator<(String, String)>>(headers: &serde_json::Value) -> C {
    headers
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_lose_invisible_characters_and_overlong_ones_are_dropped() {
        let ext = |s: &str| Id(s.into()).into_extension();
        assert_eq!(ext(" 1\u{202E}01\r\n").as_deref(), Some("101"));
        assert_eq!(ext("\u{200B}"), None);
        assert_eq!(
            ext(&"9".repeat(MAX_EXTENSION_CHARS)).map(|e| e.len()),
            Some(MAX_EXTENSION_CHARS)
        );
        assert_eq!(ext(&"9".repeat(MAX_EXTENSION_CHARS + 1)), None);
    }

    #[test]
    fn timestamps_in_every_documented_shape() {
        let want = Utc.with_ymd_and_hms(2014, 4, 29, 14, 29, 27).single();
        for s in [
            "2014-04-29T14:29:27Z",
            "2014-04-29T14:29:27.000Z",
            "2014-04-29T14:29:27+0000",
            "2014-04-29T14:29:27.000+0000",
            "2014-04-29T16:29:27+02:00",
            "2014-04-29T14:29:27",
        ] {
            let got = parse_timestamp(s).map(|t| t.with_timezone(&Utc));
            assert_eq!(
                got.map(|t| t.timestamp()),
                want.map(|t| t.timestamp()),
                "{s}"
            );
        }
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("").is_none());
    }

    #[test]
    fn ids_and_ints_accept_strings_and_numbers() {
        let id: Id = serde_json::from_str("8475874957").expect("number id");
        assert_eq!(id.0, "8475874957");
        let id: Id = serde_json::from_str("\"abc\"").expect("string id");
        assert_eq!(id.0, "abc");
        assert!(serde_json::from_str::<Id>("[1]").is_err());
        let n: LenientInt = serde_json::from_str("\"27\"").expect("numeric string");
        assert_eq!(n.0, 27);
        let n: LenientInt = serde_json::from_str("27.0").expect("integral float");
        assert_eq!(n.0, 27);
        assert!(serde_json::from_str::<LenientInt>("\"27s\"").is_err());
        assert!(serde_json::from_str::<LenientInt>("1e300").is_err());
    }

    #[test]
    fn bodies_that_are_not_one_json_object_get_clear_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"   ", "empty"),
            (b"not json", "not valid JSON"),
            (b"{\"a\":", "truncated"),
            (b"{\"a\":1} trailing", "not valid JSON"),
            (b"[1,2]", "found an array"),
            (b"\"text\"", "found a string"),
            (b"{}", "empty JSON object"),
            (b"{\"a\":\"\xff\"}", "UTF-8"),
        ];
        for (body, want) in cases {
            let err = parse_json_object(body).expect_err("must be rejected");
            assert!(
                err.to_string().contains(want),
                "{:?}: {err} should mention {want}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        let err = parse_json_object(deep.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        assert!(parse_json_object(b"{\"a\":1}").is_ok());
    }

    #[test]
    fn epoch_millis_must_be_plausible() {
        assert!(from_epoch_millis(1_729_690_611_587).is_some());
        assert!(
            from_epoch_millis(1_729_690_611).is_none(),
            "seconds, not ms"
        );
        assert!(from_epoch_millis(i64::MAX).is_none());
    }
}
