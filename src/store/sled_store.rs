//! The durable [`Store`] on sled 0.34: one tree, batches applied atomically, explicit flushes.

use std::path::Path;

use super::{Batch, Op, Store, StoreError};

const CACHE_BYTES: u64 = 8 * 1024 * 1024;

pub struct SledStore {
    db: sled::Db,
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // sled's default 1 GiB page cache let a data directory of 100k resources grow
            // armlet to 270 MB; armlet's working set is far smaller.
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(io)?;
        Ok(Self { db })
    }
}

impl Store for SledStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key.as_bytes()).map_err(io)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                let key = String::from_utf8(k.to_vec())
                    .map_err(|_| StoreError::Corrupt { key: format!("{k:?}"), reason: "key is not UTF-8".into() })?;
                Ok((key, v.to_vec()))
            })
            .collect()
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => sled_batch.insert(k.as_bytes(), v.as_slice()),
                Op::Delete(k) => sled_batch.remove(k.as_bytes()),
            }
        }
        self.db.apply_batch(sled_batch).map_err(io)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }
}
