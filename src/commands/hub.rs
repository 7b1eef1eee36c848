//! `callpop hub pair|desks|revoke`: a hub's desks, from its data dir (the running hub notices
//! within a second) and, for who is connected, from the running hub's `/healthz`.

use std::io::Write;

use anyhow::{bail, Result};
use chrono::Utc;

use callpop_engine::config::Config;

use crate::render::*;

/// `callpop hub pair [--name NAME] [--json]`.
pub(crate) fn pair(config: &Config, name: Option<String>, json: bool) -> Result<()> {
    let issued = callpop_engine::hub::codes::issue(config, name.as_deref())?;
    let addresses: Vec<String> = issued.addresses.iter().map(|a| a.to_string()).collect();
    let address = addresses
        .first()
        .cloned()
        .unwrap_or_else(|| config.hub.listen.to_string());
    let fingerprint = issued.fingerprint;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            json_line(&serde_json::json!({
                "code": issued.code,
                "address": address,
                "addresses": addresses,
                "fingerprint": fingerprint.to_string(),
                "fingerprint_short": fingerprint.short(),
                "expires_at": rfc3339(Some(issued.expires_at)),
                "hub_name": config.hub.name,
                "desk_name": issued.desk_name,
            }))
        )?;
    } else {
        let local = issued.expires_at.with_timezone(&chrono::Local);
        writeln!(out, "Pairing code: {}", issued.code)?;
        writeln!(out, "Hub address:  {}", shown(&addresses.join(", ")))?;
        writeln!(out, "Hub identity: {}", fingerprint.short())?;
        writeln!(
            out,
            "Valid until {} (ten minutes), for one desk.",
            local.format("%H:%M")
        )?;
        writeln!(
            out,
            "On the desk: callpop desk join {address} {}{}",
            issued.code,
            issued
                .desk_name
                .as_ref()
                .map(|n| format!(" --name {:?}", shown(n)))
                .unwrap_or_default()
        )?;
    }
    let running = callpop_engine::instance::running(&config.data_dir).and_then(|h| h.hub_listen);
    if !config.hub.enabled && running.is_none() {
        eprintln!(
            "Note: this CallPop is not set up as a hub; start it with `callpop serve --hub` \
             (or [hub] enabled = true) for the desk to reach it."
        );
    }
    Ok(())
}

/// What the running hub reports of its desks (empty when it is not running).
fn live_desks(config: &Config) -> Vec<serde_json::Value> {
    let Some(listen) = callpop_engine::instance::running(&config.data_dir).and_then(|h| h.listen)
    else {
        return Vec::new();
    };
    let fetched = crate::commands::runtime().ok().and_then(|rt| {
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("http://{listen}/healthz"))
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await
                .ok()?
                .json::<serde_json::Value>()
                .await
                .ok()
        })
    });
    fetched
        .and_then(|body| body["desks"].as_array().cloned())
        .unwrap_or_default()
}

/// `callpop hub desks [--json]`.
pub(crate) fn desks(config: &Config, json: bool) -> Result<()> {
    let store = crate::commands::open_history(config)?;
    let live = live_desks(config);
    let mut out = std::io::stdout().lock();
    let records = store.hub_desks()?;
    if records.is_empty() && !json {
        writeln!(
            out,
            "No desks are paired with this hub (add one with `callpop hub pair`)."
        )?;
    }
    for d in records {
        let now = live
            .iter()
            .find(|l| l["name"].as_str() == Some(d.name.as_str()));
        let connected = now.and_then(|l| l["connected"].as_bool()).unwrap_or(false);
        let lag = now.and_then(|l| l["lag"].as_i64());
        let address = now
            .and_then(|l| l["address"].as_str().map(str::to_string))
            .or(d.address.clone());
        let version = now
            .and_then(|l| l["version"].as_str().map(str::to_string))
            .or(d.version.clone());
        let last_seen = now
            .and_then(|l| l["last_seen"].as_str().map(str::to_string))
            .or_else(|| d.last_seen.map(|t| t.to_rfc3339()));
        let state = if d.revoked_at.is_some() {
            "removed"
        } else if connected {
            "connected"
        } else {
            "not connected"
        };
        if json {
            writeln!(
                out,
                "{}",
                json_line(&serde_json::json!({
                    "name": d.name,
                    "address": address,
                    "version": version,
                    "connected": connected,
                    "state": state,
                    "last_seen": last_seen,
                    "lag": lag,
                    "cursor": d.cursor,
                    "paired_at": rfc3339(Some(d.paired_at)),
                    "removed_at": rfc3339(d.revoked_at),
                }))
            )?;
        } else {
            writeln!(
                out,
                "{:<24}  {:<13}  {:<21}  {:<8}  last seen {}",
                truncate(&shown(&d.name), 24),
                state,
                shown(address.as_deref().unwrap_or("-")),
                shown(version.as_deref().unwrap_or("-")),
                shown(last_seen.as_deref().unwrap_or("never")),
            )?;
        }
    }
    Ok(())
}

/// `callpop hub revoke NAME`.
pub(crate) fn revoke(config: &Config, name: &str) -> Result<()> {
    let mut store = crate::commands::open_history(config)?;
    if !store.hub_revoke(name, Utc::now())? {
        bail!(
            "no desk named {:?} is paired with this hub (see `callpop hub desks`)",
            shown(name)
        );
    }
    println!(
        "Removed {} from the hub: its connection closes and its token no longer works.",
        shown(name)
    );
    Ok(())
}
