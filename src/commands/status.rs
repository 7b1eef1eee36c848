//! `callpop status` and `callpop tunnel status`: what a running `serve` reports.

use std::io::Write;

use anyhow::{Context, Result};

use callpop_engine::config::Config;

use crate::commands::*;
use crate::render::*;

/// Reads /healthz from the running engine: at `--listen` when given, else where the engine
/// running on the data dir says it listens (it may have been started with another
/// `--listen`), else at the configured address.
pub(crate) fn status(
    config: &Config,
    json: bool,
    only: Option<&str>,
    listen_given: bool,
) -> Result<()> {
    let recorded = (!listen_given)
        .then(|| callpop_engine::instance::running(&config.data_dir))
        .flatten()
        .and_then(|holder| holder.listen);
    let listen = recorded.unwrap_or(config.listen);
    let url = format!("http://{listen}/healthz");
    let body: serde_json::Value = runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .with_context(|| {
                format!("CallPop is not running at {listen} (start it with `callpop serve`)")
            })?;
        response
            .json::<serde_json::Value>()
            .await
            .context("the running CallPop sent an unreadable status")
    })?;
    // Written with errors returned, not println!: `callpop status | head -1` closes the pipe
    // early, and println! panics on that.
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", json_line(&body))?;
        return Ok(());
    }
    let parts = body["parts"].as_object().cloned().unwrap_or_default();
    if let Some(name) = only {
        let part = &parts.get(name).cloned().unwrap_or_default();
        writeln!(
            out,
            "{name}: {} — {}",
            shown(part["state"].as_str().unwrap_or("unknown")),
            shown(part["detail"].as_str().unwrap_or(""))
        )?;
        if name == "tunnel" {
            writeln!(
                out,
                "public URL: {}",
                shown(body["public_url"].as_str().unwrap_or("(none)"))
            )?;
        }
        return Ok(());
    }
    let state = body["status"].as_str().unwrap_or("?");
    let said = match state {
        "ok" => "receiving calls",
        "degraded" => "receiving calls; something needs attention",
        "not_receiving" => "NOT RECEIVING CALLS",
        "error" => "CALLS CANNOT BE SAVED",
        other => other,
    };
    writeln!(
        out,
        "CallPop {} — {}",
        shown(body["version"].as_str().unwrap_or("?")),
        shown(said)
    )?;
    if let Some(why) = body["attention"]["text"].as_str() {
        writeln!(out, "  {}", shown(why))?;
    }
    writeln!(
        out,
        "  listening on {}",
        shown(body["listen"].as_str().unwrap_or("?"))
    )?;
    writeln!(
        out,
        "  public URL:  {}",
        shown(body["public_url"].as_str().unwrap_or("(none)"))
    )?;
    if let Some(transport) = body["ringcentral_transport"].as_str() {
        let how = match transport {
            "websocket" => "WebSocket (CallPop connects to RingCentral; no public URL needed)",
            "webhook" => "webhook subscription to the public URL",
            other => other,
        };
        writeln!(out, "  RingCentral sends calls by: {}", shown(how))?;
    }
    for provider in ["ringcentral", "ringotel"] {
        let c = &body[provider];
        writeln!(
            out,
            "  {provider}: {} accepted, {} duplicates, {} unauthorized ({} with a wrong token), \
             {} rejected, {} quarantined",
            c["accepted"],
            c["duplicates"],
            c["unauthorized"],
            c["wrong_token"],
            c["rejected"],
            c["quarantined"]
        )?;
    }
    if let Some(e) = body["storage_error"].as_str() {
        writeln!(out, "  STORAGE: {}", shown(e))?;
    }
    for (name, part) in parts {
        writeln!(
            out,
            "  {}: {} — {}",
            shown(&name),
            shown(part["state"].as_str().unwrap_or("?")),
            shown(part["detail"].as_str().unwrap_or(""))
        )?;
    }
    Ok(())
}
