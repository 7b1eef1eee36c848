//! `callpop desk join|leave`: this data dir becomes a hub's desk, or standalone again.

use anyhow::{bail, Context, Result};

use callpop_engine::config::Config;
use callpop_engine::desk::{join, DeskState};
use callpop_engine::instance::InstanceLock;

use crate::render::shown;

/// `callpop desk join ADDRESS CODE [--name NAME]`.
pub(crate) fn join(config: &Config, address: &str, code: &str, name: Option<String>) -> Result<()> {
    // Nothing may run on this data dir while it changes role.
    let _lock = InstanceLock::acquire(&config.data_dir, "callpop desk join")?;
    if let Some(state) = DeskState::load(&config.data_dir)? {
        bail!(
            "this CallPop is already a desk of the hub {:?} at {}: run `callpop desk leave` first",
            shown(&state.hub_name),
            shown(&state.hub_address)
        );
    }
    let name = name.unwrap_or_else(|| config.hub.name.clone());
    let runtime = crate::commands::runtime()?;
    let joined = runtime
        .block_on(join::pair(address, code, &name))
        .with_context(|| format!("cannot join the hub at {}", shown(address)))?;
    join::save(config, &joined)?;
    println!(
        "Joined the hub {:?} as {:?} (hub identity {}).",
        shown(&joined.state.hub_name),
        shown(&joined.state.desk_name),
        joined
            .state
            .fingerprint()
            .map(|f| f.short())
            .unwrap_or_default()
    );
    // A desk receives calls from its hub only: its own webhook subscription goes (its tunnel
    // is simply not started any more). Without RingCentral credentials there is none.
    let mut config = config.clone();
    if let Ok(mut keeper) = crate::commands::subscriptions::keeper(&mut config) {
        match runtime.block_on(keeper.remove_ours()) {
            Ok(ids) if !ids.is_empty() => {
                println!(
                    "Removed this desk's own RingCentral subscription ({}).",
                    ids.len()
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!(
                "Note: could not remove this desk's own RingCentral subscription ({e}); it \
                 expires by itself."
            ),
        }
    }
    println!("Start CallPop (`callpop serve`) to receive the hub's calls here.");
    Ok(())
}

/// `callpop desk leave`.
pub(crate) fn leave(config: &Config) -> Result<()> {
    let _lock = InstanceLock::acquire(&config.data_dir, "callpop desk leave")?;
    let Some(state) = DeskState::load(&config.data_dir)? else {
        bail!("this CallPop is not a desk of a hub");
    };
    let runtime = crate::commands::runtime()?;
    match runtime.block_on(join::leave(config))? {
        None => println!(
            "Left the hub {:?}; this desk is standalone again and keeps its calls.",
            shown(&state.hub_name)
        ),
        Some(e) => println!(
            "Left the hub {:?} (it could not be told: {e}; remove the desk there with \
             `callpop hub revoke`). This desk is standalone again and keeps its calls.",
            shown(&state.hub_name)
        ),
    }
    Ok(())
}

/// `callpop desk discover [--seconds N] [--json]`.
pub(crate) fn discover(seconds: u64, json: bool) -> Result<()> {
    use std::io::Write;
    let hubs = callpop_engine::desk::discover::discover(std::time::Duration::from_secs(
        seconds.clamp(1, 60),
    ))?;
    let mut out = std::io::stdout().lock();
    if hubs.is_empty() && !json {
        writeln!(
            out,
            "No hub answered on this network (multicast may be blocked: type the hub's address \
             instead, as `callpop hub pair` shows it)."
        )?;
    }
    for hub in hubs {
        if json {
            writeln!(
                out,
                "{}",
                crate::render::json_line(&serde_json::to_value(&hub)?)
            )?;
        } else {
            writeln!(
                out,
                "{:<24}  {:<21}  identity {}",
                crate::render::truncate(&shown(&hub.name), 24),
                hub.addresses
                    .first()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                hub.fingerprint_short
            )?;
        }
    }
    Ok(())
}
