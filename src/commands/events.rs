//! `callpop events`: the raw deliveries, and replaying them through today's parsers.

use std::io::Write;

use anyhow::{Context, Result};
use chrono::Local;

use callpop_core::numbers::Country;
use callpop_engine::config::Config;
use callpop_store::{EventFilter, Store};

use crate::args::*;
use crate::commands::*;
use crate::render::*;
use callpop_engine::replay::{self, QuarantineReplay};

pub(crate) fn body_json(body: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text)
            .unwrap_or_else(|_| serde_json::Value::String(text.to_string())),
        Err(_) => serde_json::json!({ "hex": hex::encode(body) }),
    }
}

pub(crate) fn events(config: &Config, args: EventsArgs) -> Result<()> {
    let mut store = open_history(config)?;
    let country = config.default_country;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.action {
        Some(EventsAction::Replay {
            quarantined: true, ..
        }) => replay_quarantine(&mut store, &country, &mut out)?,
        Some(EventsAction::Replay { id, all, .. }) => {
            let ids = if all {
                store.raw_event_ids()?
            } else {
                vec![id.context("give a delivery id, --quarantined or --all")?]
            };
            replay_deliveries(&mut store, &country, &ids, &mut out)?;
        }
        None if args.quarantined => list_quarantine(&store, &args, &mut out)?,
        None => list_deliveries(&store, &args, &mut out)?,
    }
    Ok(out.flush()?)
}

/// `callpop events replay --quarantined`: each open quarantine entry read again.
fn replay_quarantine(store: &mut Store, country: &Country, out: &mut dyn Write) -> Result<()> {
    let results = replay::replay_quarantine(store, country)?;
    if results.is_empty() {
        writeln!(out, "No quarantined deliveries.")?;
    }
    for r in results {
        match r {
            QuarantineReplay::Resolved {
                quarantine_id,
                outcome,
            } => writeln!(
                out,
                "quarantine {quarantine_id}: stored ({})",
                match outcome {
                    callpop_store::IngestOutcome::Stored { raw_event_id, .. } =>
                        format!("delivery {raw_event_id}"),
                    callpop_store::IngestOutcome::Duplicate { raw_event_id, .. } =>
                        format!("already stored as delivery {raw_event_id}"),
                }
            )?,
            QuarantineReplay::StillInvalid {
                quarantine_id,
                reason,
            } => writeln!(
                out,
                "quarantine {quarantine_id}: still unusable: {}",
                shown(&reason)
            )?,
        }
    }
    Ok(())
}

/// `callpop events replay ID|--all`: stored deliveries read again with today's parsers.
fn replay_deliveries(
    store: &mut Store,
    country: &Country,
    ids: &[i64],
    out: &mut dyn Write,
) -> Result<()> {
    let (mut changed, mut failed) = (0usize, 0usize);
    for id in ids {
        match replay::replay_raw_event(store, *id, country)? {
            Ok(changes) => {
                changed += changes.iter().filter(|c| c.before != c.after).count();
            }
            Err(e) => {
                failed += 1;
                writeln!(
                    out,
                    "delivery {id}: cannot be read by this version: {}",
                    shown(&e.to_string())
                )?;
            }
        }
    }
    writeln!(
        out,
        "Replayed {} deliver{}: {changed} call{} changed, {failed} unreadable.",
        ids.len(),
        if ids.len() == 1 { "y" } else { "ies" },
        if changed == 1 { "" } else { "s" },
    )?;
    Ok(())
}

/// `callpop events --quarantined`: what could not be used, as a table or JSON lines.
fn list_quarantine(store: &Store, args: &EventsArgs, out: &mut dyn Write) -> Result<()> {
    let records = store.quarantined(false, args.limit)?;
    for q in &records {
        if args.json {
            let line = serde_json::json!({
                "id": q.id,
                "provider": q.provider.as_str(),
                "received_at": rfc3339(Some(q.received_at)),
                "last_received_at": rfc3339(Some(q.last_received_at)),
                "occurrences": q.occurrences,
                "reason": q.reason,
                "resolved_at": rfc3339(q.resolved_at),
                "headers": q.headers,
                "body": body_json(&q.body),
            });
            writeln!(out, "{}", json_line(&line))?;
        } else {
            writeln!(
                out,
                "{:>6}  {}  {:<11}  x{:<3} {}{}",
                q.id,
                q.last_received_at
                    .with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S"),
                q.provider.as_str(),
                q.occurrences,
                shown(&q.reason),
                if q.resolved_at.is_some() {
                    "  (resolved)"
                } else {
                    ""
                }
            )?;
        }
    }
    if records.is_empty() && !args.json {
        writeln!(out, "Nothing in quarantine.")?;
    }
    Ok(())
}

/// `callpop events [--call ID]`: the raw deliveries, as a table or JSON lines.
fn list_deliveries(store: &Store, args: &EventsArgs, out: &mut dyn Write) -> Result<()> {
    let records = store.events(&EventFilter {
        call_id: args.call,
        limit: args.limit,
    })?;
    for e in &records {
        if args.json {
            let line = serde_json::json!({
                "id": e.id,
                "provider": e.provider.as_str(),
                "dedup_key": e.dedup_key,
                "kind": e.kind,
                "received_at": rfc3339(Some(e.received_at)),
                "event_time": rfc3339(e.event_time),
                "redeliveries": e.redeliveries,
                "call_ids": e.call_ids,
                "headers": e.headers,
                "body": body_json(&e.body),
            });
            writeln!(out, "{}", json_line(&line))?;
        } else {
            writeln!(
                out,
                "{:>6}  {}  {:<11}  {:<20}  calls {:?}{}",
                e.id,
                e.received_at
                    .with_timezone(&Local)
                    .format("%Y-%m-%d %H:%M:%S"),
                e.provider.as_str(),
                shown(&e.kind),
                e.call_ids,
                if e.redeliveries > 0 {
                    format!("  (+{} re-deliveries)", e.redeliveries)
                } else {
                    String::new()
                }
            )?;
        }
    }
    if records.is_empty() && !args.json {
        writeln!(out, "No deliveries stored.")?;
    }
    Ok(())
}
