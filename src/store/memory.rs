//! The in-memory [`Store`]: a sorted map behind a lock. Nothing survives the process.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{Batch, Op, Store, StoreError};

#[derive(Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl Store for MemStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let map = self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for op in &batch.ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k.clone(), v.clone());
                }
                Op::Delete(k) => {
                    map.remove(k);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
