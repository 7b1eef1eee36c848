//! Caller ID names that are not names.
//!
//! When a carrier has no listing for a number, the caller ID name (CNAM) it delivers is a
//! stock phrase: "WIRELESS CALLER", "CELL PHONE   CA", "TOLL FREE CALLER", "UNAVAILABLE", or
//! the number itself. Shown as a name, a receptionist greets the caller as "Wireless Caller".
//! The call keeps its number and the raw delivery keeps the phrase; only the name is dropped,
//! so every reader (popup, window, CLI, CSV, search) falls back to the number.

/// Whole phrases carriers use in place of a name (compared ignoring case and spacing).
const STOCK_PHRASES: &[&str] = &[
    "anonymous",
    "blocked",
    "cell phone",
    "cellular caller",
    "mobile caller",
    "name not available",
    "name unavailable",
    "no caller id",
    "not available",
    "null",
    "out of area",
    "private",
    "private caller",
    "private name",
    "private number",
    "restricted",
    "toll free",
    "toll free caller",
    "unavailable",
    "unknown",
    "unknown caller",
    "unknown name",
    "wireless",
    "wireless caller",
    "withheld",
];

/// Phrases carriers follow with the caller's state or province ("CELL PHONE   CA").
const STOCK_PREFIXES: &[&str] = &["cell phone", "wireless caller", "toll free"];

/// True when `name` is a carrier's stand-in rather than somebody's name: a stock phrase
/// (optionally followed by a two-letter region), or nothing but the digits of a number.
pub fn is_placeholder(name: &str) -> bool {
    let words: Vec<String> = name
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    if words.is_empty() {
        return true;
    }
    let phrase = words.join(" ");
    if STOCK_PHRASES.contains(&phrase.as_str()) {
        return true;
    }
    if let Some((region, rest)) = words.split_last() {
        let rest = rest.join(" ");
        if region.len() == 2
            && region.chars().all(|c| c.is_ascii_alphabetic())
            && STOCK_PREFIXES.contains(&rest.as_str())
        {
            return true;
        }
    }
    // "4155550123", "+1 415-555-0123": a number repeated as the name.
    name.chars().any(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carrier_stand_ins_are_not_names() {
        for n in [
            "WIRELESS CALLER",
            "Wireless  Caller",
            "CELL PHONE   CA",
            "CELL PHONE",
            "TOLL FREE CALLER",
            "UNAVAILABLE",
            "Unknown Name",
            "PRIVATE CALLER",
            "OUT OF AREA",
            "4155550123",
            "+1 (415) 555-0123",
            "   ",
        ] {
            assert!(is_placeholder(n), "{n:?} is a stand-in");
        }
    }

    #[test]
    fn real_names_are_kept() {
        for n in [
            "SMITH JOHN",
            "Jane Doe",
            "ACME MOTORS",
            "Cell Phone Repair Co",
            "Wireless World",
            "Unit 4 Garage",
            "Zoë O'Brien",
            "CA",
        ] {
            assert!(!is_placeholder(n), "{n:?} is a name");
        }
    }
}
