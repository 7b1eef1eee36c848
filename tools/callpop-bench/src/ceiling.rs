//! The ceiling: the least a durable webhook receiver can do on this machine — a bare axum
//! handler that appends the body to SQLite (WAL, `synchronous = FULL`, group commit, answer
//! after the commit) and nothing else. CallPop's figures are reported as a share of it.
//!
//! Next to it, the plainest handler of all: one INSERT committed per request, the way a
//! receiver without group commit stores a webhook.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use tokio::sync::{mpsc, oneshot};

type Job = (Bytes, oneshot::Sender<bool>);

/// The append-only table, in a WAL synced inside every COMMIT.
fn open(db: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, body BLOB NOT NULL);",
    )?;
    Ok(conn)
}

/// Serves `app` on a fresh port on 127.0.0.1; returns the port.
async fn serve(app: Router) -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// Starts the ceiling server on 127.0.0.1; returns its port.
pub async fn start(db: &Path) -> Result<u16> {
    let conn = open(db)?;
    let (tx, mut rx) = mpsc::channel::<Job>(4096);
    std::thread::spawn(move || {
        let mut conn = conn;
        let mut batch: Vec<Job> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < 512 {
                match rx.try_recv() {
                    Ok(j) => batch.push(j),
                    Err(_) => break,
                }
            }
            let committed = (|| -> rusqlite::Result<()> {
                let tx = conn.transaction()?;
                {
                    let mut stmt =
                        tx.prepare_cached("INSERT INTO raw (received_at, body) VALUES (?1, ?2)")?;
                    let now = chrono::Utc::now().timestamp_millis();
                    for (body, _) in &batch {
                        stmt.execute(rusqlite::params![now, body.as_ref()])?;
                    }
                }
                tx.commit()
            })()
            .is_ok();
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(committed);
            }
        }
    });
    serve(Router::new().route("/{*path}", post(append)).with_state(tx)).await
}

/// Starts the one-commit-per-request server on 127.0.0.1; returns its port.
pub async fn start_per_request(db: &Path) -> Result<u16> {
    let conn = Arc::new(Mutex::new(open(db)?));
    serve(
        Router::new()
            .route("/{*path}", post(append_alone))
            .with_state(conn),
    )
    .await
}

async fn append_alone(
    State(conn): State<Arc<Mutex<rusqlite::Connection>>>,
    body: Bytes,
) -> StatusCode {
    let stored = tokio::task::spawn_blocking(move || {
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached("INSERT INTO raw (received_at, body) VALUES (?1, ?2)")
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    chrono::Utc::now().timestamp_millis(),
                    body.as_ref()
                ])
            })
            .is_ok()
    })
    .await;
    match stored {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn append(State(tx): State<mpsc::Sender<Job>>, body: Bytes) -> StatusCode {
    let (reply, done) = oneshot::channel();
    if tx.send((body, reply)).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match done.await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}
