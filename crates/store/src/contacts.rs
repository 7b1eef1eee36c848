//! The contacts (schema 10): names for numbers, imported from CRM and spreadsheet files. An
//! import is previewed and applied by the same code, in one transaction: a dry run rolls back,
//! a real one commits everything or nothing. Each number belongs to one contact; a file row
//! matches the contact that already has one of its numbers.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{to_ms, Store, StoreError};
use callpop_core::contacts::{Contact, ContactsFile, Rejected};

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Contacts added.
    pub new: u64,
    /// Contacts whose details changed or that got numbers.
    pub updated: u64,
    /// Rows that matched a contact exactly.
    pub unchanged: u64,
    /// Rows not imported, with their line and why.
    pub rejected: Vec<Rejected>,
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRecord {
    /// Its row id.
    pub id: i64,
    /// The contact.
    #[serde(flatten)]
    pub contact: Contact,
}

fn load(conn: &Connection, id: i64) -> Result<Contact, StoreError> {
    let (name, company, owner, notes) = conn
        .prepare_cached("SELECT name, company, owner, notes FROM contacts WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let phones = conn
        .prepare_cached(
            "SELECT raw, e164, label FROM contact_numbers WHERE contact_id = ?1 ORDER BY rowid",
        )?
        .query_map([id], |r| {
            Ok(callpop_core::contacts::ContactPhone {
                raw: r.get(0)?,
                e164: r.get(1)?,
                label: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Contact {
        name,
        company,
        phones,
        owner,
        notes,
    })
}

/// Applies a read file in the caller's transaction.
fn apply(conn: &Connection, file: &ContactsFile) -> Result<ImportSummary, StoreError> {
    let mut summary = ImportSummary {
        rejected: file.rejected.clone(),
        ..ImportSummary::default()
    };
    let now = to_ms(chrono::Utc::now());
    for row in &file.rows {
        let c = &row.contact;
        let mut owners = BTreeSet::new();
        for p in &c.phones {
            let owner: Option<i64> = conn
                .prepare_cached("SELECT contact_id FROM contact_numbers WHERE e164 = ?1")?
                .query_row([&p.e164], |r| r.get(0))
                .optional()?;
            owners.extend(owner);
        }
        let id = match owners.len() {
            0 => {
                conn.prepare_cached(
                    "INSERT INTO contacts (name, company, owner, notes, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![c.name, c.company, c.owner, c.notes, now])?;
                summary.new += 1;
                conn.last_insert_rowid()
            }
            1 => {
                let id = owners.into_iter().next().unwrap_or_default();
                let before = load(conn, id)?;
                // A file fills and changes details; it never empties one it leaves blank.
                let merged = (
                    c.name.clone().or(before.name.clone()),
                    c.company.clone().or(before.company.clone()),
                    c.owner.clone().or(before.owner.clone()),
                    c.notes.clone().or(before.notes.clone()),
                );
                let same_details = merged
                    == (
                        before.name.clone(),
                        before.company.clone(),
                        before.owner.clone(),
                        before.notes.clone(),
                    );
                let new_numbers = c
                    .phones
                    .iter()
                    .any(|p| !before.phones.iter().any(|b| b.e164 == p.e164));
                if same_details && !new_numbers {
                    summary.unchanged += 1;
                    continue;
                }
                conn.prepare_cached(
                    "UPDATE contacts SET name = ?2, company = ?3, owner = ?4, notes = ?5,
                                         updated_at = ?6 WHERE id = ?1",
                )?
                .execute(params![id, merged.0, merged.1, merged.2, merged.3, now])?;
                summary.updated += 1;
                id
            }
            _ => {
                let names: Vec<String> = owners
                    .iter()
                    .map(|id| {
                        load(conn, *id)
                            .ok()
                            .and_then(|c| c.name.or(c.company))
                            .unwrap_or_else(|| format!("contact {id}"))
                    })
                    .collect();
                summary.rejected.push(Rejected {
                    line: row.line,
                    reason: format!(
                        "its numbers belong to different contacts ({}): edit them in CallPop instead",
                        names.join(", ")
                    ),
                });
                continue;
            }
        };
        for p in &c.phones {
            conn.prepare_cached(
                "INSERT INTO contact_numbers (e164, contact_id, raw, label) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (e164) DO NOTHING",
            )?
            .execute(params![p.e164, id, p.raw, p.label])?;
        }
    }
    summary.rejected.sort_by_key(|r| r.line);
    Ok(summary)
}

impl Store {
    /// Imports a read contacts file in one transaction; with `dry_run` nothing is kept and the
    /// summary says what would happen.
    pub fn import_contacts(
        &mut self,
        file: &ContactsFile,
        dry_run: bool,
    ) -> Result<ImportSummary, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::classify)?;
        let summary = apply(&tx, file)?;
        if dry_run {
            tx.rollback().map_err(StoreError::classify)?;
        } else {
            tx.commit().map_err(StoreError::classify)?;
        }
        Ok(summary)
    }

    /// The contacts whose name, company, owner or notes hold `text` (any case and accents), or
    /// one of whose numbers holds its digits (at least three), by name.
    pub fn search_contacts(&self, text: &str) -> Result<Vec<ContactRecord>, StoreError> {
        let words = callpop_core::text::fold_for_search(text.trim());
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let by_number = digits.len() >= 3 && digits.len() * 2 >= text.trim().len();
        Ok(self
            .contacts()?
            .into_iter()
            .filter(|c| {
                let k = &c.contact;
                let in_text = [&k.name, &k.company, &k.owner, &k.notes]
                    .into_iter()
                    .flatten()
                    .any(|t| callpop_core::text::fold_for_search(t).contains(&words));
                let in_number = by_number
                    && k.phones.iter().any(|p| {
                        p.e164.contains(&digits)
                            || p.raw
                                .chars()
                                .filter(char::is_ascii_digit)
                                .collect::<String>()
                                .contains(&digits)
                    });
                (!words.is_empty() && in_text) || in_number
            })
            .collect())
    }

    /// Every contact as a CSV a spreadsheet opens and `callpop contacts import` reads back:
    /// one row per contact, its numbers in one cell separated by ` / `.
    pub fn export_contacts(&self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        use crate::export::csv_field;
        let io = |e: std::io::Error| StoreError::Corrupt(format!("cannot write the file: {e}"));
        writeln!(out, "Name,Company,Phone,Owner,Notes").map_err(io)?;
        let mut n = 0;
        for c in self.contacts()? {
            let k = c.contact;
            let phones: Vec<&str> = k.phones.iter().map(|p| p.e164.as_str()).collect();
            let cells = [
                k.name.unwrap_or_default(),
                k.company.unwrap_or_default(),
                phones.join(" / "),
                k.owner.unwrap_or_default(),
                k.notes.unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
            writeln!(out, "{}", line.join(",")).map_err(io)?;
            n += 1;
        }
        Ok(n)
    }

    /// Every contact, by name.
    pub fn contacts(&self) -> Result<Vec<ContactRecord>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM contacts ORDER BY coalesce(name, company) COLLATE NOCASE, id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .map(|id| {
                Ok(ContactRecord {
                    id,
                    contact: load(&self.conn, id)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::options;
    use crate::DB_FILE;

    fn read(text: &str) -> ContactsFile {
        callpop_core::contacts::read(text.as_bytes(), &options().country).expect("read")
    }

    #[test]
    fn an_import_is_previewed_applied_and_the_same_file_again_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join(DB_FILE), options()).expect("open");
        let file = read("Name,Company,Phone,Mobile\nDana Whitfield,Whitfield Auto Body,415 555 0123,415 555 0199\nBao Nguyen,,+61 2 9876 5432,\nNobody,,call me,\n");
        let dry = store.import_contacts(&file, true).expect("dry run");
        assert_eq!((dry.new, dry.updated, dry.unchanged), (2, 0, 0));
        assert_eq!(dry.rejected.len(), 1);
        assert!(
            store.contacts().expect("contacts").is_empty(),
            "a dry run keeps nothing"
        );
        let done = store.import_contacts(&file, false).expect("import");
        assert_eq!(done, dry);
        let again = store.import_contacts(&file, false).expect("again");
        assert_eq!((again.new, again.updated, again.unchanged), (0, 0, 2));
        let all = store.contacts().expect("contacts");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].contact.name.as_deref(), Some("Bao Nguyen"));
        assert_eq!(all[1].contact.phones.len(), 2);
        // A later export with a changed company and a new number updates the same contact.
        let later = read(
            "Name,Company,Phone\nDana Whitfield,Whitfield Collision,415 555 0123 / 415 555 0177\n",
        );
        let update = store.import_contacts(&later, false).expect("update");
        assert_eq!((update.new, update.updated, update.unchanged), (0, 1, 0));
        let dana = store
            .contacts()
            .expect("contacts")
            .into_iter()
            .find(|c| c.contact.name.as_deref() == Some("Dana Whitfield"))
            .expect("Dana");
        assert_eq!(dana.contact.company.as_deref(), Some("Whitfield Collision"));
        assert_eq!(dana.contact.phones.len(), 3);
    }

    #[test]
    fn contacts_are_found_by_name_without_accents_or_by_digits_and_an_export_imports_back_unchanged(
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join(DB_FILE), options()).expect("open");
        store
            .import_contacts(
                &read("Name,Company,Phone,Notes\nJosé Müller,\"Müller, Sons & Co\",(415) 555-0123,=HYPERLINK(\"x\")\nBao Nguyen,,415 555 0199,\n"),
                false,
            )
            .expect("import");
        let names = |q: &str| -> Vec<String> {
            store
                .search_contacts(q)
                .expect("search")
                .into_iter()
                .filter_map(|c| c.contact.name)
                .collect()
        };
        assert_eq!(names("jose"), vec!["José Müller"]);
        assert_eq!(names("sons & co"), vec!["José Müller"]);
        assert_eq!(names("555-0199"), vec!["Bao Nguyen"]);
        assert_eq!(
            names("5550"),
            vec!["Bao Nguyen".to_string(), "José Müller".to_string()]
        );
        assert!(names("zzz").is_empty());
        let mut csv = Vec::new();
        assert_eq!(store.export_contacts(&mut csv).expect("export"), 2);
        let text = String::from_utf8(csv).expect("utf-8");
        assert!(text.contains("'=HYPERLINK"), "no formula: {text}");
        let back = store
            .import_contacts(&read(&text), true)
            .expect("read back");
        assert_eq!(
            (back.new, back.updated, back.unchanged),
            (0, 0, 2),
            "{back:?}"
        );
    }

    #[test]
    fn a_row_whose_numbers_belong_to_two_contacts_is_refused_and_nothing_else_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join(DB_FILE), options()).expect("open");
        store
            .import_contacts(
                &read("Name,Phone\nDana,415 555 0123\nBao,415 555 0199\n"),
                false,
            )
            .expect("import");
        let both = store
            .import_contacts(
                &read("Name,Phone,Mobile\nMixed,415 555 0123,415 555 0199\n"),
                false,
            )
            .expect("import");
        assert_eq!(both.rejected.len(), 1);
        assert!(
            both.rejected[0].reason.contains("Dana, Bao"),
            "{:?}",
            both.rejected
        );
        assert_eq!(store.contacts().expect("contacts").len(), 2);
    }
}
