//! Reading contacts files: CSV as CRMs and spreadsheets export them, and vCard 3.0/4.0 (issue
//! 29). Reading only: each row becomes a contact with its phone numbers read the way calls'
//! numbers are, or a rejected row with its line and the reason, so an import can show what it
//! will do before it changes anything.

mod csv_file;
mod vcard;

use std::collections::HashMap;

use serde::Serialize;

use crate::numbers::{Country, PhoneNumber};

/// One phone number of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactPhone {
    /// As written in the file.
    pub raw: String,
    /// The number calls are matched by.
    pub e164: String,
    /// What the file called it ("Mobile", "work"), if anything.
    pub label: Option<String>,
}

/// A contact as a file describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// The person's name.
    pub name: Option<String>,
    /// Their company.
    pub company: Option<String>,
    /// Their numbers, each once.
    pub phones: Vec<ContactPhone>,
    /// The salesperson or owner the file names.
    pub owner: Option<String>,
    /// Notes.
    pub notes: Option<String>,
}

/// A contact and the line of the file it starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRow {
    /// 1-based line (the header is line 1 of a CSV file).
    pub line: u64,
    /// The contact.
    pub contact: Contact,
}

/// A row that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based line where the row starts.
    pub line: u64,
    /// Why, in plain words.
    pub reason: String,
}

/// What a file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContactsFile {
    /// The rows that can be imported.
    pub rows: Vec<ContactRow>,
    /// The rows that cannot, with their reasons.
    pub rejected: Vec<Rejected>,
}

/// Why a file cannot be read at all (nothing in it is imported).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactsError {
    /// Not UTF-8.
    #[error(
        "the file is not UTF-8 text: save it as UTF-8 (CSV UTF-8 in Excel) and import it again"
    )]
    NotUtf8,
    /// A CSV file whose header names no phone column.
    #[error("the header row names no phone column (such as Phone, Mobile or Work Phone), so no contact could be matched to a call")]
    NoPhoneColumn,
    /// A CSV file without a header row.
    #[error("the file is empty")]
    Empty,
    /// The CSV could not be read.
    #[error("the file cannot be read as CSV: {0}")]
    Csv(String),
}

/// A row as read, before its numbers are checked.
#[derive(Debug, Default)]
struct RawRow {
    line: u64,
    name: Option<String>,
    company: Option<String>,
    phones: Vec<(String, Option<String>)>,
    owner: Option<String>,
    notes: Option<String>,
}

/// Reads a contacts file: vCard when it starts with `BEGIN:VCARD`, CSV otherwise.
pub fn read(bytes: &[u8], country: &Country) -> Result<ContactsFile, ContactsError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ContactsError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let raw = if text
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("BEGIN:VCARD")
    {
        vcard::rows(text)
    } else {
        csv_file::rows(text)?
    };
    Ok(check(raw, country))
}

/// Cleans a cell: trimmed, control characters out, empty as none.
fn cell(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

/// Reads each row's numbers; rejects rows with none usable, and numbers another row has.
fn check(raw: Vec<RawRow>, country: &Country) -> ContactsFile {
    let mut out = ContactsFile::default();
    let mut owners: HashMap<String, (u64, String)> = HashMap::new();
    for row in raw {
        let who = row
            .name
            .clone()
            .or_else(|| row.company.clone())
            .unwrap_or_else(|| "this row".into());
        if row.phones.is_empty() {
            if row.name.is_some() || row.company.is_some() {
                out.rejected.push(Rejected {
                    line: row.line,
                    reason: format!("{who} has no phone number"),
                });
            }
            continue;
        }
        let mut phones: Vec<ContactPhone> = Vec::new();
        let mut unreadable = Vec::new();
        let mut taken = Vec::new();
        for (raw_number, label) in row.phones {
            let parsed = PhoneNumber::parse(&raw_number, country);
            let Some(e164) = parsed.e164 else {
                unreadable.push(raw_number);
                continue;
            };
            if phones.iter().any(|p| p.e164 == e164) {
                continue;
            }
            if let Some((line, other)) = owners.get(&e164) {
                taken.push(format!("{raw_number} is already {other}'s (line {line})"));
                continue;
            }
            phones.push(ContactPhone {
                raw: raw_number,
                e164,
                label,
            });
        }
        if phones.is_empty() {
            let mut reasons: Vec<String> = unreadable
                .iter()
                .map(|n| format!("{n:?} is not a phone number"))
                .collect();
            reasons.extend(taken);
            out.rejected.push(Rejected {
                line: row.line,
                reason: format!("{who}: {}", reasons.join("; ")),
            });
            continue;
        }
        for p in &phones {
            owners.insert(p.e164.clone(), (row.line, who.clone()));
        }
        out.rows.push(ContactRow {
            line: row.line,
            contact: Contact {
                name: row.name,
                company: row.company,
                phones,
                owner: row.owner,
                notes: row.notes,
            },
        });
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::contacts) fn us() -> Country {
        Country::from_iso("US").expect("US")
    }

    /// A contact's numbers and their labels, for comparing.
    pub(in crate::contacts) fn numbers(c: &Contact) -> Vec<(&str, Option<&str>)> {
        c.phones
            .iter()
            .map(|p| (p.e164.as_str(), p.label.as_deref()))
            .collect()
    }

    #[test]
    fn a_number_on_two_rows_goes_to_the_first_and_the_second_says_whose_it_is() {
        let file =
            "Name,Phone\nDana Whitfield,(415) 555-0123\nDana W.,+1 415 555 0123\nNo Number,\n,\n";
        let read = read(file.as_bytes(), &us()).expect("read");
        assert_eq!(read.rows.len(), 1);
        assert_eq!(read.rows[0].contact.phones[0].e164, "+14155550123");
        assert_eq!(
            read.rejected,
            vec![
                Rejected {
                    line: 3,
                    reason: "Dana W.: +1 415 555 0123 is already Dana Whitfield's (line 2)".into()
                },
                Rejected {
                    line: 4,
                    reason: "No Number has no phone number".into()
                }
            ]
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_whole() {
        assert_eq!(
            read(b"Name,Phone\nJos\xe9,4155550123\n", &us()),
            Err(ContactsError::NotUtf8)
        );
    }
}
