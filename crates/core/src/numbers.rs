//! Phone numbers as phone systems send them: raw text kept, best-effort E.164 derived.
//!
//! RingCentral sends `+16505550100`, `(866)123-4567`, `tel:`/`sip:` URIs and short extension
//! numbers; Ringotel sends bare digits such as `353212028252`. We never guess silently: the raw
//! value is always kept, and `e164` is `None` when the number cannot be read with confidence.

use serde::{Deserialize, Serialize};

/// What kind of party a number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    /// A public (PSTN) number; `e164` is set.
    External,
    /// A short internal extension number such as `101`.
    Extension,
    /// Withheld, anonymous, empty or unreadable.
    Unknown,
}

/// A phone number as received plus what we could derive from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    /// Exactly what the phone system sent (JSON numbers rendered as digits).
    pub raw: String,
    /// `+` and 8–15 digits, when the number is a readable public number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e164: Option<String>,
    /// The digits of an extension, or of a number we could not place in a country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// What the number designates.
    pub kind: NumberKind,
}

/// Country rules needed to read national numbers: calling code, trunk prefix, national length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166 alpha-2 code.
    pub iso: &'static str,
    /// Country calling code without `+`.
    pub calling_code: &'static str,
    /// Digits dialled before a national number inside the country (`0` in AU/GB, `1` in NANP).
    pub trunk_prefix: &'static str,
    /// Lengths of a national significant number.
    pub national_lengths: &'static [usize],
    /// Prefix dialled to reach another country, besides the universal `00`.
    pub international_prefix: &'static str,
}

const COUNTRIES: &[Country] = &[
    Country {
        iso: "US",
        calling_code: "1",
        trunk_prefix: "1",
        national_lengths: &[10],
        international_prefix: "011",
    },
    Country {
        iso: "CA",
        calling_code: "1",
        trunk_prefix: "1",
        national_lengths: &[10],
        international_prefix: "011",
    },
    Country {
        iso: "AU",
        calling_code: "61",
        trunk_prefix: "0",
        national_lengths: &[9],
        international_prefix: "0011",
    },
    Country {
        iso: "NZ",
        calling_code: "64",
        trunk_prefix: "0",
        national_lengths: &[8, 9, 10],
        international_prefix: "00",
    },
    Country {
        iso: "GB",
        calling_code: "44",
        trunk_prefix: "0",
        national_lengths: &[9, 10],
        international_prefix: "00",
    },
    Country {
        iso: "IE",
        calling_code: "353",
        trunk_prefix: "0",
        national_lengths: &[7, 8, 9],
        international_prefix: "00",
    },
];

impl Country {
    /// Looks a country up by its ISO alpha-2 code, case-insensitively.
    pub fn from_iso(code: &str) -> Option<Country> {
        COUNTRIES
            .iter()
            .find(|c| c.iso.eq_ignore_ascii_case(code.trim()))
            .copied()
    }

    /// ISO codes of every country whose national numbers CallPop can read.
    pub fn supported() -> impl Iterator<Item = &'static str> {
        COUNTRIES.iter().map(|c| c.iso)
    }

    /// The national (trunk-prefixed) rendering of an E.164 number of this country, as people dial it.
    pub fn national_digits(&self, e164: &str) -> Option<String> {
        let digits = e164.strip_prefix('+')?;
        let national = digits.strip_prefix(self.calling_code)?;
        Some(format!("{}{}", self.trunk_prefix, national))
    }
}

/// The longest number we treat as an internal extension rather than a public number.
const MAX_EXTENSION_DIGITS: usize = 6;

/// Words phone systems use for a withheld caller.
const WITHHELD: &[&str] = &[
    "anonymous",
    "unknown",
    "private",
    "restricted",
    "unavailable",
    "withheld",
    "blocked",
    "null",
];

impl PhoneNumber {
    /// Reads a number in any of the formats phone systems send, against a default country.
    pub fn parse(raw: &str, country: &Country) -> PhoneNumber {
        let unknown = |raw: &str| PhoneNumber {
            raw: raw.to_string(),
            e164: None,
            extension: None,
            kind: NumberKind::Unknown,
        };
        let body = strip_uri(raw.trim());
        let body = strip_extension_suffix(body);
        if body.is_empty() || WITHHELD.iter().any(|w| body.eq_ignore_ascii_case(w)) {
            return unknown(raw);
        }
        let has_plus = body.starts_with('+');
        // Letters (other than the URI/extension syntax removed above) mean a name, not a number.
        if body
            .chars()
            .any(|c| !(c.is_ascii_digit() || " +-().\u{a0}/".contains(c)))
        {
            return unknown(raw);
        }
        let digits: String = body.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return unknown(raw);
        }
        if !has_plus && digits.len() <= MAX_EXTENSION_DIGITS {
            return PhoneNumber {
                raw: raw.to_string(),
                e164: None,
                extension: Some(digits),
                kind: NumberKind::Extension,
            };
        }
        match to_e164(&digits, has_plus, country) {
            Some(e164) => PhoneNumber {
                raw: raw.to_string(),
                e164: Some(e164),
                extension: None,
                kind: NumberKind::External,
            },
            None => unknown(raw),
        }
    }

    /// Reads a number that arrived as a JSON number (some payloads send digits unquoted).
    pub fn parse_json(value: &serde_json::Value, country: &Country) -> Option<PhoneNumber> {
        match value {
            serde_json::Value::String(s) => Some(PhoneNumber::parse(s, country)),
            serde_json::Value::Number(n) => Some(PhoneNumber::parse(&n.to_string(), country)),
            _ => None,
        }
    }

    /// Digits people may type to find this number: E.164 digits, national form and raw digits.
    pub fn search_digits(&self, country: &Country) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: String| {
            if !s.is_empty() && !out.contains(&s) {
                out.push(s);
            }
        };
        if let Some(e164) = &self.e164 {
            push(e164.trim_start_matches('+').to_string());
            if let Some(national) = country.national_digits(e164) {
                push(national);
            }
        }
        if let Some(ext) = &self.extension {
            push(ext.clone());
        }
        push(self.raw.chars().filter(|c| c.is_ascii_digit()).collect());
        out
    }

    /// True when the party is withheld or unreadable.
    pub fn is_unknown(&self) -> bool {
        self.kind == NumberKind::Unknown
    }
}

/// Groups an E.164 number for people: `+1 415 555 0123`, `+61 412 345 678`, `+44 20 7946 0018`.
/// Anything that is not E.164 is returned as given.
pub fn format_for_display(e164: &str) -> String {
    let Some(digits) = e164.strip_prefix('+') else {
        return e164.to_string();
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return e164.to_string();
    }
    let group = |parts: &[&str]| format!("+{}", parts.join(" "));
    let split = |s: &str, sizes: &[usize]| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s;
        for &n in sizes {
            if rest.len() <= n {
                break;
            }
            out.push(rest[..n].to_string());
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
        out
    };
    let (cc, national) = if let Some(n) = digits.strip_prefix('1') {
        ("1", n)
    } else if let Some(n) = digits.strip_prefix("61") {
        ("61", n)
    } else if let Some(n) = digits.strip_prefix("64") {
        ("64", n)
    } else if let Some(n) = digits.strip_prefix("44") {
        ("44", n)
    } else if let Some(n) = digits.strip_prefix("353") {
        ("353", n)
    } else {
        // A plan we do not know: wrong grouping misleads more than none.
        return e164.to_string();
    };
    let sizes: &[usize] = match (cc, national.len()) {
        ("1", 10) => &[3, 3, 4],
        ("61", 9) if national.starts_with('4') || national.starts_with('5') => &[3, 3, 3],
        ("61", 9) => &[1, 4, 4],
        ("44", 10) if national.starts_with('2') => &[2, 4, 4],
        ("44", 10) => &[4, 6],
        ("353", 9) if national.starts_with('8') => &[2, 3, 4],
        ("353", _) => &[2, 3, 4],
        ("64", _) => &[2, 3, 4],
        _ => &[3, 3, 4],
    };
    let mut parts = vec![cc.to_string()];
    parts.extend(split(national, sizes));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    group(&refs)
}

/// A number of `country` as people there write it: `(415) 555-0123` in North America,
/// `020 7946 0018` in the UK, `0412 345 678` in Australia. Numbers of other countries, and
/// numbers we cannot group, come back in the international form of [`format_for_display`].
pub fn format_national(e164: &str, country: &Country) -> String {
    let shown = format_for_display(e164);
    let Some(national) = shown
        .strip_prefix('+')
        .and_then(|s| s.strip_prefix(country.calling_code))
        .and_then(|s| s.strip_prefix(' '))
    else {
        return shown;
    };
    let groups: Vec<&str> = national.split(' ').collect();
    match (country.calling_code, groups.as_slice()) {
        ("1", [area, exchange, line]) => format!("({area}) {exchange}-{line}"),
        ("1", _) => shown,
        _ => format!("{}{national}", country.trunk_prefix),
    }
}

fn strip_uri(s: &str) -> &str {
    let lower_starts = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    let rest = if lower_starts("tel:") {
        &s[4..]
    } else if lower_starts("sips:") {
        &s[5..]
    } else if lower_starts("sip:") {
        &s[4..]
    } else {
        return s;
    };
    // sip:+15551234567@host;user=phone → the user part.
    let rest = rest.split('@').next().unwrap_or(rest);
    rest.split(';')
        .next()
        .unwrap_or(rest)
        .trim_start_matches("//")
}

fn strip_extension_suffix(s: &str) -> &str {
    let lower = s.to_ascii_lowercase();
    for marker in [";ext=", " ext.", " ext ", " x", "#"] {
        if let Some(pos) = lower.find(marker) {
            return s[..pos].trim_end();
        }
    }
    s
}

fn to_e164(digits: &str, has_plus: bool, country: &Country) -> Option<String> {
    let valid = |d: &str| (8..=15).contains(&d.len()) && !d.starts_with('0');
    if has_plus {
        return valid(digits).then(|| format!("+{digits}"));
    }
    // International access prefixes: the universal 00 and the country's own (011, 0011).
    for prefix in [country.international_prefix, "00"] {
        if !prefix.is_empty() && prefix != country.trunk_prefix {
            if let Some(rest) = digits.strip_prefix(prefix) {
                if valid(rest) {
                    return Some(format!("+{rest}"));
                }
            }
        }
    }
    // A national number with the trunk prefix (0412 345 678, 1 415 555 0123).
    if let Some(rest) = digits.strip_prefix(country.trunk_prefix) {
        if country.national_lengths.contains(&rest.len()) {
            return Some(format!("+{}{}", country.calling_code, rest));
        }
    }
    // A national number without the trunk prefix (415 555 0123; AU 412 345 678) — unless it
    // is the country's own calling code followed by a national number: Ringotel sends
    // international numbers without the '+', and NZ's 64 9 300 1234 is ten digits, a national
    // length there too; reading it as national made it +64 64 9300 1234.
    let own_international = digits
        .strip_prefix(country.calling_code)
        .is_some_and(|rest| country.national_lengths.contains(&rest.len()));
    if country.national_lengths.contains(&digits.len())
        && !digits.starts_with('0')
        && !own_international
    {
        return Some(format!("+{}{}", country.calling_code, digits));
    }
    // Otherwise long digit strings are already international without the '+' (Ringotel sends
    // 353212028252, RingCentral's call log 18661234567).
    valid(digits).then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Country {
        Country::from_iso("US").expect("US is supported")
    }
    fn au() -> Country {
        Country::from_iso("au").expect("AU is supported")
    }

    #[test]
    fn an_international_number_without_plus_keeps_its_own_country_code() {
        let nz = Country::from_iso("NZ").expect("NZ is supported");
        // Ringotel's caller_number for an Auckland landline.
        assert_eq!(
            PhoneNumber::parse("6493001234", &nz).e164.as_deref(),
            Some("+6493001234")
        );
        // National forms still read as national.
        assert_eq!(
            PhoneNumber::parse("093001234", &nz).e164.as_deref(),
            Some("+6493001234")
        );
        assert_eq!(
            PhoneNumber::parse("211234567", &nz).e164.as_deref(),
            Some("+64211234567")
        );
    }

    #[test]
    fn normalizes_the_formats_phone_systems_send() {
        let cases: &[(&str, Country, Option<&str>, NumberKind)] = &[
            (
                "+16505550100",
                us(),
                Some("+16505550100"),
                NumberKind::External,
            ),
            (
                "(866)123-4567",
                us(),
                Some("+18661234567"),
                NumberKind::External,
            ),
            (
                "+1 (415) 555-0123",
                us(),
                Some("+14155550123"),
                NumberKind::External,
            ),
            (
                "18661234567",
                us(),
                Some("+18661234567"),
                NumberKind::External,
            ),
            (
                "tel:+14155550123",
                us(),
                Some("+14155550123"),
                NumberKind::External,
            ),
            (
                "sip:+14155550123@sip.ringcentral.com;user=phone",
                us(),
                Some("+14155550123"),
                NumberKind::External,
            ),
            (
                "0061412345678",
                us(),
                Some("+61412345678"),
                NumberKind::External,
            ),
            (
                "011 44 20 7946 0018",
                us(),
                Some("+442079460018"),
                NumberKind::External,
            ),
            (
                "+1 415 555 0123;ext=204",
                us(),
                Some("+14155550123"),
                NumberKind::External,
            ),
            (
                "0412 345 678",
                au(),
                Some("+61412345678"),
                NumberKind::External,
            ),
            (
                "(07) 3000 0000",
                au(),
                Some("+61730000000"),
                NumberKind::External,
            ),
            (
                "+61730000000",
                au(),
                Some("+61730000000"),
                NumberKind::External,
            ),
            (
                "353212028252",
                au(),
                Some("+353212028252"),
                NumberKind::External,
            ),
            ("101", us(), None, NumberKind::Extension),
            ("11101", us(), None, NumberKind::Extension),
            ("anonymous", us(), None, NumberKind::Unknown),
            ("", us(), None, NumberKind::Unknown),
            ("  ", us(), None, NumberKind::Unknown),
            ("Anonymous", us(), None, NumberKind::Unknown),
            ("John Smith", us(), None, NumberKind::Unknown),
            ("+0123", us(), None, NumberKind::Unknown),
            ("+1234567890123456", us(), None, NumberKind::Unknown),
        ];
        for (raw, country, e164, kind) in cases {
            let n = PhoneNumber::parse(raw, country);
            assert_eq!(n.e164.as_deref(), *e164, "e164 of {raw:?}");
            assert_eq!(n.kind, *kind, "kind of {raw:?}");
            assert_eq!(n.raw, *raw, "raw kept for {raw:?}");
        }
    }

    #[test]
    fn json_numbers_are_read_as_digits() {
        let n = PhoneNumber::parse_json(&serde_json::json!(16505550100u64), &us())
            .expect("a number is a phone number");
        assert_eq!(n.e164.as_deref(), Some("+16505550100"));
        assert!(PhoneNumber::parse_json(&serde_json::json!({"x": 1}), &us()).is_none());
    }

    #[test]
    fn extensions_keep_their_digits() {
        let n = PhoneNumber::parse("ext 101", &us());
        assert_eq!(n.kind, NumberKind::Unknown, "words are not numbers");
        let n = PhoneNumber::parse("102", &us());
        assert_eq!(n.extension.as_deref(), Some("102"));
    }

    #[test]
    fn display_grouping_follows_each_numbering_plan() {
        for (e164, shown) in [
            ("+14155550123", "+1 415 555 0123"),
            ("+61412345678", "+61 412 345 678"),
            ("+61730000000", "+61 7 3000 0000"),
            ("+442079460018", "+44 20 7946 0018"),
            ("+353871234567", "+353 87 123 4567"),
            ("+4930123456", "+4930123456"),
            ("101", "101"),
            ("+", "+"),
        ] {
            assert_eq!(format_for_display(e164), shown, "{e164}");
        }
    }

    #[test]
    fn national_forms_are_written_as_people_there_write_them() {
        assert_eq!(format_national("+14155550123", &us()), "(415) 555-0123");
        assert_eq!(format_national("+61412345678", &au()), "0412 345 678");
        assert_eq!(
            format_national("+442079460018", &au()),
            "+44 20 7946 0018",
            "a foreign number stays international"
        );
        assert_eq!(format_national("+4930123456", &us()), "+4930123456");
        assert_eq!(format_national("101", &us()), "101");
    }

    #[test]
    fn search_digits_cover_national_and_international_forms() {
        let n = PhoneNumber::parse("+61412345678", &au());
        assert_eq!(n.search_digits(&au()), vec!["61412345678", "0412345678"]);
        let n = PhoneNumber::parse("(415) 555-0123", &us());
        assert_eq!(n.search_digits(&us()), vec!["14155550123", "4155550123"]);
    }
}
