//! `callpop` command line: run the engine headless (`serve`) and read the history. This file
//! starts the process and dispatches; `args.rs` is the command line's shape, `commands/` one
//! file per command, `render.rs` what they print.
// A binary: the terminal is where it talks to the person running it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod commands;
mod render;
mod time_arg;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Command, ContactsAction, DeskAction, HubAction, TunnelAction};
use callpop_engine::config::{Config, Overrides};

/// mimalloc (also serving SQLite through its `override` feature) halves the time the store
/// writer spends in allocation: see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_huge_pages();
    callpop_files::keep_new_files_private();
    let cli = Cli::parse();
    callpop_ringcentral::install_crypto_provider();
    let code = match run(cli) {
        Ok(()) => 0,
        // The reader went away (`callpop calls | head`): nothing more to say, as other Unix
        // tools behave.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("callpop: {}", error_text(&e));
            1
        }
    };
    std::process::exit(code);
}

/// An error and its causes as one message, each cause once: many errors already quote their
/// cause ("cannot read config file x: No such file or directory"), and printing the chain
/// again said the system's reason twice. Line breaks inside a message are kept (TOML's
/// error points at the mistake with a caret on the line below), every line made safe for
/// the terminal: errors can quote what a remote server or a sender wrote.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.contains(said.trim()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text.lines()
        .map(|line| {
            // Kept: the caret lines up under the mistake.
            let indent = line.len() - line.trim_start().len();
            format!("{}{}", " ".repeat(indent), render::shown(line))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the error is stdout's reader having closed the pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// mimalloc marks its arenas for transparent huge pages, and a 2 MiB page is resident as soon
/// as one byte of it is touched: an idle `callpop serve` was at 25 MiB instead of 15 MiB. This
/// is what mimalloc's own `allow_thp = 0` does, which it reads before `main` runs.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    // SAFETY: integer arguments only; it changes how this process's memory is paged.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}

fn run(cli: Cli) -> Result<()> {
    use commands::*;
    let overrides = |listen: Option<String>| Overrides {
        listen,
        data_dir: cli.global.data_dir.clone(),
        config_file: cli.global.config.clone(),
        environment: None,
        ..Default::default()
    };
    match cli.command {
        Command::Serve {
            listen,
            hub,
            hub_listen,
        } => serve::serve(Config::load(&Overrides {
            hub,
            hub_listen,
            ..overrides(listen)
        })?),
        Command::Hub { action } => {
            let config = Config::load(&overrides(None))?;
            match action {
                HubAction::Pair { name, json } => hub::pair(&config, name, json),
                HubAction::Desks { json } => hub::desks(&config, json),
                HubAction::Revoke { name } => hub::revoke(&config, &name),
            }
        }
        Command::Contacts { action } => {
            let config = Config::load(&overrides(None))?;
            match action {
                ContactsAction::Import {
                    file,
                    dry_run,
                    json,
                } => contacts::import(&config, &file, dry_run, json),
                ContactsAction::List { json } => contacts::list(&config, json, None),
                ContactsAction::Search { text, json } => contacts::list(&config, json, Some(&text)),
                ContactsAction::Export { out } => contacts::export(&config, out.as_deref()),
            }
        }
        Command::Desk { action } => {
            let config = Config::load(&overrides(None))?;
            match action {
                DeskAction::Join {
                    address,
                    code,
                    name,
                } => desk::join(&config, &address, &code, name),
                DeskAction::Leave => desk::leave(&config),
                DeskAction::Discover { seconds, json } => desk::discover(seconds, json),
            }
        }
        Command::Calls(args) => calls::calls(&Config::load(&overrides(None))?, args),
        Command::Events(args) => events::events(&Config::load(&overrides(None))?, args),
        Command::Tokens { reveal } => tokens::tokens(&Config::load(&overrides(None))?, reveal),
        Command::Subscriptions { action } => {
            subscriptions::subscriptions(Config::load(&overrides(None))?, action)
        }
        Command::Status { json, listen } => {
            let given = listen.is_some();
            status::status(&Config::load(&overrides(listen))?, json, None, given)
        }
        Command::Tunnel {
            action: TunnelAction::Status,
            listen,
        } => {
            let given = listen.is_some();
            status::status(
                &Config::load(&overrides(listen))?,
                false,
                Some("tunnel"),
                given,
            )
        }
        Command::Backfill { since, until } => {
            backfill::backfill(Config::load(&overrides(None))?, since, until)
        }
    }
}

pub(crate) fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(
            callpop_engine::log_allowed,
        ))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // A log line that cannot be written is dropped. By default tracing reports it
                // with `eprintln!`, which panics when stderr is a file on a full disk: the
                // request in hand lost its reply and the store writer thread died, so storage
                // never came back.
                .log_internal_errors(false),
        )
        .init();
}
