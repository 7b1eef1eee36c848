//! The history as CSV: every call of a filter, newest first, streamed without holding the
//! calls in memory. The window's export and `callpop calls --csv` both write it.

use std::io::Write;

use chrono::{DateTime, Local, SecondsFormat, Utc};

use callpop_core::lines::{dialled_line_label, LineLabel};
use callpop_core::model::Call;
use callpop_core::text::sanitize;

use crate::{CallFilter, CallRecord, Store, StoreError};

/// The CSV header written by [`write_csv`].
pub const CSV_HEADER: &str = "id,started_at,direction,result,from,from_e164,from_name,to,to_e164,to_name,line,extensions,ring_seconds,talk_seconds,answered_at,ended_at,recording_url,voicemail_seconds,provider,call_key";

/// Characters a spreadsheet may split a line into cells on: the comma CallPop writes, and the
/// semicolon and tab that Excel uses instead in locales where the comma is the decimal mark
/// (fr-CA, most of Europe).
const CELL_SEPARATORS: [char; 5] = [',', ';', '\t', '\n', '\r'];

/// A CSV cell: quoted when needed, and never a spreadsheet formula, whichever separator the
/// spreadsheet splits on: every part that could become a cell of its own and would start a
/// formula gets a leading `'`, and a cell holding any separator is quoted.
pub fn csv_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for part in s.split_inclusive(CELL_SEPARATORS) {
        if starts_formula(part) {
            out.push('\'');
        }
        out.push_str(part);
    }
    if out.contains(CELL_SEPARATORS) || out.contains('"') {
        format!("\"{}\"", out.replace('"', "\"\""))
    } else {
        out
    }
}

/// Whether a spreadsheet would read this cell part as a formula. A `+` phone number is not one.
fn starts_formula(part: &str) -> bool {
    // Excel drops the quotes around a cell it splits off, so `"=cmd"` counts as `=cmd`.
    let text = part
        .trim_end_matches(CELL_SEPARATORS)
        .trim_start_matches([' ', '"']);
    let is_number = text
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    // A leading tab or carriage return is on OWASP's list too: some spreadsheets skip it and
    // read what follows.
    part.starts_with(['\t', '\r']) || (text.starts_with(['=', '+', '-', '@']) && !is_number)
}

/// The extensions of a call as one cell: `101 (answered), 102`.
pub fn extensions_label(call: &Call) -> String {
    call.extensions
        .iter()
        .filter_map(|p| {
            p.label().map(|l| {
                if p.answered {
                    format!("{l} (answered)")
                } else {
                    l.to_string()
                }
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the text of CSV cells is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvText {
    /// Exactly as stored (files and pipes).
    Exact,
    /// For a terminal: control, bidi and zero-width characters dropped, so a caller's name
    /// cannot move the cursor, clear the screen or reorder the line.
    Shown,
}

/// Writes every call matching `filter` as CSV in the machine format (`CSV_HEADER`), newest
/// first, without holding them in memory; returns how many rows were written.
pub fn write_csv(
    store: &Store,
    filter: &CallFilter,
    labels: &[LineLabel],
    text: CsvText,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    // RFC 3339 with this machine's offset (`2026-12-06T20:40:05-05:00`): the same wall-clock
    // time the table shows, and still one exact instant for a program reading it.
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| {
            t.with_timezone(&Local)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
    };
    write_rows(store, filter, CSV_HEADER, text, out, |r| {
        let c = &r.call;
        vec![
            r.id.to_string(),
            time(Some(c.started_at)),
            c.direction.as_str().into(),
            c.result.map(|r| r.as_str()).unwrap_or("").into(),
            c.from.raw.clone().unwrap_or_default(),
            c.from.e164.clone().unwrap_or_default(),
            c.from.name.clone().unwrap_or_default(),
            c.to.raw.clone().unwrap_or_default(),
            c.to.e164.clone().unwrap_or_default(),
            c.to.name.clone().unwrap_or_default(),
            dialled_line_label(c, labels).unwrap_or_default(),
            extensions_label(c),
            c.ring_seconds.to_string(),
            c.talk_seconds.to_string(),
            time(c.answered_at),
            time(c.ended_at),
            c.recording_url.clone().unwrap_or_default(),
            c.voicemail
                .as_ref()
                .and_then(|v| v.seconds)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            c.provider.as_str().into(),
            c.call_key.clone(),
        ]
    })
}

/// Writes `header` and then one line of `cells` per call matching `filter`, newest first,
/// streamed from the store; every cell goes through [`csv_field`]. Returns the row count.
pub fn write_rows(
    store: &Store,
    filter: &CallFilter,
    header: &str,
    text: CsvText,
    out: &mut dyn Write,
    mut cells: impl FnMut(&CallRecord) -> Vec<String>,
) -> Result<u64, StoreError> {
    let io = StoreError::Output;
    writeln!(out, "{header}").map_err(io)?;
    let mut rows = 0;
    store.for_each_call(filter, |r| {
        let line: Vec<String> = cells(r)
            .iter()
            .map(|c| match text {
                CsvText::Exact => csv_field(c),
                CsvText::Shown => csv_field(&sanitize(c, usize::MAX)),
            })
            .collect();
        rows += 1;
        writeln!(out, "{}", line.join(",")).map_err(io)
    })?;
    out.flush().map_err(io)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpop_core::model::Provider;
    use callpop_core::text::is_invisible_control;
    use callpop_testkit::{call_log_delivery as delivery, call_log_record as record};

    fn store_with(dir: &std::path::Path, n: usize) -> Store {
        let mut store =
            Store::open(&dir.join(crate::DB_FILE), crate::tests::options()).expect("store");
        for i in 0..n {
            store.ingest(&delivery(&record(i))).expect("ingest");
        }
        store
    }

    fn sales() -> Vec<LineLabel> {
        vec![LineLabel {
            number: "(650) 555-0100".into(),
            label: "Sales".into(),
        }]
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("+61412345678"), "+61412345678");
        assert_eq!(csv_field("+cmd|calc"), "'+cmd|calc");
        assert_eq!(csv_field("+1 650 555 0100"), "'+1 650 555 0100");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        // Excel in semicolon locales splits here, so each part is neutralised and the cell
        // quoted.
        assert_eq!(
            csv_field("x;=HYPERLINK(\"http://e\")"),
            "\"x;'=HYPERLINK(\"\"http://e\"\")\""
        );
        assert_eq!(csv_field("a; @SUM(1)"), "\"a;' @SUM(1)\"");
        assert_eq!(csv_field("x\t-1"), "\"x\t'-1\"");
        assert_eq!(csv_field("Smith; +61412345678"), "\"Smith; +61412345678\"");
        assert_eq!(csv_field("plain name"), "plain name");
        assert_eq!(csv_field("x;\"=cmd\""), "\"x;'\"\"=cmd\"\"\"");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "\"'\tx\"");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(csv_field("Jane Roe"), "Jane Roe");
        assert_eq!(csv_field("a=b"), "a=b");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_field("42"), "42");
    }

    #[test]
    fn the_csv_has_a_header_and_one_row_per_call_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with(dir.path(), 2);
        let mut r = record(2);
        r["from"]["name"] = serde_json::json!("=EVIL(), INC");
        store.ingest(&delivery(&r)).expect("ingest");
        let mut out = Vec::new();
        let rows = write_csv(
            &store,
            &CallFilter::default(),
            &sales(),
            CsvText::Exact,
            &mut out,
        )
        .expect("csv");
        assert_eq!(rows, 3);
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(CSV_HEADER.split(',').count(), 20);
        let id = |key: &str| {
            store
                .call_by_key(Provider::RingCentral, key)
                .expect("call")
                .expect("stored")
                .id
        };
        // Times carry this machine's offset, as the table shows them.
        let local = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .expect("time")
                .with_timezone(&Local)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        };
        assert_eq!(
            lines[1],
            format!(
                "{},{},inbound,answered,+14155550002,+14155550002,\"'=EVIL(), INC\",\
                 +16505550100,+16505550100,Alice Sales,Sales,101 (answered),0,60,\
                 {},{},,,ringcentral,s-00002",
                id("s-00002"),
                local("2026-11-02T09:02:00Z"),
                local("2026-11-02T09:02:00Z"),
                local("2026-11-02T09:03:00Z")
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "{},{},inbound,answered,+14155550001,+14155550001,JANE ROE,\
                 +16505550100,+16505550100,Alice Sales,Sales,102 (answered),0,60,\
                 {},{},,,ringcentral,s-00001",
                id("s-00001"),
                local("2026-11-02T09:01:00Z"),
                local("2026-11-02T09:01:00Z"),
                local("2026-11-02T09:02:00Z")
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "{},{},inbound,missed,+14155550000,+14155550000,JANE ROE,\
                 +16505550100,+16505550100,Alice Sales,Sales,101,0,0,,{},,,\
                 ringcentral,s-00000",
                id("s-00000"),
                local("2026-11-02T09:00:00Z"),
                local("2026-11-02T09:00:00Z")
            )
        );
        // A filter limits the rows; the header is always there.
        let mut out = Vec::new();
        let none = CallFilter {
            search: Some("zebediah".into()),
            ..Default::default()
        };
        assert_eq!(
            write_csv(&store, &none, &[], CsvText::Exact, &mut out).expect("csv"),
            0
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!("{CSV_HEADER}\n")
        );
    }

    #[test]
    fn csv_for_a_terminal_drops_what_could_drive_it_and_files_keep_the_exact_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = store_with(dir.path(), 0);
        let mut r = record(0);
        r["from"]["name"] = serde_json::json!("\u{1b}[2J\u{202e}MALLORY\u{200b} \u{7}INC");
        store.ingest(&delivery(&r)).expect("ingest");
        let csv = |text| {
            let mut out = Vec::new();
            write_csv(&store, &CallFilter::default(), &[], text, &mut out).expect("csv");
            String::from_utf8(out).expect("utf8")
        };
        let shown = csv(CsvText::Shown);
        assert!(shown.contains(",[2JMALLORY INC,"), "{shown}");
        assert!(
            !shown.chars().any(|c| c != '\n' && is_invisible_control(c)),
            "{shown:?}"
        );
        // The parser already drops C0 controls; bidi and zero-width characters are kept.
        let exact = csv(CsvText::Exact);
        assert!(
            exact.contains(",[2J\u{202e}MALLORY\u{200b} INC,"),
            "{exact:?}"
        );
    }
}
