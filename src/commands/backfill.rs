//! `callpop backfill`: calls from the RingCentral call log for a time range.

use anyhow::{bail, Result};

use callpop_engine::config::Config;
use callpop_store::{Store, StoreOptions};

use crate::commands::*;
use crate::time_arg::parse_time;

pub(crate) fn backfill(mut config: Config, since: String, until: Option<String>) -> Result<()> {
    let platform = platform(&mut config)?;
    let now = config.clock.now();
    let from = parse_time(&since, now)?;
    let to = until
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?
        .unwrap_or(now);
    if from >= to {
        bail!("--since must be before --until");
    }
    let store = Store::open(&config.db_path(), StoreOptions::new(config.default_country))?;
    let (changes, _) = tokio::sync::broadcast::channel(16);
    let (writer, thread) = callpop_store::writer::StoreWriter::spawn(store, changes)?;
    let report = runtime()?.block_on(callpop_engine::backfill::run_once(
        &platform,
        &writer,
        &config.default_country,
        &config.clock,
        from,
        to,
    ));
    drop(writer);
    let _ = thread.join();
    let report = report?;
    println!(
        "Read {} call-log record{} in {} page{}: {} new, {} call{} added ({} missed), {} unreadable.",
        report.records,
        if report.records == 1 { "" } else { "s" },
        report.pages,
        if report.pages == 1 { "" } else { "s" },
        report.stored,
        report.new_calls,
        if report.new_calls == 1 { "" } else { "s" },
        report.new_missed,
        report.unreadable
    );
    Ok(())
}
