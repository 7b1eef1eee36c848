//! CallPop's desktop shell: a tray icon, the call-log window and nothing else. Every decision
//! lives in the desktop backend crate (`callpop_app::app`); this file wires it to Tauri.
// A binary: the terminal is where it talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod logging;
mod rendering;
mod shell;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use callpop_engine::config::Overrides;

/// Command-line options (the same names as `callpop serve` where they overlap).
#[derive(Debug, Default)]
struct Options {
    /// Start in the tray without showing the window (autostart at login passes this).
    hidden: bool,
    overrides: Overrides,
}

const USAGE: &str =
    "usage: callpop-desktop [--hidden] [--data-dir DIR] [--config FILE] [--listen ADDR]";

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => bail!("{name} needs {what}\n{USAGE}"),
            }
        };
        match name.as_str() {
            "--hidden" => options.hidden = true,
            "--data-dir" => options.overrides.data_dir = Some(PathBuf::from(value("a directory")?)),
            "--config" => options.overrides.config_file = Some(PathBuf::from(value("a file")?)),
            "--listen" => options.overrides.listen = Some(value("an address")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "-V" | "--version" => {
                println!("callpop-desktop {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn main() -> Result<()> {
    rendering::choose_renderer();
    callpop_files::keep_new_files_private();
    let options = parse_options(std::env::args().skip(1))?;
    shell::run(options.hidden, options.overrides).context("CallPop could not start")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        parse_options(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_take_values_in_both_spellings() {
        let o = parse(&[
            "--hidden",
            "--data-dir",
            "/tmp/x",
            "--listen=127.0.0.1:9000",
        ])
        .expect("valid options");
        assert!(o.hidden);
        assert_eq!(o.overrides.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.overrides.listen.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(o.overrides.config_file, None);
    }

    #[test]
    fn a_missing_value_or_unknown_option_is_a_clear_error() {
        let e = parse(&["--config"]).expect_err("no value").to_string();
        assert!(e.starts_with("--config needs a file"), "{e}");
        let e = parse(&["--data-dir="])
            .expect_err("empty value")
            .to_string();
        assert!(e.starts_with("--data-dir needs a directory"), "{e}");
        let e = parse(&["--verbose"]).expect_err("unknown").to_string();
        assert!(e.starts_with("unknown option \"--verbose\""), "{e}");
    }

    #[test]
    fn the_window_may_call_exactly_the_generated_commands() {
        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../capabilities/main-window.json"))
                .expect("capability JSON");
        let mut allowed: Vec<String> = capability["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|p| p.as_str())
            .filter_map(|p| p.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        allowed.sort();
        let mut commands: Vec<String> = callpop_app::bindings::COMMAND_NAMES
            .iter()
            .map(|c| c.to_string())
            .collect();
        commands.sort();
        assert_eq!(allowed, commands);
        let rest: Vec<&str> = capability["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .filter_map(|p| p.as_str())
            .filter(|p| !p.starts_with("allow-"))
            .collect();
        assert_eq!(
            rest,
            ["core:event:allow-listen", "core:event:allow-unlisten"]
        );
    }
}
