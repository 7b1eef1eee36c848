//! `callpop subscriptions`: CallPop's RingCentral webhook subscriptions.

use anyhow::Result;

use callpop_engine::config::Config;

use crate::args::*;
use crate::commands::*;
use crate::render::*;

pub(crate) fn subscriptions(mut config: Config, action: SubscriptionAction) -> Result<()> {
    let mut keeper = keeper(&mut config)?;
    subscriptions_with(&config, &mut keeper, action)
}

/// The subscription keeper for this install, as the engine would run it.
pub(crate) fn keeper(config: &mut Config) -> Result<callpop_engine::subscriptions::Keeper> {
    use callpop_engine::subscriptions::{Keeper, KeeperState};
    let platform = platform(config)?;
    let tokens = callpop_engine::secrets::webhook_tokens(config)?;
    let state: KeeperState = open_history(config)
        .ok()
        .and_then(|s| {
            s.state_get(callpop_engine::subscriptions::STATE_KEY)
                .ok()
                .flatten()
        })
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    Ok(Keeper::for_install(
        config,
        platform,
        tokens.ringcentral,
        state,
    ))
}

fn subscriptions_with(
    config: &Config,
    keeper: &mut callpop_engine::subscriptions::Keeper,
    action: SubscriptionAction,
) -> Result<()> {
    runtime()?.block_on(async {
        match action {
            SubscriptionAction::List { json } => {
                let ours = keeper.ours().await?;
                if ours.is_empty() && !json {
                    println!("No CallPop subscriptions.");
                }
                for s in ours {
                    if json {
                        println!(
                            "{}",
                            json_line(&serde_json::json!({
                                "id": s.id, "status": s.status, "address": s.delivery_mode.address,
                                "expiration_time": s.expiration_time, "event_filters": s.event_filters,
                                "blacklisted_reason": s.blacklisted_data.as_ref().and_then(|b| b.reason.clone()),
                            }))
                        );
                    } else {
                        println!(
                            "{}  {:<11}  expires {}  {}",
                            shown(&s.id),
                            shown(&s.status),
                            shown(s.expiration_time.as_deref().unwrap_or("-")),
                            shown(s.delivery_mode.address.as_deref().unwrap_or("-"))
                        );
                    }
                }
            }
            SubscriptionAction::Ensure => {
                let e = keeper.ensure(false).await?;
                println!(
                    "Subscription {} is Active until {}{}{}",
                    shown(&e.subscription_id),
                    e.expires_at.map_or("-".into(), |t| t.to_rfc3339()),
                    if e.created { " (created)" } else if e.renewed { " (renewed)" } else { "" },
                    if e.deleted.is_empty() {
                        String::new()
                    } else {
                        format!("; deleted {}", shown(&e.deleted.join(", ")))
                    }
                );
                if let Ok(store) = open_history(config) {
                    store.state_set(
                        callpop_engine::subscriptions::STATE_KEY,
                        &serde_json::to_string(keeper.state())?,
                    )?;
                }
            }
            SubscriptionAction::Delete { id } => {
                keeper.delete(&id).await?;
                println!("Deleted subscription {id}.");
            }
        }
        Ok(())
    })
}
