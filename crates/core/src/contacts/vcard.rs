//! vCard 3.0 and 4.0 (RFC 2426, RFC 6350): folded lines, several TEL lines with their TYPE,
//! `tel:` URIs, escaped text, property groups (`item1.TEL`).

use super::{cell, RawRow};

/// Undoes line folding (a line break followed by a space or tab continues the line), keeping
/// each unfolded line's first line number.
fn unfold(text: &str) -> Vec<(u64, String)> {
    let mut lines: Vec<(u64, String)> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match line.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => {
                if let Some(last) = lines.last_mut() {
                    last.1.push_str(rest);
                }
            }
            _ => lines.push((n as u64 + 1, line.to_string())),
        }
    }
    lines
}

/// A property value's text: `\n`, `\,`, `\;` and `\\` unescaped.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Splits a structured value (`N`, `ORG`) on unescaped semicolons.
fn components(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in value.chars() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, ';') => parts.push(String::new()),
            (true, c) => {
                escaped = false;
                if let Some(last) = parts.last_mut() {
                    last.push('\\');
                    last.push(c);
                }
            }
            (false, c) => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts.iter().map(|p| unescape(p)).collect()
}

/// The TYPE of a TEL line as a label (`cell`, `work,voice`), if it has one.
fn tel_label(params: &[&str]) -> Option<String> {
    let types: Vec<String> = params
        .iter()
        .filter_map(|p| {
            let (name, value) = p.split_once('=').unwrap_or(("TYPE", p));
            name.eq_ignore_ascii_case("TYPE").then_some(value)
        })
        .flat_map(|value| value.trim_matches('"').split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "voice" && t != "pref")
        .collect();
    (!types.is_empty()).then(|| types.join(","))
}

pub(super) fn rows(text: &str) -> Vec<RawRow> {
    let mut out = Vec::new();
    let mut card: Option<RawRow> = None;
    let mut structured_name: Option<String> = None;
    for (line, content) in unfold(text) {
        let Some((head, value)) = content.split_once(':') else {
            continue;
        };
        let mut params = head.split(';');
        let name = params.next().unwrap_or_default();
        // A group prefix (`item1.TEL`) names a group; the property is after the dot.
        let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
        let params: Vec<&str> = params.collect();
        match name.as_str() {
            "BEGIN" if value.trim().eq_ignore_ascii_case("VCARD") => {
                card = Some(RawRow {
                    line,
                    ..RawRow::default()
                });
                structured_name = None;
            }
            "END" if value.trim().eq_ignore_ascii_case("VCARD") => {
                if let Some(mut row) = card.take() {
                    if row.name.is_none() {
                        row.name = structured_name.take();
                    }
                    out.push(row);
                }
            }
            _ => {
                let Some(row) = card.as_mut() else {
                    continue;
                };
                match name.as_str() {
                    "FN" => row.name = cell(&unescape(value)),
                    "N" => {
                        let parts = components(value);
                        let given = parts.get(1).and_then(|p| cell(p));
                        let family = parts.first().and_then(|p| cell(p));
                        structured_name = match (given, family) {
                            (Some(g), Some(f)) => Some(format!("{g} {f}")),
                            (g, f) => g.or(f),
                        };
                    }
                    "ORG" => row.company = components(value).first().and_then(|c| cell(c)),
                    "NOTE" => row.notes = cell(&unescape(value)),
                    "TEL" => {
                        let number = value.trim();
                        let number = number
                            .strip_prefix("tel:")
                            .or_else(|| number.strip_prefix("TEL:"))
                            .unwrap_or(number);
                        if let Some(number) = cell(&unescape(number)) {
                            row.phones.push((number, tel_label(&params)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{numbers, us};
    use super::super::*;

    #[test]
    fn vcards_3_and_4_with_several_numbers_folded_lines_and_groups() {
        let file = "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Whitfield;Dana;;;\r\nFN:Dana Whitfield\r\n\
            ORG:Whitfield Auto Body;Parts\r\nTEL;TYPE=CELL:(415) 555-0123\r\nTEL;TYPE=WORK,VOICE:415 55\r\n 5 0199\r\n\
            NOTE:Wants the F-150\\, red.\\nCall after 3.\r\nEND:VCARD\r\n\
            BEGIN:VCARD\r\nVERSION:4.0\r\nN:Nguyen;Bao;;;\r\nitem1.TEL;VALUE=uri;TYPE=\"cell\":tel:+61-2-9876-5432\r\nEND:VCARD\r\n\
            BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Nobody\r\nEND:VCARD\r\n";
        let read = read(file.as_bytes(), &us()).expect("read");
        assert_eq!(read.rows.len(), 2);
        let dana = &read.rows[0].contact;
        assert_eq!(read.rows[0].line, 1);
        assert_eq!(dana.name.as_deref(), Some("Dana Whitfield"));
        assert_eq!(dana.company.as_deref(), Some("Whitfield Auto Body"));
        assert_eq!(
            dana.notes.as_deref(),
            Some("Wants the F-150, red.\nCall after 3.")
        );
        let numbers = numbers(dana);
        assert_eq!(
            numbers,
            vec![
                ("+14155550123", Some("cell")),
                ("+14155550199", Some("work"))
            ]
        );
        let bao = &read.rows[1];
        assert_eq!(bao.line, 11);
        assert_eq!(
            bao.contact.name.as_deref(),
            Some("Bao Nguyen"),
            "from N without FN"
        );
        assert_eq!(bao.contact.phones[0].e164, "+61298765432");
        assert_eq!(bao.contact.phones[0].label.as_deref(), Some("cell"));
        assert_eq!(read.rejected.len(), 1);
        assert_eq!(read.rejected[0].reason, "Nobody has no phone number");
    }
}
