//! Read connections to the history for the desk API: a few kept open and lent out on the
//! blocking pool, so 200 desks reading pages never open a connection each, and a slow reader
//! never holds the webhook path (which has the writer's own connection).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use callpop_store::{Store, StoreError, StoreOptions};

/// Connections kept open; more readers at once open a short-lived one each.
const KEPT: usize = 4;

/// A pool of read connections.
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    options: StoreOptions,
    idle: Arc<Mutex<Vec<Store>>>,
}

impl Readers {
    /// Readers of the history at `path`.
    pub fn new(path: PathBuf, options: StoreOptions) -> Readers {
        Readers {
            path,
            options,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `read` with a connection on the blocking pool.
    pub async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let store = match this
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
            {
                Some(store) => store,
                None => Store::open_existing(&this.path, this.options.clone())?,
            };
            let result = read(&store);
            let mut idle = this.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < KEPT {
                idle.push(store);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a history read failed: {e}")))?
    }
}
