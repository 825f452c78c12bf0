//! One suite, run against every [`Store`] implementation.

use super::{Batch, Db, MemStore, Op, SledStore, Store};
use std::sync::Arc;

fn suite(store: &dyn Store) {
    assert_eq!(store.get("a").unwrap(), None);
    store
        .apply(&Batch { ops: vec![Op::Put("res/a".into(), b"1".to_vec()), Op::Put("res/a/b".into(), b"2".to_vec())] })
        .unwrap();
    store
        .apply(&Batch { ops: vec![Op::Put("res/ab".into(), b"3".to_vec()), Op::Put("x".into(), b"4".to_vec())] })
        .unwrap();
    assert_eq!(store.get("res/a").unwrap(), Some(b"1".to_vec()));
    let keys: Vec<String> = store.scan_prefix("res/a/").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["res/a/b"]);
    let keys: Vec<String> = store.scan_prefix("res/").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["res/a", "res/a/b", "res/ab"], "scan is in key order");
    // Later ops in one batch win; deletes of absent keys are fine.
    store
        .apply(&Batch {
            ops: vec![
                Op::Put("k".into(), b"old".to_vec()),
                Op::Put("k".into(), b"new".to_vec()),
                Op::Delete("res/a".into()),
                Op::Delete("absent".into()),
            ],
        })
        .unwrap();
    assert_eq!(store.get("k").unwrap(), Some(b"new".to_vec()));
    assert_eq!(store.get("res/a").unwrap(), None);
    store.flush().unwrap();
    assert!(store.scan_prefix("nothing/").unwrap().is_empty());
}

#[test]
fn memory_store_conforms() {
    suite(&MemStore::default());
}

#[test]
fn sled_store_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        suite(&store);
    }
    let reopened = SledStore::open(dir.path()).unwrap();
    assert_eq!(reopened.get("k").unwrap(), Some(b"new".to_vec()));
}

async fn db_suite(db: Db) {
    // A failed transaction writes nothing.
    let failed: Result<(), super::StoreError> = db
        .transact(|tx| {
            tx.put("t/1", &1)?;
            Err(super::StoreError::Io("boom".into()))
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(db.get::<i32>("t/1").unwrap(), None);
    // Reads inside a transaction see its own writes.
    let seen = db
        .transact(|tx| -> Result<Option<i32>, super::StoreError> {
            tx.put("t/2", &2)?;
            tx.get("t/2")
        })
        .await
        .unwrap();
    assert_eq!(seen, Some(2));
    // Concurrent increments never lose an update.
    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let db = Arc::clone(&db);
        tasks.push(tokio::spawn(async move {
            db.transact(|tx| -> Result<(), super::StoreError> {
                let n: i32 = tx.get("t/n")?.unwrap_or(0);
                tx.put("t/n", &(n + 1))
            })
            .await
            .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.get::<i32>("t/n").unwrap(), Some(32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_on_memory_conforms() {
    db_suite(Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_on_sled_conforms() {
    let dir = tempfile::tempdir().unwrap();
    db_suite(Db::new(Arc::new(SledStore::open(dir.path()).unwrap()), true)).await;
}
