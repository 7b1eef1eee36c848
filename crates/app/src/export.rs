//! The window's CSV export, written for a manager opening it in a spreadsheet: plain column
//! names, the other party's name and number, times in this computer's time zone and in the
//! date order the window uses, durations a spreadsheet reads as durations. `callpop calls
//! --csv` keeps the machine format (`callpop_store::export::CSV_HEADER`) for programs.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use callpop_core::lines::{dialled_line_label, LineLabel};
use callpop_core::model::{Call, CallDirection, CallResult, CallState, PartySummary};
use callpop_core::numbers::{format_national, Country};
use callpop_store::export::{write_rows, CsvText};
use callpop_store::{CallFilter, Store};

use crate::window::{CallQuery, WindowError};

/// The columns of the window's export, in order.
pub const HEADER: &str = "Date,Time,Direction,Result,Name,Number,Line,Answered by,Extensions,Ring time,Talk time,Voicemail length,Recording";

/// The order of day, month and year in the user's dates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// 12/31/2026 (United States).
    #[default]
    Mdy,
    /// 31/12/2026 (most of the world).
    Dmy,
    /// 2026-12-31 (ISO; Canada's official form).
    Ymd,
}

/// How the user writes dates and times; the window reads it from the system locale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DateStyle {
    /// Day, month and year order.
    pub order: DateOrder,
    /// "2:05:09 PM" rather than "14:05:09".
    pub hour12: bool,
}

/// One export from the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExportRequest {
    /// Which calls (page size and cursor are ignored: every matching call is written).
    pub query: CallQuery,
    /// The folder to write to; `null` for the default (Downloads).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub folder: Option<String>,
    /// How dates and times are written.
    #[serde(default)]
    pub dates: DateStyle,
}

/// A folder offered in the export dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExportFolder {
    /// What people call it ("Downloads").
    pub label: String,
    /// Its full path.
    pub path: String,
}

/// Where an export went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExportResult {
    /// The CSV file.
    pub path: String,
    /// The folder it is in.
    pub folder: String,
    /// Calls written.
    pub rows: u64,
}

/// The folders the export dialog offers, the default first: those of Downloads, Documents and
/// Desktop that exist, else CallPop's own `exports` folder in its data dir.
pub fn folders(data_dir: &Path) -> Vec<ExportFolder> {
    let known = [
        ("Downloads", dirs::download_dir()),
        ("Documents", dirs::document_dir()),
        ("Desktop", dirs::desktop_dir()),
    ];
    let mut out: Vec<ExportFolder> = Vec::new();
    for (label, dir) in known {
        let Some(dir) = dir.filter(|d| d.is_dir()) else {
            continue;
        };
        let path = dir.display().to_string();
        if !out.iter().any(|f| f.path == path) {
            out.push(ExportFolder {
                label: label.into(),
                path,
            });
        }
    }
    if out.is_empty() {
        out.push(ExportFolder {
            label: "CallPop exports".into(),
            path: data_dir.join("exports").display().to_string(),
        });
    }
    out
}

/// The folder an export goes to: the one asked for (which must exist: a typing mistake should
/// not silently create a new folder), else the first of [`folders`] (created if needed).
pub fn target_folder(request: &ExportRequest, data_dir: &Path) -> Result<PathBuf, WindowError> {
    match request
        .folder
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(folder) => {
            let path = PathBuf::from(folder);
            // A network share (\\host\share, //host/share) would send the history, and on
            // Windows the user's sign-in, to another machine: exports stay on this one.
            if folder.starts_with("\\\\") || folder.starts_with("//") {
                return Err(WindowError::Invalid(
                    "choose a folder on this computer, not a network share".into(),
                ));
            }
            if !path.is_absolute() {
                return Err(WindowError::Invalid(format!(
                    "choose a full folder path, such as {}",
                    folders(data_dir)[0].path
                )));
            }
            if !path.is_dir() {
                return Err(WindowError::Invalid(format!(
                    "the folder {folder} does not exist"
                )));
            }
            Ok(path)
        }
        None => Ok(PathBuf::from(&folders(data_dir)[0].path)),
    }
}

/// The desk's settings an export is written with.
#[derive(Debug, Clone, Copy)]
pub struct Desk<'a> {
    /// This desk's extensions ("My calls").
    pub watched: &'a [String],
    /// The dealership's names for its lines.
    pub labels: &'a [LineLabel],
    /// The desk's country: its numbers are written the national way.
    pub country: &'a Country,
}

/// Exports the calls of `request` (all pages) to a new CSV file in `dir`, named by the time.
/// The file appears only once complete, readable by its owner alone.
pub fn export_csv(
    store: &Store,
    request: &ExportRequest,
    desk: Desk<'_>,
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<ExportResult, WindowError> {
    let filter = CallFilter {
        limit: 0,
        after: None,
        ..CallQuery {
            limit: 0,
            cursor: None,
            ..request.query.clone()
        }
        .filter(desk.watched)?
    };
    let stamp = now.with_timezone(&Local).format("%Y-%m-%d-%H%M%S");
    let first = dir.join(format!("callpop-calls-{stamp}.csv"));
    std::fs::create_dir_all(dir)
        .map_err(|e| WindowError::Export(first.display().to_string(), e))?;
    // A new file under a free name: two exports in one second, or a name planted in a shared
    // folder, never overwrite or write through anything. Written under a temporary name so a
    // half-written export never looks finished; call history is the owner's alone.
    let (path, partial, file) = (1..=100)
        .find_map(|n| {
            let path = if n == 1 {
                first.clone()
            } else {
                dir.join(format!("callpop-calls-{stamp}-{n}.csv"))
            };
            let partial = path.with_extension("csv.partial");
            if path.exists() {
                return None;
            }
            match callpop_files::create_private(&partial) {
                Ok(file) => Some(Ok((path, partial, file))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(WindowError::Export(path.display().to_string(), e))),
            }
        })
        .unwrap_or_else(|| {
            Err(WindowError::Export(
                first.display().to_string(),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free file name"),
            ))
        })?;
    let shown = path.display().to_string();
    let mut out = std::io::BufWriter::new(file);
    let style = request.dates;
    let written = write_rows(store, &filter, HEADER, CsvText::Exact, &mut out, |r| {
        row(&r.call, desk, style)
    });
    drop(out);
    let rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    // A hard link never replaces what appeared under the name meanwhile; then the temporary
    // name goes.
    let finished =
        std::fs::hard_link(&partial, &path).and_then(|()| std::fs::remove_file(&partial));
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(WindowError::Export(shown, e));
    }
    Ok(ExportResult {
        path: shown,
        folder: dir.display().to_string(),
        rows,
    })
}

/// One call as the export's cells, in [`HEADER`]'s order.
fn row(c: &Call, desk: Desk<'_>, style: DateStyle) -> Vec<String> {
    let started = c.started_at.with_timezone(&Local);
    let (them, us) = match c.direction {
        CallDirection::Outbound => (&c.to, &c.from),
        _ => (&c.from, &c.to),
    };
    let number = |p: &PartySummary| {
        p.e164
            .as_deref()
            .map(|n| format_national(n, desk.country))
            .or_else(|| p.raw.clone())
            .unwrap_or_default()
    };
    // Without a label, the public number dialled (an extension is a desk, not a line).
    let line = dialled_line_label(c, desk.labels).unwrap_or_else(|| match c.direction {
        CallDirection::Inbound | CallDirection::Outbound => us
            .e164
            .as_deref()
            .map(|n| format_national(n, desk.country))
            .unwrap_or_default(),
        _ => String::new(),
    });
    let desk = |p: &callpop_core::model::ExtensionPart| {
        let ext = p.label().unwrap_or_default();
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) if !ext.is_empty() => format!("{ext} {name}"),
            Some(name) => name.to_string(),
            None => ext.to_string(),
        }
    };
    let answered_by: Vec<String> = c
        .extensions
        .iter()
        .filter(|p| p.answered)
        .map(desk)
        .collect();
    let all: Vec<String> = c.extensions.iter().map(desk).collect();
    vec![
        date(started, style.order),
        time(started, style.hour12),
        direction(c.direction).into(),
        result(c).into(),
        them.name.clone().unwrap_or_default(),
        number(them),
        line,
        answered_by.join(", "),
        all.join(", "),
        duration(c.ring_seconds),
        duration(c.talk_seconds),
        c.voicemail
            .as_ref()
            .and_then(|v| v.seconds)
            .map(duration)
            .unwrap_or_default(),
        c.recording_url.clone().unwrap_or_default(),
    ]
}

fn date(t: DateTime<Local>, order: DateOrder) -> String {
    match order {
        DateOrder::Mdy => t.format("%m/%d/%Y"),
        DateOrder::Dmy => t.format("%d/%m/%Y"),
        DateOrder::Ymd => t.format("%Y-%m-%d"),
    }
    .to_string()
}

fn time(t: DateTime<Local>, hour12: bool) -> String {
    if hour12 {
        t.format("%-I:%M:%S %p").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

/// `h:mm:ss`, always with the hours: a spreadsheet reads "0:45" as 45 minutes.
fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn direction(d: CallDirection) -> &'static str {
    match d {
        CallDirection::Inbound => "Inbound",
        CallDirection::Outbound => "Outbound",
        CallDirection::Internal => "Internal",
        CallDirection::Unknown => "Unknown",
    }
}

/// The result in the window's words.
fn result(c: &Call) -> &'static str {
    match (c.state, c.result) {
        (CallState::Ringing, _) => "Ringing",
        (CallState::Connected, _) => "On call",
        (_, Some(CallResult::Answered)) => "Answered",
        (_, Some(CallResult::Missed)) => "Missed",
        (_, Some(CallResult::Voicemail)) => "Voicemail",
        (_, Some(CallResult::NoAnswer)) => "No answer",
        (_, Some(CallResult::NoEndReported)) => "No end reported",
        (_, None) => "Ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::window::tests::store_with;
    use callpop_testkit::us;

    fn request(query: CallQuery) -> ExportRequest {
        ExportRequest {
            query,
            ..ExportRequest::default()
        }
    }

    fn desk<'a>(watched: &'a [String], labels: &'a [LineLabel], country: &'a Country) -> Desk<'a> {
        Desk {
            watched,
            labels,
            country,
        }
    }

    fn sales() -> Vec<LineLabel> {
        vec![LineLabel {
            number: "+16505550100".into(),
            label: "Sales".into(),
        }]
    }

    #[test]
    fn an_export_writes_every_matching_call_for_people_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 5);
        let out_dir = dir.path().join("exports");
        std::fs::create_dir(&out_dir).expect("mkdir");
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 16, 30, 5).unwrap();
        // Page size and cursor do not limit an export; the filter does.
        let query = CallQuery {
            direction: Some(CallDirection::Inbound),
            limit: 1,
            cursor: Some("3".into()),
            ..CallQuery::default()
        };
        let result = export_csv(
            &store,
            &request(query),
            desk(&[], &sales(), &us()),
            &out_dir,
            now,
        )
        .expect("export");
        let name = format!(
            "callpop-calls-{}.csv",
            now.with_timezone(&Local).format("%Y-%m-%d-%H%M%S")
        );
        let path = out_dir.join(&name);
        assert_eq!(
            result,
            ExportResult {
                path: path.display().to_string(),
                folder: out_dir.display().to_string(),
                rows: 5,
            }
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "call history is the user's alone");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], HEADER);
        let files: Vec<String> = std::fs::read_dir(&out_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, vec![name.clone()]);

        // A second export in the same second gets its own file; nothing is overwritten.
        let again = export_csv(
            &store,
            &request(CallQuery::default()),
            desk(&[], &[], &us()),
            &out_dir,
            now,
        )
        .expect("again");
        assert_eq!(
            again.path,
            out_dir
                .join(name.replace(".csv", "-2.csv"))
                .display()
                .to_string()
        );
        assert_eq!(std::fs::read_to_string(&path).expect("first kept"), text);

        let mine = CallQuery {
            mine: Some(true),
            ..CallQuery::default()
        };
        let later = now + chrono::Duration::seconds(1);
        let result = export_csv(
            &store,
            &request(mine),
            desk(&["101".into()], &[], &us()),
            &out_dir,
            later,
        )
        .expect("export");
        assert_eq!(result.rows, 3, "desk 101 took calls 0, 2 and 4");
    }

    #[test]
    fn a_row_speaks_the_managers_language_in_the_users_date_style() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 2);
        let calls = store
            .calls(&CallFilter {
                limit: 10,
                ..CallFilter::default()
            })
            .expect("list");
        let call = &calls
            .iter()
            .find(|r| r.call.call_key == "s-00001")
            .expect("call 1")
            .call;
        let local = call.started_at.with_timezone(&Local);
        let labels = sales();
        let here = us();
        let us = row(call, desk(&[], &labels, &here), DateStyle::default());
        assert_eq!(us[0], local.format("%m/%d/%Y").to_string());
        let us = row(
            call,
            desk(&[], &labels, &here),
            DateStyle {
                hour12: true,
                ..DateStyle::default()
            },
        );
        assert_eq!(us[1], local.format("%-I:%M:%S %p").to_string());
        let eu = row(
            call,
            desk(&[], &labels, &here),
            DateStyle {
                order: DateOrder::Dmy,
                hour12: false,
            },
        );
        assert_eq!(eu[0], local.format("%d/%m/%Y").to_string());
        assert_eq!(eu[1], local.format("%H:%M:%S").to_string());
        let iso = row(
            call,
            desk(&[], &[], &here),
            DateStyle {
                order: DateOrder::Ymd,
                hour12: false,
            },
        );
        assert_eq!(iso[0], local.format("%Y-%m-%d").to_string());
        assert_eq!(&us[2..4], ["Inbound", "Answered"]);
        assert_eq!(us[4], "JANE ROE");
        assert_eq!(
            us[5], "(415) 555-0001",
            "the caller's number as people write it"
        );
        assert_eq!(us[6], "Sales", "the line's label");
        assert_eq!(
            iso[6], "(650) 555-0100",
            "without a label, the number dialled"
        );
        assert_eq!(us[7], "102 Alice Sales");
        assert_eq!(us[9], duration(call.ring_seconds));
        assert_eq!(duration(45), "0:00:45", "never read as 45 minutes");
        assert_eq!(duration(3725), "1:02:05");
    }

    #[test]
    fn a_failed_export_says_why_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with(dir.path(), 1);
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 16, 30, 5).unwrap();
        let out_dir = dir.path().join("exports");
        let bad = CallQuery {
            since: Some("soon".into()),
            ..CallQuery::default()
        };
        let err = export_csv(&store, &request(bad), desk(&[], &[], &us()), &out_dir, now)
            .expect_err("bad query");
        assert!(matches!(err, WindowError::Invalid(_)), "{err:?}");
        assert!(!out_dir.exists(), "nothing is created for a bad query");

        let not_a_dir = dir.path().join("a-file");
        std::fs::write(&not_a_dir, "x").expect("write");
        let err = export_csv(
            &store,
            &ExportRequest::default(),
            desk(&[], &[], &us()),
            &not_a_dir,
            now,
        )
        .expect_err("not a dir");
        assert!(matches!(err, WindowError::Export(..)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot write {}", not_a_dir.display())),
            "{err}"
        );
    }

    #[test]
    fn a_chosen_folder_must_be_a_full_path_that_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ask = |folder: &str| ExportRequest {
            folder: Some(folder.into()),
            ..ExportRequest::default()
        };
        let err = target_folder(&ask("Documents"), dir.path()).expect_err("relative");
        assert!(
            err.to_string().starts_with("choose a full folder path"),
            "{err}"
        );
        let missing = dir.path().join("nope");
        let err =
            target_folder(&ask(&missing.display().to_string()), dir.path()).expect_err("missing");
        assert!(err.to_string().ends_with("does not exist"), "{err}");
        assert_eq!(
            target_folder(&ask(&dir.path().display().to_string()), dir.path()).expect("ok"),
            dir.path()
        );
        let err = target_folder(&ask("//fileserver/share"), dir.path()).expect_err("share");
        assert!(err.to_string().contains("not a network share"), "{err}");
        let err = target_folder(&ask("\\\\fileserver\\share"), dir.path()).expect_err("unc");
        assert!(err.to_string().contains("not a network share"), "{err}");
        let default = target_folder(&ask("  "), dir.path()).expect("default");
        assert_eq!(default.display().to_string(), folders(dir.path())[0].path);
    }
}
