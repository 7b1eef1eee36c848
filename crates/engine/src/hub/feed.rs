//! The change feed on the desk API: pages (`GET /v1/feed?after=SEQ`) for catching up, and a
//! live stream of the same changes as Server-Sent Events (`GET /v1/stream`, resuming from
//! `Last-Event-ID`) once caught up. Both send only changes already on disk
//! ([`super::api::HubState::durable`]), so a hub that loses power never takes back a number a
//! desk applied.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::mpsc;

use callpop_hub::wire::{Change, FeedPage, Record};
use callpop_store::{FeedRecord, StoreError};

use super::api::{authenticate, reply, version_of, ApiError, Shared};
use crate::receiver::PeerAddr;

/// Changes per page when the desk does not say.
const DEFAULT_PAGE: usize = 500;
/// The most changes per page.
const MAX_PAGE: usize = 1000;
/// A comment on an idle stream this often, so a desk notices a dead link within a few of
/// them and proxies keep the connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `?after=SEQ&since=MS&limit=N`.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    after: Option<i64>,
    since: Option<i64>,
    limit: Option<usize>,
}

impl FeedQuery {
    fn since(&self) -> Option<DateTime<Utc>> {
        self.since.and_then(DateTime::from_timestamp_millis)
    }
}

/// One store change as the wire carries it.
pub(crate) fn to_wire(change: callpop_store::FeedChange) -> Change {
    Change {
        seq: change.seq,
        record: match change.record {
            FeedRecord::Call(call) => Record::Call { call },
            FeedRecord::CallRemoved { provider, call_key } => {
                Record::CallRemoved { provider, call_key }
            }
        },
    }
}

/// Reads a page up to the durable position; `None` when `after` is older than what the hub
/// keeps (the desk must resynchronize).
async fn read_page(
    shared: &Shared,
    after: i64,
    limit: usize,
    since: Option<DateTime<Utc>>,
    upto: i64,
) -> Result<Option<callpop_store::FeedPage>, StoreError> {
    let page = shared
        .readers
        .with(move |s| s.feed_page(after, limit, since, Some(upto)))
        .await?;
    // A cursor past the hub's newest change comes from a hub whose history went back (it was
    // restored from a backup): the numbers after it may be handed out again.
    let behind = after > 0 && after < page.horizon;
    let ahead = after > page.latest;
    Ok((!behind && !ahead).then_some(page))
}

/// `GET /v1/feed`.
pub async fn page(
    State(shared): State<Shared>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let desk = authenticate(&shared, &headers)?;
    let after = query.after.unwrap_or(0).max(0);
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let upto = *shared.durable.borrow();
    let page = read_page(&shared, after, limit, query.since(), upto)
        .await
        .map_err(ApiError::store)?;
    shared
        .directory
        .seen(&desk, peer, version_of(&headers), Some(after));
    let body = match page {
        Some(page) => FeedPage {
            next: page.next,
            latest: page.latest,
            resync: false,
            changes: page.changes.into_iter().map(to_wire).collect(),
        },
        None => FeedPage {
            changes: Vec::new(),
            next: 0,
            latest: upto,
            resync: true,
        },
    };
    Ok(reply(200, &body))
}

/// `GET /v1/stream`: resumes after `Last-Event-ID` (or `?after=`).
pub async fn stream(
    State(shared): State<Shared>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let desk = authenticate(&shared, &headers)?;
    let token = super::api::bearer_hash(&headers);
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0)
        .max(0);
    shared
        .directory
        .seen(&desk, peer, version_of(&headers), Some(after));
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(pump(shared, desk, token, peer, after, query.since(), tx));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// Counts a desk's open stream while it lives.
struct Open<'a> {
    shared: &'a Shared,
    desk: &'a str,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.shared.directory.stream(self.desk, false);
    }
}

/// Feeds one desk's stream: everything durable after its cursor, then each new change as it
/// becomes durable, until the desk goes, is removed, or the hub stops.
async fn pump(
    shared: Shared,
    desk: String,
    token: String,
    peer: std::net::SocketAddr,
    mut cursor: i64,
    since: Option<DateTime<Utc>>,
    tx: mpsc::Sender<Event>,
) {
    shared.directory.stream(&desk, true);
    let _open = Open {
        shared: &shared,
        desk: &desk,
    };
    let mut durable = shared.durable.clone();
    let mut ends = shared.cache.watch_end();
    let mut removals = shared.directory.removals();
    let since_ms = since.map(|t| t.timestamp_millis());
    loop {
        ends.borrow_and_update();
        // The newest changes come from the cache, serialized once for every desk; a desk
        // further behind reads pages of the history until the cache has the rest.
        if let Some((entries, end)) = shared.cache.after(cursor, since_ms) {
            for entry in entries {
                let event = Event::default()
                    .id(entry.seq.to_string())
                    .event("change")
                    .data(&*entry.json);
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if end > cursor {
                cursor = end;
                shared.directory.seen(&desk, peer, None, Some(cursor));
            }
        } else {
            let upto = *durable.borrow_and_update();
            if cursor < upto {
                let page = match read_page(&shared, cursor, DEFAULT_PAGE, since, upto).await {
                    Ok(Some(page)) => page,
                    Ok(None) => {
                        let _ = tx.send(Event::default().event("resync").data("{}")).await;
                        return;
                    }
                    Err(e) => {
                        // The desk reconnects and resumes; nothing was skipped.
                        tracing::warn!(error = %e, %desk, "cannot read the change feed");
                        return;
                    }
                };
                let next = page.next;
                for change in page.changes {
                    let seq = change.seq;
                    let Ok(event) = Event::default()
                        .id(seq.to_string())
                        .event("change")
                        .json_data(to_wire(change))
                    else {
                        return;
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                if next > cursor {
                    cursor = next;
                    shared.directory.seen(&desk, peer, None, Some(cursor));
                    // More pages, or the cache covers the rest now.
                    continue;
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tx.closed() => return,
            changed = durable.changed() => if changed.is_err() { return },
            changed = ends.changed() => if changed.is_err() { return },
            _ = removals.changed() => {
                // By the token, not the name: a name paired again must not keep a removed
                // desk's stream open.
                let still = shared.directory.holder_of_hash(&token);
                if still != super::directory::TokenHolder::Desk(desk.clone()) {
                    let _ = tx
                        .send(Event::default().event("removed").data("{}"))
                        .await;
                    return;
                }
            }
        }
    }
}
