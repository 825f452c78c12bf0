//! Storage: a narrow key-value trait with a sled and an in-memory implementation, and
//! [`Db`], the layer the rest of armlet uses (JSON values, serialisable transactions,
//! group-committed flushes).
//!
//! Keys are strings. Resource keys are the lower-cased resource id (ARM matches ids
//! case-insensitively) while values keep the caller's casing. Key spaces:
//! - `res/{lower-cased resource id}`: every resource (groups, tracked, child and extension ones);
//! - `sub/{id}`, `tenant/{id}`: subscriptions and tenants;
//! - `dir/...`: directory objects (service principals, applications);
//! - `op/{id}`: long-running operations;
//! - `meta/...`: the clock, instance identity.

mod memory;
mod sled_store;

#[cfg(test)]
mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use memory::MemStore;
pub use sled_store::SledStore;

/// A storage failure: armlet's fault, never the client's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored value under '{key}' is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// One change in a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put(key, _) | Op::Delete(key) => key,
        }
    }
}

/// Counts the applied batches that wrote a key it watches (see [`Db::watch`]). A cache reads
/// the count before it reads the store and trusts what it kept only while the count holds.
pub struct Watch {
    matches: fn(&str) -> bool,
    generation: AtomicU64,
}

impl Watch {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// Changes applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub ops: Vec<Op>,
}

/// The storage engine seam. Implementations must make [`Store::apply`] atomic and
/// [`Store::flush`] durable (after it returns, applied batches survive `kill -9`).
pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every key starting with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn apply(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Blocks until everything applied so far is on disk.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A transaction's view: reads see the store plus the transaction's own writes.
pub struct Tx<'a> {
    store: &'a dyn Store,
    batch: Batch,
}

impl Tx<'_> {
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        for op in self.batch.ops.iter().rev() {
            match op {
                Op::Put(k, v) if k == key => return Ok(Some(v.clone())),
                Op::Delete(k) if k == key => return Ok(None),
                _ => {}
            }
        }
        self.store.get(key)
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get_raw(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Keys under `prefix` as stored before this transaction (its own writes are not merged).
    pub fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        scan_decoded(self.store, prefix)
    }

    pub fn put<T: Serialize>(&mut self, key: impl Into<String>, value: &T) -> Result<(), StoreError> {
        let key = key.into();
        let bytes =
            serde_json::to_vec(value).map_err(|e| StoreError::Corrupt { key: key.clone(), reason: e.to_string() })?;
        self.batch.ops.push(Op::Put(key, bytes));
        Ok(())
    }

    pub fn delete(&mut self, key: impl Into<String>) {
        self.batch.ops.push(Op::Delete(key.into()));
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_owned(), reason: e.to_string() })
}

fn scan_decoded<T: DeserializeOwned>(store: &dyn Store, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
    store.scan_prefix(prefix)?.into_iter().map(|(k, v)| decode(&k, &v).map(|t| (k, t))).collect()
}

/// The database armlet runs on: JSON values over a [`Store`], serialisable read-modify-write
/// transactions, and writes acknowledged only once flushed.
pub struct Db {
    store: Arc<dyn Store>,
    /// Serialises transactions (reads + apply); flushing happens outside it.
    write_lock: std::sync::Mutex<()>,
    /// Sequence number of the last applied batch.
    applied: AtomicU64,
    /// What [`Db::watch`] handed out.
    watches: std::sync::RwLock<Vec<Arc<Watch>>>,
    /// Sequence number known to be on disk; holding the lock means "I am flushing".
    flushed: tokio::sync::Mutex<u64>,
    durable: bool,
}

impl Db {
    pub fn new(store: Arc<dyn Store>, durable: bool) -> Self {
        Self {
            store,
            write_lock: std::sync::Mutex::new(()),
            applied: AtomicU64::new(0),
            watches: Default::default(),
            flushed: tokio::sync::Mutex::new(0),
            durable,
        }
    }

    /// An in-memory database (tests, `--in-memory`).
    pub fn memory() -> Self {
        Self::new(Arc::new(MemStore::default()), false)
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.store.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    pub fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        scan_decoded(self.store.as_ref(), prefix)
    }

    /// A counter of the writes to keys `matches` accepts, for a cache of what they hold.
    pub fn watch(&self, matches: fn(&str) -> bool) -> Arc<Watch> {
        let watch = Arc::new(Watch { matches, generation: AtomicU64::new(0) });
        self.watches.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(Arc::clone(&watch));
        watch
    }

    /// A read-only view through the transaction API, so that code reading inside and outside
    /// transactions is the same; anything written through it is discarded.
    pub fn reader(&self) -> Tx<'_> {
        Tx { store: self.store.as_ref(), batch: Batch::default() }
    }

    /// Runs `f` as a serialisable transaction, applies its writes atomically and returns once
    /// they are durable, and so is everything it read: a transaction that writes nothing
    /// (a repeated create, a delete of what is already gone) may answer from another's
    /// batch that is applied but not yet flushed, and must not acknowledge it first. If `f`
    /// fails nothing is written.
    pub async fn transact<R, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R, E>) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let (result, seq) = {
            let _guard = self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut tx = Tx { store: self.store.as_ref(), batch: Batch::default() };
            let result = f(&mut tx)?;
            if !tx.batch.ops.is_empty() {
                self.store.apply(&tx.batch)?;
                // Numbered under the lock, so any later transaction that can read this batch
                // also sees its number.
                self.applied.fetch_add(1, Ordering::SeqCst);
                for watch in self.watches.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
                    if tx.batch.ops.iter().any(|op| (watch.matches)(op.key())) {
                        watch.generation.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            (result, self.applied.load(Ordering::SeqCst))
        };
        self.make_durable(seq).await?;
        Ok(result)
    }

    /// Group commit: one flush covers every batch applied before it started, so writers that
    /// queue behind a running flush usually find their batch already on disk.
    async fn make_durable(&self, seq: u64) -> Result<(), StoreError> {
        if !self.durable {
            return Ok(());
        }
        let mut flushed = self.flushed.lock().await;
        if *flushed >= seq {
            return Ok(());
        }
        let target = self.applied.load(Ordering::SeqCst);
        let store = Arc::clone(&self.store);
        // sled's blocking flush, off the async threads (its flush_async can hang: sled#1241).
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Io(format!("flush task failed: {e}")))??;
        *flushed = target;
        Ok(())
    }

    /// Flushes everything (used at shutdown).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_counts_only_the_writes_it_watches() {
        let db = Db::memory();
        let roles = db.watch(|key| key.starts_with("role/"));
        let before = roles.generation();
        db.transact(|tx| tx.put("other/a", &1)).await.unwrap();
        assert_eq!(roles.generation(), before, "an unrelated write leaves the watch alone");
        db.transact(|tx| tx.put("role/a", &1)).await.unwrap();
        let after_put = roles.generation();
        assert!(after_put > before);
        db.transact(|tx| -> Result<(), StoreError> {
            tx.delete("role/a");
            Ok(())
        })
        .await
        .unwrap();
        assert!(roles.generation() > after_put, "a delete counts too");
        let after_delete = roles.generation();
        let failed: Result<(), StoreError> = db
            .transact(|tx| {
                tx.put("role/b", &1)?;
                Err(StoreError::Io("refused".into()))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(db.get::<i32>("role/b").unwrap(), None);
        assert_eq!(roles.generation(), after_delete, "a transaction that failed wrote nothing");
    }
}
