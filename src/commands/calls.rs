//! `callpop calls`: the history as a table, JSON lines or CSV.

use std::io::Write;

use anyhow::Result;
use chrono::{Local, Utc};

use callpop_core::model::{CallDirection, CallResult, CallState};
use callpop_engine::config::Config;
use callpop_store::CallFilter;

use crate::args::*;
use crate::commands::*;
use crate::render::*;
use crate::time_arg::parse_time;

pub(crate) fn calls(config: &Config, args: CallsArgs) -> Result<()> {
    let store = open_history(config)?;
    let now = Utc::now();
    let filter = CallFilter {
        search: args.search,
        since: args
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        result: args.result.map(|r| match r {
            ResultArg::Answered => CallResult::Answered,
            ResultArg::Missed => CallResult::Missed,
            ResultArg::Voicemail => CallResult::Voicemail,
            ResultArg::NoAnswer => CallResult::NoAnswer,
            ResultArg::NoEndReported => CallResult::NoEndReported,
        }),
        state: args.state.map(|s| match s {
            StateArg::Ringing => CallState::Ringing,
            StateArg::Connected => CallState::Connected,
            StateArg::Ended => CallState::Ended,
        }),
        direction: args.direction.map(|d| match d {
            DirectionArg::Inbound => CallDirection::Inbound,
            DirectionArg::Outbound => CallDirection::Outbound,
            DirectionArg::Internal => CallDirection::Internal,
        }),
        extension: args.extension,
        any_extension: if args.mine {
            config.watch_extensions.clone()
        } else {
            Vec::new()
        },
        limit: args.limit,
        ..Default::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        // A terminal gets names it cannot be driven by; a file or a pipe the exact text.
        let text = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            callpop_store::export::CsvText::Shown
        } else {
            callpop_store::export::CsvText::Exact
        };
        callpop_store::export::write_csv(&store, &filter, &config.line_labels, text, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    let records = store.calls(&filter)?;
    if args.json {
        for r in &records {
            writeln!(out, "{}", json_line(&call_json(r)))?;
        }
        out.flush()?;
        return Ok(());
    }
    if records.is_empty() {
        writeln!(out, "No calls match.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<16}  {:<8}  {:<26}  {:<22}  {:<10}  {:<9}  {:>5}  {:>6}",
        "ID", "STARTED", "DIR", "FROM", "TO", "EXT", "RESULT", "RING", "TALK"
    )?;
    for r in &records {
        let c = &r.call;
        let result = c
            .result
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| c.state.as_str().to_string());
        writeln!(
            out,
            "{:>6}  {:<16}  {:<8}  {}  {}  {}  {:<9}  {:>4}s  {:>5}s",
            r.id,
            c.started_at.with_timezone(&Local).format("%Y-%m-%d %H:%M"),
            c.direction.as_str(),
            truncate(
                &shown(&party_label(&c.from.raw, &c.from.e164, &c.from.name)),
                26
            ),
            truncate(&shown(&party_label(&c.to.raw, &c.to.e164, &c.to.name)), 22),
            truncate(&shown(&extensions_label(c)), 10),
            result,
            c.ring_seconds,
            c.talk_seconds,
        )?;
    }
    out.flush()?;
    Ok(())
}
