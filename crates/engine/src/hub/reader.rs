//! Read connections to the history for the desk API: a few kept open and lent out on the
//! blocking pool, a few at a time, so 200 desks reading pages never open a connection each, and
//! a slow reader never holds the webhook path (which has the writer's own connection).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use callpop_store::{Store, StoreError, StoreOptions};

/// Connections at most: more readers at once wait their turn (a connection costs memory,
/// and two cores cannot run more reads at once anyway).
const KEPT: usize = 3;

/// A pool of read connections.
#[derive(Clone)]
pub struct Readers {
    path: PathBuf,
    options: StoreOptions,
    idle: Arc<Mutex<Vec<Store>>>,
    turns: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    /// Readers of the history at `path`.
    pub fn new(path: PathBuf, options: StoreOptions) -> Readers {
        Readers {
            path,
            options,
            idle: Arc::new(Mutex::new(Vec::new())),
            turns: Arc::new(tokio::sync::Semaphore::new(KEPT)),
        }
    }

    /// Runs `read` with a connection on the blocking pool.
    pub async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let store = match this
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
            {
                Some(store) => store,
                None => {
                    let store = Store::open_existing(&this.path, this.options.clone())?;
                    // Pages are read once and sent on: a small page cache is enough.
                    store.limit_page_cache(2 * 1024)?;
                    store
                }
            };
            let result = read(&store);
            this.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(store);
            result
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("a history read failed: {e}")))?
    }
}
