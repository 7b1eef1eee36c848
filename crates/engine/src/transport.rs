//! Which way RingCentral sends events: the configured [`Transport`] and what the WebSocket
//! reports decide what the webhook subscription keeper does. `auto` prefers the WebSocket
//! (no public URL, nothing to blacklist) and keeps a webhook subscription only while the
//! RingCentral app lacks the WebSocket subscriptions permission. A switch overlaps: the new
//! way is subscribed before the old one is removed; the events both deliver meanwhile are
//! stored once (the store recognises the same telephony event by its session, parties and
//! sequence, whatever `uuid` each subscription gave it).

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Transport;
use crate::health::Health;
use crate::subscriptions::{KeeperHandle, Role};
use crate::websocket::WsState;

/// The keeper's role when the engine starts, before the WebSocket has said anything.
pub fn initial_role(choice: Transport) -> Role {
    match choice {
        Transport::Webhook => Role::Keep,
        // Whatever subscription a previous run kept goes on delivering until the WebSocket
        // is subscribed.
        Transport::Auto | Transport::Websocket => Role::Standby,
    }
}

/// The transport in use for a WebSocket state, and the keeper's role with it; `None` while
/// the state decides nothing (connecting, reconnecting).
fn decide(choice: Transport, state: WsState) -> Option<(&'static str, Role)> {
    match (choice, state) {
        (Transport::Webhook, _) => Some(("webhook", Role::Keep)),
        (_, WsState::Subscribed) => Some(("websocket", Role::Remove)),
        (Transport::Auto, WsState::PermissionMissing) => Some(("webhook", Role::Keep)),
        _ => None,
    }
}

/// Follows the WebSocket's state and sets the keeper's role; runs until shutdown.
pub async fn follow(
    choice: Transport,
    mut ws: watch::Receiver<WsState>,
    keeper: KeeperHandle,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut current: Option<(&'static str, Role)> = None;
    loop {
        let state = *ws.borrow_and_update();
        if let Some(decided) = decide(choice, state) {
            if current != Some(decided) {
                let (transport, role) = decided;
                tracing::info!(transport, ?role, "RingCentral transport");
                health.set_ringcentral_transport(Some(transport));
                keeper.set_role(role).await;
                current = Some(decided);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = ws.changed() => if changed.is_err() { break },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_the_websocket_and_falls_back_only_without_the_permission() {
        use WsState as S;
        assert_eq!(
            decide(Transport::Auto, S::Subscribed),
            Some(("websocket", Role::Remove))
        );
        assert_eq!(
            decide(Transport::Auto, S::PermissionMissing),
            Some(("webhook", Role::Keep))
        );
        // A drop or a refused sign-in is no reason to switch: the old way stays as it is.
        for s in [S::Connecting, S::Reconnecting, S::Refused] {
            assert_eq!(decide(Transport::Auto, s), None, "{s:?}");
            assert_eq!(decide(Transport::Websocket, s), None, "{s:?}");
        }
        assert_eq!(decide(Transport::Websocket, S::PermissionMissing), None);
        assert_eq!(
            decide(Transport::Webhook, S::Subscribed),
            Some(("webhook", Role::Keep))
        );
        assert_eq!(initial_role(Transport::Webhook), Role::Keep);
        assert_eq!(initial_role(Transport::Auto), Role::Standby);
    }
}
