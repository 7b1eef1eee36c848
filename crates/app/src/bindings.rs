//! The window's TypeScript bindings (`ui/src/bindings.ts`), generated from the Rust types and
//! the command and event lists below, so the window and the engine cannot drift apart. A test
//! compares the committed file with what this renders (`CALLPOP_BLESS=1` rewrites it).

use ts_rs::{Config, TS};

use crate::app::{
    ActionResult, DeskRow, FoundHubRow, HealthAction, HubPanel, JoinRequest, LinkOutcome,
    PairingCode, RingotelToken, SaveResult,
};
use crate::export::{DateOrder, DateStyle, ExportFolder, ExportRequest, ExportResult};
use crate::settings::{
    Confirmation, FieldError, GeneralUpdate, GeneralView, NotificationsView, PopupsView,
    QuietHoursView, RingCentralUpdate, RingCentralView, RingotelUpdate, RingotelView,
    SettingsUpdate, SettingsView, TunnelModeView, TunnelUpdate, TunnelView,
};
use crate::window::{CallDetail, CallPage, CallQuery, CallView, DeliveryView, TimelineEntry};
use callpop_core::lines::LineLabel;
use callpop_core::model::{
    CallDirection, CallResult, CallState, ExtensionPart, LegDirection, LegState, Provider,
};
use callpop_engine::health::{Attention, PartStatus, ProviderCounters, Snapshot};
use callpop_engine::popups::PauseState;

/// One command the window may invoke.
pub struct CommandSpec {
    /// The Tauri command name (snake_case, as the shell registers it).
    pub name: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// Arguments: name and TypeScript type.
    pub args: Vec<(&'static str, String)>,
    /// TypeScript type of the answer.
    pub returns: String,
}

/// One event the shell emits to the window.
pub struct EventSpec {
    /// The event name on the wire.
    pub name: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// TypeScript type of its payload.
    pub payload: String,
}

macro_rules! commands {
    ($( #[doc = $doc:literal] $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        /// Every command name, for the shell's allow-list and its tests.
        pub const COMMAND_NAMES: &[&str] = &[$(stringify!($name)),*];

        /// Every command with its argument and answer types.
        pub fn commands(cfg: &Config) -> Vec<CommandSpec> {
            vec![$(CommandSpec {
                name: stringify!($name),
                doc: $doc.trim(),
                args: vec![$((stringify!($arg), <$ty as TS>::name(cfg))),*],
                returns: <$ret as TS>::name(cfg),
            }),*]
        }
    };
}

commands! {
    /// A page of the call log, newest first.
    list_calls(query: CallQuery) -> CallPage;
    /// One call with its timeline and raw deliveries.
    get_call(id: i64) -> CallDetail;
    /// The folders the export dialog offers, the default (Downloads) first.
    export_folders() -> Vec<ExportFolder>;
    /// Every call of the query (all pages) to a CSV file for a spreadsheet.
    export_csv(request: ExportRequest) -> ExportResult;
    /// Opens a file exported this session in the desktop's program for it.
    open_export(path: String) -> ();
    /// Shows the folder of a file exported this session.
    show_export(path: String) -> ();
    /// Fetches a call's RingCentral voicemail and opens it in the audio player; the file.
    play_voicemail(id: i64) -> String;
    /// Opens a web, phone or e-mail link and says whether anything took it.
    open_link(url: String) -> LinkOutcome;
    /// The settings page (secrets only as "set").
    get_settings() -> SettingsView;
    /// Validates and saves settings, then restarts the engine with them.
    save_settings(update: SettingsUpdate) -> SaveResult;
    /// Signs in to RingCentral with the saved credentials.
    test_ringcentral() -> ActionResult;
    /// The Ringotel webhook token, to copy into the Ringotel portal.
    get_ringotel_token() -> RingotelToken;
    /// The health board.
    get_health() -> Snapshot;
    /// One of the health page's fixes.
    run_health_action(action: HealthAction) -> ActionResult;
    /// Whether popups are paused.
    get_pause() -> PauseState;
    /// Pauses popups for some minutes (`null` = until resumed).
    set_pause(minutes: Option<u32>) -> PauseState;
    /// Resumes popups.
    resume() -> PauseState;
    /// The Hub tab: this CallPop's role, a hub's desks, a desk's link.
    get_hub() -> HubPanel;
    /// Makes this CallPop the dealership's hub (`true`) or stops serving desks.
    set_hub(on: bool) -> HubPanel;
    /// "Add a desk": a one-time pairing code (ten minutes, one desk).
    hub_add_desk(name: Option<String>) -> PairingCode;
    /// Removes a desk from the hub at once.
    hub_remove_desk(name: String) -> HubPanel;
    /// Hubs that answer on the network (a few seconds).
    find_hubs() -> Vec<FoundHubRow>;
    /// "Join a hub" with the code shown there; then runs as its desk.
    join_hub(request: JoinRequest) -> HubPanel;
    /// Leaves the hub: standalone again, keeping the calls it has.
    leave_hub() -> HubPanel;
}

/// Every event the window listens to.
pub fn events(cfg: &Config) -> Vec<EventSpec> {
    vec![
        EventSpec {
            name: "call-changed",
            doc: "A call was stored or changed (at most one per call every 100 ms).",
            payload: CallView::name(cfg),
        },
        EventSpec {
            name: "health-changed",
            doc: "The health board changed.",
            payload: Snapshot::name(cfg),
        },
        EventSpec {
            name: "open-call",
            doc: "A popup's \"Open\" was clicked: select and show this call.",
            payload: i64::name(cfg),
        },
        EventSpec {
            name: "pause-changed",
            doc: "Popups were paused or resumed (from the window or the tray).",
            payload: PauseState::name(cfg),
        },
    ]
}

/// The settings the bindings are rendered with: 64-bit integers are plain numbers (row ids
/// and seconds stay far below 2^53; cursors travel as strings).
pub fn ts_config() -> Config {
    Config::new().with_large_int("number")
}

struct Decl {
    name: String,
    text: String,
    dependencies: Vec<String>,
}

fn decl<T: TS + 'static>(cfg: &Config) -> Decl {
    Decl {
        name: T::name(cfg),
        text: T::decl(cfg),
        dependencies: T::dependencies(cfg)
            .into_iter()
            .map(|d| d.ts_name)
            .collect(),
    }
}

fn declarations(cfg: &Config) -> Vec<Decl> {
    vec![
        decl::<Provider>(cfg),
        decl::<callpop_engine::config::Transport>(cfg),
        decl::<CallDirection>(cfg),
        decl::<CallState>(cfg),
        decl::<CallResult>(cfg),
        decl::<LegState>(cfg),
        decl::<LegDirection>(cfg),
        decl::<ExtensionPart>(cfg),
        decl::<CallView>(cfg),
        decl::<CallQuery>(cfg),
        decl::<CallPage>(cfg),
        decl::<TimelineEntry>(cfg),
        decl::<DeliveryView>(cfg),
        decl::<CallDetail>(cfg),
        decl::<ExportResult>(cfg),
        decl::<DateOrder>(cfg),
        decl::<DateStyle>(cfg),
        decl::<ExportRequest>(cfg),
        decl::<ExportFolder>(cfg),
        decl::<LinkOutcome>(cfg),
        decl::<RingotelToken>(cfg),
        decl::<PartStatus>(cfg),
        decl::<Attention>(cfg),
        decl::<ProviderCounters>(cfg),
        decl::<DeskRow>(cfg),
        decl::<HubPanel>(cfg),
        decl::<PairingCode>(cfg),
        decl::<FoundHubRow>(cfg),
        decl::<JoinRequest>(cfg),
        decl::<callpop_engine::health::DeskView>(cfg),
        decl::<callpop_engine::health::HubLinkView>(cfg),
        decl::<Snapshot>(cfg),
        decl::<LineLabel>(cfg),
        decl::<QuietHoursView>(cfg),
        decl::<RingCentralView>(cfg),
        decl::<RingotelView>(cfg),
        decl::<TunnelModeView>(cfg),
        decl::<TunnelView>(cfg),
        decl::<NotificationsView>(cfg),
        decl::<PopupsView>(cfg),
        decl::<GeneralView>(cfg),
        decl::<SettingsView>(cfg),
        decl::<RingCentralUpdate>(cfg),
        decl::<RingotelUpdate>(cfg),
        decl::<TunnelUpdate>(cfg),
        decl::<GeneralUpdate>(cfg),
        decl::<SettingsUpdate>(cfg),
        decl::<FieldError>(cfg),
        decl::<Confirmation>(cfg),
        decl::<SaveResult>(cfg),
        decl::<ActionResult>(cfg),
        decl::<PauseState>(cfg),
        decl::<HealthAction>(cfg),
    ]
}

/// Lays a ts-rs declaration out one field per line, each doc comment on one line above it.
fn tidy(decl: &str) -> String {
    let mut out = String::new();
    let mut doc: Option<Vec<String>> = None;
    let field = |out: &mut String, doc: &mut Option<Vec<String>>, text: &str| {
        if let Some(lines) = doc.take() {
            out.push_str(&format!("  /** {} */\n", lines.join(" ")));
        }
        out.push_str(&format!("  {text}\n"));
    };
    for line in decl.lines() {
        let line = line.trim();
        if line == "/**" {
            doc = Some(Vec::new());
        } else if line == "*/" {
        } else if let (Some(lines), Some(text)) = (doc.as_mut(), line.strip_prefix('*')) {
            lines.push(text.trim().to_string());
        } else if let Some(text) = line.strip_suffix("} | {") {
            field(&mut out, &mut doc, text.trim());
            out.push_str("} | {\n");
        } else if let Some(head) = line.strip_suffix('{') {
            out.push_str(head.trim_end());
            out.push_str(" {\n");
        } else if line.starts_with("type ") && line.ends_with(';') {
            out.push_str(line);
            out.push('\n');
        } else if let Some(text) = line.strip_suffix("};") {
            if !text.trim().is_empty() {
                field(&mut out, &mut doc, text.trim());
            }
            out.push_str("};\n");
        } else {
            field(&mut out, &mut doc, line);
        }
    }
    out
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' || c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A type the window sees uses another type the bindings do not declare: the generated file
/// would not compile.
#[derive(Debug, thiserror::Error)]
#[error("{declaration} uses {missing}, which the bindings do not declare")]
pub struct UndeclaredType {
    /// The declaration that uses it.
    pub declaration: String,
    /// The type it uses.
    pub missing: String,
}

/// Renders `ui/src/bindings.ts`.
pub fn typescript() -> Result<String, UndeclaredType> {
    let cfg = ts_config();
    let decls = declarations(&cfg);
    let declared: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    for d in &decls {
        if let Some(missing) = d
            .dependencies
            .iter()
            .find(|dep| !declared.contains(&dep.as_str()))
        {
            return Err(UndeclaredType {
                declaration: d.name.clone(),
                missing: missing.clone(),
            });
        }
    }
    let mut out = String::from(
        "// Generated from the Rust types by `crates/app/src/bindings.rs`: do not edit. After changing\n\
         // them, run `CALLPOP_BLESS=1 cargo test -p callpop-app --lib bindings` to rewrite this file.\n\
         //\n\
         // The IPC contract between the CallPop window and the engine: every IPC access of the\n\
         // window goes through `commands` and `events` below.\n\
         import { invoke } from \"@tauri-apps/api/core\";\n\
         import { listen } from \"@tauri-apps/api/event\";\n\n",
    );
    for d in &decls {
        out.push_str("export ");
        out.push_str(&tidy(&d.text));
    }
    out.push_str("\nexport const commands = {\n");
    for c in commands(&cfg) {
        let params = c
            .args
            .iter()
            .map(|(n, t)| format!("{}: {t}", camel(n)))
            .collect::<Vec<_>>()
            .join(", ");
        let payload = if c.args.is_empty() {
            String::new()
        } else {
            let fields = c
                .args
                .iter()
                .map(|(n, _)| {
                    if camel(n) == *n {
                        n.to_string()
                    } else {
                        format!("{}: {}", camel(n), camel(n))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!(", {{ {fields} }}")
        };
        out.push_str(&format!(
            "  /** {} */\n  {}: ({params}) => invoke<{}>(\"{}\"{payload}),\n",
            c.doc,
            camel(c.name),
            c.returns,
            c.name
        ));
    }
    out.push_str("};\n\nexport const events = {\n");
    for e in events(&cfg) {
        out.push_str(&format!(
            "  /** {} */\n  {}: (cb: (payload: {p}) => void) => listen<{p}>(\"{}\", (e) => cb(e.payload)),\n",
            e.doc,
            camel(e.name),
            e.name,
            p = e.payload
        ));
    }
    out.push_str("};\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_bindings_are_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/bindings.ts");
        let fresh = typescript().expect("bindings");
        if std::env::var_os("CALLPOP_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("write bindings");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/bindings.ts is out of date: run CALLPOP_BLESS=1 cargo test -p callpop-app --lib bindings"
        );
    }

    #[test]
    fn command_names_become_camel_case_methods() {
        assert_eq!(camel("run_health_action"), "runHealthAction");
        assert_eq!(camel("call-changed"), "callChanged");
        assert_eq!(camel("resume"), "resume");
    }
}
