//! CSV contacts as CRMs and spreadsheets write them: a header row in any order and wording
//! ("Mobile Phone", "Phone 1 - Value", "Sales Rep"), `,` or `;` between cells (Excel writes `;`
//! where the decimal mark is a comma), quoted cells with newlines in them.

use super::{cell, ContactsError, RawRow};

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Name,
    First,
    Last,
    Company,
    /// A phone number, with the header as its label.
    Phone(String),
    Owner,
    Notes,
    Other,
}

/// A header cell as compared: lower case, letters and digits only.
fn key(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn column(header: &str) -> Column {
    let k = key(header);
    let is = |words: &[&str]| words.contains(&k.as_str());
    if is(&[
        "name",
        "fullname",
        "contact",
        "contactname",
        "displayname",
        "customer",
        "customername",
    ]) {
        Column::Name
    } else if is(&["firstname", "givenname", "first"]) {
        Column::First
    } else if is(&["lastname", "surname", "familyname", "last"]) {
        Column::Last
    } else if is(&[
        "company",
        "companyname",
        "organization",
        "organisation",
        "business",
        "account",
        "accountname",
        "employer",
    ]) {
        Column::Company
    } else if is(&[
        "owner",
        "contactowner",
        "accountowner",
        "salesperson",
        "salesrep",
        "rep",
        "assignedto",
        "advisor",
        "consultant",
    ]) {
        Column::Owner
    } else if is(&["notes", "note", "comments", "comment", "description"]) {
        Column::Notes
    } else if !k.contains("fax")
        && (k.contains("phone")
            || k.contains("mobile")
            || k.contains("cell")
            || k.starts_with("tel"))
        && !k.contains("type")
        && !k.contains("label")
    {
        Column::Phone(header.trim().to_string())
    } else {
        Column::Other
    }
}

/// The separator the header row uses: `;` when it has more of them than commas.
fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or_default();
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

pub(super) fn rows(text: &str) -> Result<Vec<RawRow>, ContactsError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(text))
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ContactsError::Csv(e.to_string()))?
        .clone();
    if headers.iter().all(|h| h.trim().is_empty()) {
        return Err(ContactsError::Empty);
    }
    let columns: Vec<Column> = headers.iter().map(column).collect();
    if !columns.iter().any(|c| matches!(c, Column::Phone(_))) {
        return Err(ContactsError::NoPhoneColumn);
    }
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ContactsError::Csv(e.to_string())),
        }
        // Where the record starts (a quoted newline makes records longer than a line). The
        // reader's position may still stand on the previous line's end.
        let bytes = text.as_bytes();
        let mut start = record
            .position()
            .map_or(0, |p| p.byte() as usize)
            .min(bytes.len());
        let mut line = 1 + bytes[..start].iter().filter(|b| **b == b'\n').count() as u64;
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            line += u64::from(bytes[start] == b'\n');
            start += 1;
        }
        let mut row = RawRow {
            line,
            ..RawRow::default()
        };
        let (mut first, mut last) = (None, None);
        for (value, column) in record.iter().zip(&columns) {
            // A `'` before a formula character is how CallPop's own export (and spreadsheets)
            // keep a cell from running as a formula: it is not part of the text.
            let value = match value.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
                _ => value,
            };
            let Some(value) = cell(value) else {
                continue;
            };
            match column {
                Column::Name => row.name = Some(value),
                Column::First => first = Some(value),
                Column::Last => last = Some(value),
                Column::Company => row.company = Some(value),
                // One cell may hold several numbers ("415 555 0123 / 415 555 0199").
                Column::Phone(label) => row.phones.extend(
                    value
                        .split(['/', '\n', '|'])
                        .filter_map(cell)
                        .map(|n| (n, Some(label.clone()))),
                ),
                Column::Owner => row.owner = Some(value),
                Column::Notes => row.notes = Some(value),
                Column::Other => {}
            }
        }
        if row.name.is_none() {
            row.name = match (first, last) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (f, l) => f.or(l),
            };
        }
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{numbers, us};
    use super::super::*;
    use super::column;
    use super::Column;

    #[test]
    fn headers_are_read_in_the_words_crms_use() {
        assert_eq!(
            column(" Mobile Phone "),
            Column::Phone("Mobile Phone".into())
        );
        assert_eq!(
            column("Phone 1 - Value"),
            Column::Phone("Phone 1 - Value".into())
        );
        assert_eq!(column("Phone 1 - Type"), Column::Other);
        assert_eq!(column("Business Fax"), Column::Other);
        assert_eq!(column("Sales Rep"), Column::Owner);
        assert_eq!(column("E-mail"), Column::Other);
        assert_eq!(column("Last Name"), Column::Last);
    }

    #[test]
    fn an_excel_export_with_a_bom_semicolons_and_a_quoted_newline_reads_row_by_row() {
        let file = "\u{feff}Last Name;First Name;Company;Mobile Phone;Work Phone;Sales Rep;Notes\r\n\
            Whitfield;Dana;Whitfield Auto Body;(415) 555-0123;415.555.0199;Sarah;\"Wants the F-150.\nCall after 3.\"\r\n\
            Nguyen;Bao;;+61 2 9876 5432;;;\r\n";
        let read = read(file.as_bytes(), &us()).expect("read");
        assert!(read.rejected.is_empty(), "{:?}", read.rejected);
        assert_eq!(read.rows.len(), 2);
        let dana = &read.rows[0];
        assert_eq!(dana.line, 2);
        assert_eq!(dana.contact.name.as_deref(), Some("Dana Whitfield"));
        assert_eq!(dana.contact.company.as_deref(), Some("Whitfield Auto Body"));
        assert_eq!(dana.contact.owner.as_deref(), Some("Sarah"));
        assert_eq!(
            dana.contact.notes.as_deref(),
            Some("Wants the F-150.\nCall after 3.")
        );
        let numbers = numbers(&dana.contact);
        assert_eq!(
            numbers,
            vec![
                ("+14155550123", Some("Mobile Phone")),
                ("+14155550199", Some("Work Phone"))
            ]
        );
        // The quoted newline does not shift the next row's line.
        assert_eq!(read.rows[1].line, 4);
        assert_eq!(read.rows[1].contact.phones[0].e164, "+61298765432");
    }

    #[test]
    fn a_file_without_a_phone_column_is_refused_and_bad_numbers_are_named() {
        assert_eq!(
            read(b"Name,Email\nDana,d@example.com\n", &us()),
            Err(ContactsError::NoPhoneColumn)
        );
        assert_eq!(read(b"", &us()), Err(ContactsError::Empty));
        let read = read(
            b"Name,Phone\nDana,call me\nBao,415 555 0123 / 415 555 0124\n",
            &us(),
        )
        .expect("read");
        assert_eq!(read.rejected.len(), 1);
        assert_eq!(read.rejected[0].line, 2);
        assert!(read.rejected[0]
            .reason
            .contains("\"call me\" is not a phone number"));
        assert_eq!(
            read.rows[0].contact.phones.len(),
            2,
            "two numbers in one cell"
        );
    }
}
