//! Resuming a large ingest uses the saved hash state (hashing again at most the tail written
//! since the last checkpoint), and stays correct when the state is damaged or ahead of the data.

mod common;

use bytes::Bytes;
use common::*;
use oci_store::{LayoutOptions, LayoutStore, PushOutcome, ReadStore, WriteStore, collect};

const MIB: usize = 1 << 20;

#[tokio::test]
async fn resume_from_checkpoint_damaged_state_and_state_ahead_of_data() {
    let t = TempDir::new("resume");
    let store = LayoutStore::open_with(t.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let data = Bytes::from(Rng::new(77).bytes(20 * MIB));
    let b = blob("application/octet-stream", data.clone());
    let key = "big-download";
    let dir = t
        .path()
        .join(".oci-rs/ingests")
        .join(oci_digest::Algorithm::Sha256.hash(key.as_bytes()).encoded());

    // 18 MiB in: a checkpoint was saved at 16 MiB or later.
    let mut w = store.writer(key, &b.desc).await.unwrap();
    for i in 0..18 {
        w.write(data.slice(i * MIB..(i + 1) * MIB)).await.unwrap();
    }
    drop(w);
    let state = std::fs::read(dir.join("state")).unwrap();
    let saved = oci_digest::Digester::restore(&state).unwrap();
    assert!(saved.bytes_hashed() >= 16 * MIB as u64 && saved.bytes_hashed() <= 18 * MIB as u64);
    let w = store.writer(key, &b.desc).await.unwrap();
    assert_eq!(w.offset(), 18 * MIB as u64);
    drop(w);

    // Damaged state: ignored, the data is hashed from the start.
    std::fs::write(dir.join("state"), b"garbage").unwrap();
    let w = store.writer(key, &b.desc).await.unwrap();
    assert_eq!(w.offset(), 18 * MIB as u64);
    drop(w);

    // State ahead of the data (as after a power loss): ignored too.
    std::fs::write(dir.join("state"), &state).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("data"))
        .unwrap();
    f.set_len(5 * MIB as u64).unwrap();
    drop(f);
    let mut w = store.writer(key, &b.desc).await.unwrap();
    assert_eq!(w.offset(), 5 * MIB as u64);
    w.write(data.slice(5 * MIB..)).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    assert_eq!(
        collect(store.fetch(&b.desc).await.unwrap(), u64::MAX)
            .await
            .unwrap(),
        data
    );
    assert!(store.ingest_status(key).await.unwrap().is_none());
}
