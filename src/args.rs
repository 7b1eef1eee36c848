//! The command line's shape: commands, their arguments and help texts (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "callpop",
    version,
    about = "Caller pop-ups and call history for dealership desks"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct GlobalArgs {
    /// Where the call history and secrets live (default: the platform data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// A TOML config file (default: ~/.config/callpop/config.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the webhook receiver and keep the call history (headless).
    Serve {
        /// Address to listen on (default 127.0.0.1:8787).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Also serve the dealership's desks on the LAN (hub mode; docs/HUB.md).
        #[arg(long)]
        hub: bool,
        /// Where the hub serves desks (default 0.0.0.0:8788); implies --hub.
        #[arg(long, value_name = "ADDR")]
        hub_listen: Option<String>,
    },
    /// Hub mode: pair desks with this hub, list them, remove one.
    Hub {
        #[command(subcommand)]
        action: HubAction,
    },
    /// Make this CallPop a desk of a hub, or a standalone desk again.
    Desk {
        #[command(subcommand)]
        action: DeskAction,
    },
    /// Contacts: names for the numbers that call (import a CRM or spreadsheet file, list).
    Contacts {
        #[command(subcommand)]
        action: ContactsAction,
    },
    /// List and search the call history, newest first.
    Calls(CallsArgs),
    /// Show stored deliveries and quarantined bodies, or replay them.
    Events(EventsArgs),
    /// Manage the RingCentral webhook subscription (needs RingCentral credentials).
    Subscriptions {
        #[command(subcommand)]
        action: SubscriptionAction,
    },
    /// Import calls from the RingCentral call log (fills gaps; safe to repeat).
    Backfill {
        /// Start of the period: RFC 3339, YYYY-MM-DD, today, yesterday, or 2h/7d ago.
        #[arg(long, value_name = "T")]
        since: String,
        /// End of the period (default: now).
        #[arg(long, value_name = "T")]
        until: Option<String>,
    },
    /// Show what a running `callpop serve` reports about itself (receiver, tunnel,
    /// subscription, popups, backfill).
    Status {
        /// The raw JSON from /healthz.
        #[arg(long)]
        json: bool,
        /// Where that `callpop serve` listens, when not where the configuration says (the
        /// same --listen it was started with).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// The public tunnel of a running `callpop serve`.
    Tunnel {
        #[command(subcommand)]
        action: TunnelAction,
        /// Where that `callpop serve` listens (as for `status`).
        #[arg(long, value_name = "ADDR", global = true)]
        listen: Option<String>,
    },
    /// Show the webhook tokens senders must use (masked unless --reveal).
    Tokens {
        /// Print the full tokens.
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum SubscriptionAction {
    /// List CallPop's subscriptions (this app, this user).
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Make sure exactly one Active subscription delivers to the public URL.
    Ensure,
    /// Delete a subscription.
    Delete {
        /// Subscription id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TunnelAction {
    /// The tunnel's state, reason and public URL.
    Status,
}

#[derive(Args)]
pub(crate) struct CallsArgs {
    /// A number fragment in any format, a name or an extension.
    #[arg(long, short = 's', value_name = "TEXT")]
    pub(crate) search: Option<String>,
    /// Calls started at or after: RFC 3339, YYYY-MM-DD, "YYYY-MM-DD HH:MM" (local), today,
    /// yesterday, or 30m/2h/7d/1h30m ago.
    #[arg(long, value_name = "T")]
    pub(crate) since: Option<String>,
    /// Calls started before (same forms as --since).
    #[arg(long, value_name = "T")]
    pub(crate) until: Option<String>,
    /// Only this outcome (`no_end_reported`: the phone system never said how the call ended).
    #[arg(long, value_enum, value_name = "R")]
    pub(crate) result: Option<ResultArg>,
    /// Only calls in this state: `ringing` now, `connected` (on a call) or `ended`.
    #[arg(long, value_enum, value_name = "S")]
    pub(crate) state: Option<StateArg>,
    /// Only this direction.
    #[arg(long, value_enum, value_name = "D")]
    pub(crate) direction: Option<DirectionArg>,
    /// Only calls this extension (number or id) took part in.
    #[arg(long, value_name = "EXT")]
    pub(crate) extension: Option<String>,
    /// Only calls of the watched extensions (`watch_extensions`).
    #[arg(long)]
    pub(crate) mine: bool,
    /// How many calls to show (0 = all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub(crate) limit: usize,
    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// CSV with a header row.
    #[arg(long)]
    pub(crate) csv: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ResultArg {
    Answered,
    Missed,
    Voicemail,
    /// Spelled as the tables and JSON print it; `no-answer` is accepted too.
    #[value(name = "no_answer", alias = "no-answer")]
    NoAnswer,
    /// Spelled as printed; `no-end-reported` is accepted too.
    #[value(name = "no_end_reported", alias = "no-end-reported")]
    NoEndReported,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StateArg {
    Ringing,
    Connected,
    Ended,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum DirectionArg {
    Inbound,
    Outbound,
    Internal,
}

#[derive(Args)]
pub(crate) struct EventsArgs {
    #[command(subcommand)]
    pub(crate) action: Option<EventsAction>,
    /// Only deliveries that contributed to this call id.
    #[arg(long, value_name = "ID")]
    pub(crate) call: Option<i64>,
    /// Show quarantined (unusable) bodies instead.
    #[arg(long)]
    pub(crate) quarantined: bool,
    /// How many to show (0 = all).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub(crate) limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum EventsAction {
    /// Run stored deliveries through today's parsers again (idempotent).
    Replay {
        /// The delivery id to replay.
        #[arg(required_unless_present_any = ["quarantined", "all"], conflicts_with_all = ["quarantined", "all"])]
        id: Option<i64>,
        /// Replay every open quarantine entry.
        #[arg(long, conflicts_with = "all")]
        quarantined: bool,
        /// Replay every stored delivery.
        #[arg(long)]
        all: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn results_are_spelled_as_they_are_printed() {
        for spelling in ["no_answer", "no-answer", "answered", "missed", "voicemail"] {
            assert!(
                Cli::try_parse_from(["callpop", "calls", "--result", spelling]).is_ok(),
                "{spelling}"
            );
        }
        assert!(Cli::try_parse_from(["callpop", "calls", "--result", "nope"]).is_err());
    }

    #[test]
    fn status_and_tunnel_status_take_the_address_serve_listens_on() {
        for args in [
            &["callpop", "status", "--listen", "127.0.0.1:9000"][..],
            &["callpop", "tunnel", "status", "--listen", "127.0.0.1:9000"][..],
            &["callpop", "tunnel", "--listen", "127.0.0.1:9000", "status"][..],
        ] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum HubAction {
    /// Issue a one-time pairing code for a new desk (valid ten minutes, single use).
    Pair {
        /// The name the desk gets (default: the name it asks for).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// One JSON object: code, address, fingerprint, expires_at.
        #[arg(long)]
        json: bool,
    },
    /// List the desks paired with this hub.
    Desks {
        /// One JSON object per desk.
        #[arg(long)]
        json: bool,
    },
    /// Remove a desk from the hub: its stream closes at once and its token stops working.
    Revoke {
        /// The desk's name (as `callpop hub desks` lists it).
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum DeskAction {
    /// Join a hub with the code `callpop hub pair` (or "Add a desk") showed there.
    Join {
        /// The hub's address: host or host:port (port 8788 when left out).
        address: String,
        /// The pairing code, such as K7M2Q-9XH4P.
        code: String,
        /// This desk's name at the hub (default: the computer's name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Leave the hub: this desk is standalone again and keeps the calls it has.
    Leave,
    /// List the hubs that announce themselves on the LAN (mDNS).
    Discover {
        /// How long to listen, in seconds.
        #[arg(long, default_value_t = 3, value_name = "N")]
        seconds: u64,
        /// One JSON object per hub.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum ContactsAction {
    /// Import contacts from a CSV (any column order, `,` or `;`) or vCard file: all rows or none.
    Import {
        /// The file.
        file: PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object: new, updated, unchanged, rejected (each with its line and reason).
        #[arg(long)]
        json: bool,
    },
    /// List the contacts, by name.
    List {
        /// One JSON object per contact.
        #[arg(long)]
        json: bool,
    },
    /// Find contacts by name, company, owner or notes (any case, accents or not), or by a
    /// number's digits.
    Search {
        /// What to look for.
        text: String,
        /// One JSON object per contact.
        #[arg(long)]
        json: bool,
    },
    /// Write every contact as CSV (stdout, or --out FILE) that a spreadsheet opens and
    /// `contacts import` reads back.
    Export {
        /// The file to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
