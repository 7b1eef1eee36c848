//! The dealership's lines and the names people know them by ("Sales", "Service").

use serde::{Deserialize, Serialize};

use crate::model::{Call, CallDirection};
use crate::numbers::{Country, PhoneNumber};

/// A dealership line and the name people know it by ("Sales", "Service").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LineLabel {
    /// The line's number (any format; compared as E.164).
    pub number: String,
    /// Its label.
    pub label: String,
}

/// The label of the dealership line `dialled` (E.164), if one is configured. A label's number
/// may be written in any format: international, or national as the dialled number's country
/// writes it ("(07) 3000 0000" for +61 7 3000 0000). The whole number must match: comparing
/// trailing digits missed national forms with a trunk prefix and let an extension label
/// ("101") match every line ending in 101.
pub fn line_label<'a>(labels: &'a [LineLabel], dialled: &str) -> Option<&'a LineLabel> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let dialled_digits = digits(dialled);
    let countries: Vec<Country> = Country::supported()
        .filter_map(Country::from_iso)
        .filter(|c| dialled_digits.starts_with(c.calling_code))
        .collect();
    labels.iter().find(|l| {
        (!dialled_digits.is_empty() && digits(&l.number) == dialled_digits)
            || countries
                .iter()
                .any(|c| PhoneNumber::parse(&l.number, c).e164.as_deref() == Some(dialled))
    })
}

/// The label of the line a call came in on: the dialled number of an inbound or internal
/// call (an outbound call dials the customer, whose number is no line of ours).
pub fn dialled_line_label(call: &Call, labels: &[LineLabel]) -> Option<String> {
    (call.direction != CallDirection::Outbound)
        .then_some(call.to.e164.as_deref())
        .flatten()
        .and_then(|dialled| line_label(labels, dialled))
        .map(|l| l.label.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_labels_match_whole_numbers_in_any_format() {
        let label = |number: &str, label: &str| LineLabel {
            number: number.into(),
            label: label.into(),
        };
        let labels = vec![
            label("101", "Desk"),
            label("(07) 3000 0000", "Brisbane sales"),
            label("(650) 555-0100", "Sales"),
            label("+49 30 1234567", "Berlin"),
        ];
        let found = |dialled: &str| line_label(&labels, dialled).map(|l| l.label.as_str());
        assert_eq!(found("+16505550100"), Some("Sales"));
        assert_eq!(found("+61730000000"), Some("Brisbane sales"));
        assert_eq!(found("+49301234567"), Some("Berlin"));
        assert_eq!(found("+16505550101"), None, "not the extension label");
        assert_eq!(found("+14155550100"), None, "another area code");
    }
}
