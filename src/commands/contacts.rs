//! `callpop contacts import|list`: names for the numbers that call.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use callpop_engine::config::Config;
use callpop_store::{Store, StoreOptions};

use crate::render::*;

/// `callpop contacts import FILE [--dry-run] [--json]`.
pub(crate) fn import(config: &Config, file: &Path, dry_run: bool, json: bool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let read = callpop_core::contacts::read(&bytes, &config.default_country)
        .with_context(|| format!("{} was not imported", file.display()))?;
    let mut store = Store::open(&config.db_path(), StoreOptions::new(config.default_country))?;
    let summary = store.import_contacts(&read, dry_run)?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut value = serde_json::to_value(&summary)?;
        value["dry_run"] = serde_json::Value::Bool(dry_run);
        writeln!(out, "{}", json_line(&value))?;
        return Ok(());
    }
    writeln!(
        out,
        "{} {} new, {} updated, {} unchanged, {} rejected.",
        if dry_run {
            "Would import:"
        } else {
            "Imported:"
        },
        summary.new,
        summary.updated,
        summary.unchanged,
        summary.rejected.len()
    )?;
    for r in &summary.rejected {
        writeln!(out, "  line {}: {}", r.line, shown(&r.reason))?;
    }
    Ok(())
}

/// `callpop contacts list [--json]` and `callpop contacts search TEXT [--json]`.
pub(crate) fn list(config: &Config, json: bool, search: Option<&str>) -> Result<()> {
    let store = crate::commands::open_history(config)?;
    let found = match search {
        Some(text) => store.search_contacts(text)?,
        None => store.contacts()?,
    };
    let mut out = std::io::stdout().lock();
    for c in found {
        if json {
            writeln!(out, "{}", json_line(&serde_json::to_value(&c)?))?;
            continue;
        }
        let numbers: Vec<String> = c
            .contact
            .phones
            .iter()
            .map(|p| callpop_core::numbers::format_national(&p.e164, &config.default_country))
            .collect();
        writeln!(
            out,
            "{:<28}  {:<24}  {}",
            truncate(&shown(c.contact.name.as_deref().unwrap_or("-")), 28),
            truncate(&shown(c.contact.company.as_deref().unwrap_or("")), 24),
            shown(&numbers.join(", "))
        )?;
    }
    Ok(())
}

/// `callpop contacts export [--out FILE]`.
pub(crate) fn export(config: &Config, file: Option<&Path>) -> Result<()> {
    let store = crate::commands::open_history(config)?;
    match file {
        Some(path) => {
            let mut bytes = Vec::new();
            let n = store.export_contacts(&mut bytes)?;
            callpop_files::write_atomically(path, &bytes, callpop_files::Access::Private)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {n} contacts to {}.", path.display());
        }
        None => {
            store.export_contacts(&mut std::io::stdout().lock())?;
        }
    }
    Ok(())
}
