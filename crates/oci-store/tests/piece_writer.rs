//! Writers that take pieces out of order (`WriteStore::piece_writer`), on the memory and the
//! layout store: any order, resume in a new writer (and a new store instance, as a new process
//! would open it), refusals, repair of a wrong piece, conversion between ingests written in
//! order and in pieces, and the layout's record on disk (damaged, hostile).

mod common;

use bytes::Bytes;
use common::*;
use oci_digest::{Algorithm, PieceLayout, VerifyError};
use oci_manifest::Descriptor;
use oci_store::{
    FsckOptions, LayoutOptions, LayoutStore, ManagedStore, MemoryStore, PieceRefused, PieceWriter,
    PushOutcome, ReadStore, StoreError, WriteStore, collect,
};

const PL: u64 = 4096;

fn content(len: usize, seed: u64) -> (Bytes, Descriptor) {
    let data = Bytes::from(Rng::new(seed).bytes(len));
    let desc = Descriptor::of("application/octet-stream", &data);
    (data, desc)
}

fn piece(data: &Bytes, layout: &PieceLayout, i: u64) -> Bytes {
    let r = layout.range(i).unwrap();
    data.slice(r.start as usize..r.end as usize)
}

/// Writes piece `i` in two chunks and completes it.
async fn put(w: &dyn PieceWriter, data: &Bytes, i: u64) {
    let p = piece(data, &w.layout(), i);
    let half = p.len() / 2;
    w.write_piece(i, 0, p.slice(..half)).await.unwrap();
    w.write_piece(i, half as u64, p.slice(half..))
        .await
        .unwrap();
    w.complete_piece(i).await.unwrap();
}

fn refused(e: &StoreError) -> Option<&PieceRefused> {
    match e {
        StoreError::Backend { source, .. } => source.downcast_ref::<PieceRefused>(),
        _ => None,
    }
}

/// Both stores; the layout one is reopened (a new instance, as another process) by `reopen`.
enum Subject {
    Memory(MemoryStore),
    Layout(LayoutStore, TempDir),
}

impl Subject {
    async fn all() -> Vec<Subject> {
        let t = TempDir::new("piece-writer");
        let l = LayoutStore::open_with(t.path(), &LayoutOptions::create())
            .await
            .unwrap();
        vec![Subject::Memory(MemoryStore::new()), Subject::Layout(l, t)]
    }

    fn store(&self) -> &dyn WriteStore {
        match self {
            Subject::Memory(m) => m,
            Subject::Layout(l, _) => l,
        }
    }

    async fn reopen(&mut self) {
        if let Subject::Layout(l, t) = self {
            *l = LayoutStore::open(t.path()).await.unwrap();
        }
    }

    async fn fsck_clean(&self) {
        let f = match self {
            Subject::Memory(m) => m.fsck(&FsckOptions::default()).await.unwrap(),
            Subject::Layout(l, _) => l.fsck(&FsckOptions::default()).await.unwrap(),
        };
        assert!(f.is_clean(), "{f:?}");
    }

    fn name(&self) -> &'static str {
        match self {
            Subject::Memory(_) => "memory",
            Subject::Layout(..) => "layout",
        }
    }
}

#[tokio::test]
async fn pieces_in_any_order_resume_in_a_new_writer_and_commit_verified() {
    for mut s in Subject::all().await {
        let (data, desc) = content(10 * PL as usize + 123, 1);
        let layout = PieceLayout::new(desc.size, PL).unwrap();
        let w = s.store().piece_writer("k1", &desc, layout).await.unwrap();
        assert!(w.held().is_empty());
        for i in [10, 3, 7, 0] {
            put(&*w, &data, i).await;
        }
        // A piece half written, then the writer is gone (a crash, a cancel).
        w.write_piece(5, 0, piece(&data, &layout, 5).slice(..100))
            .await
            .unwrap();
        drop(w);
        s.reopen().await;
        assert_eq!(
            s.store().ingest_status("k1").await.unwrap().unwrap().offset,
            PL,
            "{}: the held prefix is piece 0",
            s.name()
        );
        let w = s.store().piece_writer("k1", &desc, layout).await.unwrap();
        assert_eq!(w.held(), vec![0, 3, 7, 10], "{}", s.name());
        assert!(matches!(
            w.verify().await,
            Err(StoreError::Verify(VerifyError::TooShort { received, .. })) if received == 3 * PL + 123
        ));
        for i in [9, 8, 6, 5, 4, 2, 1] {
            put(&*w, &data, i).await;
        }
        assert_eq!(
            w.piece_digest(4).await.unwrap(),
            Algorithm::Sha256.hash(&piece(&data, &layout, 4))
        );
        w.verify().await.unwrap();
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
        assert_eq!(
            collect(s.store().fetch(&desc).await.unwrap(), u64::MAX)
                .await
                .unwrap(),
            data
        );
        assert!(s.store().ingests().await.unwrap().is_empty());
        s.fsck_clean().await;
    }
}

#[tokio::test]
async fn refusals() {
    for s in Subject::all().await {
        let n = s.name();
        let (data, desc) = content(3 * PL as usize, 2);
        let layout = PieceLayout::new(desc.size, PL).unwrap();
        let other = PieceLayout::new(desc.size + 1, PL).unwrap();
        let e = s
            .store()
            .piece_writer("k", &desc, other)
            .await
            .err()
            .unwrap();
        assert!(refused(&e).is_some(), "{n}: {e}");
        let w = s.store().piece_writer("k", &desc, layout).await.unwrap();
        // Another writer of the same ingest (pieces or in order) is refused.
        assert!(matches!(
            s.store().piece_writer("k", &desc, layout).await.err(),
            Some(StoreError::IngestBusy { .. })
        ));
        assert!(matches!(
            s.store().writer("k", &desc).await.err(),
            Some(StoreError::IngestBusy { .. })
        ));
        let p1 = piece(&data, &layout, 1);
        // Past the piece's end; not at its next offset; no such piece.
        let mut long = p1.to_vec();
        long.push(0);
        for (i, off, chunk, why) in [
            (1, 0, Bytes::from(long), "a write past the piece's end"),
            (
                1,
                10,
                p1.slice(..10),
                "a write not at the piece's next offset",
            ),
            (3, 0, p1.clone(), "no such piece"),
        ] {
            let e = w.write_piece(i, off, chunk).await.unwrap_err();
            assert_eq!(refused(&e).map(|r| r.reason), Some(why), "{n}: {e}");
        }
        // Completing a piece not written to its end; digest of a piece not held.
        w.write_piece(1, 0, p1.slice(..100)).await.unwrap();
        let e = w.complete_piece(1).await.unwrap_err();
        assert_eq!(
            refused(&e).map(|r| r.reason),
            Some("the piece was not written to its end")
        );
        let e = w.piece_digest(1).await.unwrap_err();
        assert_eq!(refused(&e).map(|r| r.reason), Some("the piece is not held"));
        // Starting the piece again at 0 is fine; a held piece takes no more writes.
        w.write_piece(1, 0, p1.clone()).await.unwrap();
        w.complete_piece(1).await.unwrap();
        let e = w.write_piece(1, 0, p1.clone()).await.unwrap_err();
        assert_eq!(refused(&e).map(|r| r.reason), Some("the piece is held"));
        // Another digest under the same key.
        drop(w);
        let (_, other_desc) = content(3 * PL as usize, 3);
        assert!(matches!(
            s.store().piece_writer("k", &other_desc, layout).await.err(),
            Some(StoreError::IngestMismatch { .. })
        ));
        let w = s.store().piece_writer("k", &desc, layout).await.unwrap();
        w.abort().await.unwrap();
        assert!(s.store().ingest_status("k").await.unwrap().is_none());
        assert!(s.store().stat(&desc.digest).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_wrong_piece_fails_verification_keeps_the_ingest_and_is_repaired() {
    for mut s in Subject::all().await {
        let n = s.name();
        let (data, desc) = content(6 * PL as usize - 7, 4);
        let layout = PieceLayout::new(desc.size, PL).unwrap();
        let w = s.store().piece_writer("k", &desc, layout).await.unwrap();
        // In order: the prefix is hashed as it grows, past piece 2.
        for i in 0..6 {
            if i == 2 {
                let mut bad = piece(&data, &layout, 2).to_vec();
                bad[100] ^= 1;
                w.write_piece(2, 0, Bytes::from(bad)).await.unwrap();
                w.complete_piece(2).await.unwrap();
            } else {
                put(&*w, &data, i).await;
            }
        }
        assert!(
            matches!(
                w.verify().await,
                Err(StoreError::Verify(VerifyError::DigestMismatch { .. }))
            ),
            "{n}"
        );
        // Piece 2 lies inside the prefix already hashed: discarding it goes back, and the
        // repaired content verifies.
        w.discard_piece(2).await.unwrap();
        assert_eq!(w.held(), vec![0, 1, 3, 4, 5]);
        put(&*w, &data, 2).await;
        w.verify().await.unwrap();
        drop(w);
        s.reopen().await;
        let w = s.store().piece_writer("k", &desc, layout).await.unwrap();
        assert_eq!(w.held(), (0..6).collect::<Vec<_>>(), "{n}");
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written, "{n}");
        assert_eq!(
            collect(s.store().fetch(&desc).await.unwrap(), u64::MAX)
                .await
                .unwrap(),
            data
        );

        // commit refuses a mismatch too, and keeps the ingest with its pieces.
        let (data, desc) = content(3 * PL as usize, 40);
        let layout = PieceLayout::new(desc.size, PL).unwrap();
        let w = s.store().piece_writer("k2", &desc, layout).await.unwrap();
        put(&*w, &data, 0).await;
        put(&*w, &data, 2).await;
        w.write_piece(1, 0, Bytes::from(vec![0u8; PL as usize]))
            .await
            .unwrap();
        w.complete_piece(1).await.unwrap();
        assert!(matches!(
            w.commit().await,
            Err(StoreError::Verify(VerifyError::DigestMismatch { .. }))
        ));
        assert!(s.store().stat(&desc.digest).await.unwrap().is_none());
        s.reopen().await;
        let w = s.store().piece_writer("k2", &desc, layout).await.unwrap();
        assert_eq!(w.held(), vec![0, 1, 2], "{n}");
        w.discard_piece(1).await.unwrap();
        put(&*w, &data, 1).await;
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written, "{n}");
        s.fsck_clean().await;
    }
}

#[tokio::test]
async fn ingests_in_order_and_in_pieces_take_each_other_over() {
    for mut s in Subject::all().await {
        let n = s.name();
        let (data, desc) = content(8 * PL as usize + 5, 5);
        let layout = PieceLayout::new(desc.size, PL).unwrap();
        // In order, 2.5 pieces: the piece writer holds the 2 whole ones.
        let mut w = s.store().writer("k", &desc).await.unwrap();
        w.write(data.slice(..(2 * PL + PL / 2) as usize))
            .await
            .unwrap();
        drop(w);
        s.reopen().await;
        let pw = s.store().piece_writer("k", &desc, layout).await.unwrap();
        assert_eq!(pw.held(), vec![0, 1], "{n}");
        put(&*pw, &data, 5).await;
        put(&*pw, &data, 2).await;
        drop(pw);
        // A coarser layout holds the pieces wholly inside what was held.
        let coarse = PieceLayout::new(desc.size, 2 * PL).unwrap();
        let pw = s.store().piece_writer("k", &desc, coarse).await.unwrap();
        assert_eq!(
            pw.held(),
            vec![0],
            "{n}: bytes 0..3 pieces hold coarse piece 0 only"
        );
        drop(pw);
        let pw = s.store().piece_writer("k", &desc, layout).await.unwrap();
        let held = pw.held();
        assert!(held.starts_with(&[0, 1]), "{n}: {held:?}");
        drop(pw);
        // In order again: from the held prefix on.
        s.reopen().await;
        let mut w = s.store().writer("k", &desc).await.unwrap();
        let off = w.offset();
        assert_eq!(off % PL, 0, "{n}");
        assert!(off >= 2 * PL, "{n}: {off}");
        w.write(data.slice(off as usize..)).await.unwrap();
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written, "{n}");
        assert_eq!(
            collect(s.store().fetch(&desc).await.unwrap(), u64::MAX)
                .await
                .unwrap(),
            data
        );
        s.fsck_clean().await;
    }
}

#[tokio::test]
async fn empty_blob_and_one_piece() {
    for s in Subject::all().await {
        let (_, desc) = content(0, 6);
        let layout = PieceLayout::new(0, PL).unwrap();
        let w = s.store().piece_writer("e", &desc, layout).await.unwrap();
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
        let (data, desc) = content(100, 7);
        let layout = PieceLayout::new(100, PL).unwrap();
        let w = s.store().piece_writer("o", &desc, layout).await.unwrap();
        put(&*w, &data, 0).await;
        assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
        assert!(s.store().exists(&desc.digest).await.unwrap());
    }
}

/// The layout's record: what a damaged one, one that claims pieces past the data, and one
/// replaced by a FIFO or a link do.
#[tokio::test]
async fn layout_piece_record_damaged_or_hostile() {
    let t = TempDir::new("piece-record");
    let store = LayoutStore::open_with(t.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let (data, desc) = content(5 * PL as usize, 8);
    let layout = PieceLayout::new(desc.size, PL).unwrap();
    let dir = t
        .path()
        .join(".oci-rs/ingests")
        .join(Algorithm::Sha256.hash(b"k").encoded());
    let w = store.piece_writer("k", &desc, layout).await.unwrap();
    for i in [0, 1, 4] {
        put(&*w, &data, i).await;
    }
    drop(w);
    let record = std::fs::read_to_string(dir.join("pieces.json")).unwrap();
    assert_eq!(record, r#"{"pieceLength":4096,"size":20480,"held":"13"}"#);

    // Damaged: nothing can be placed, the ingest starts again.
    std::fs::write(dir.join("pieces.json"), b"{not json").unwrap();
    let w = store.piece_writer("k", &desc, layout).await.unwrap();
    assert!(w.held().is_empty());
    for i in [0, 1, 2, 3] {
        put(&*w, &data, i).await;
    }
    drop(w);
    // Claims more than the file holds (as after a crash between truncation and removal).
    std::fs::write(
        dir.join("pieces.json"),
        br#"{"pieceLength":4096,"size":20480,"held":"1f"}"#,
    )
    .unwrap();
    let w = store.piece_writer("k", &desc, layout).await.unwrap();
    assert_eq!(w.held(), vec![0, 1, 2, 3]);
    put(&*w, &data, 4).await;
    drop(w);

    // A FIFO in the record's place is refused, not waited on.
    std::fs::remove_file(dir.join("pieces.json")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(dir.join("pieces.json"))
        .status()
        .expect("mkfifo (coreutils) is needed by this test");
    assert!(st.success());
    let e = store.piece_writer("k", &desc, layout).await.err().unwrap();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e}");
    // A link likewise.
    std::fs::remove_file(dir.join("pieces.json")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("pieces.json")).unwrap();
    let e = store.piece_writer("k", &desc, layout).await.err().unwrap();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e}");
    std::fs::remove_file(dir.join("pieces.json")).unwrap();
    // Without a record the file is taken as written in order: all 5 pieces are there.
    let w = store.piece_writer("k", &desc, layout).await.unwrap();
    assert_eq!(w.held(), vec![0, 1, 2, 3, 4]);
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    let f = store.fsck(&FsckOptions::default()).await.unwrap();
    assert!(f.is_clean(), "{f:?}");
}

/// A large blob: the prefix hash is checkpointed beside the data as it grows, and a writer
/// opened again (a new process) goes on from the checkpoint.
#[tokio::test]
async fn layout_large_blob_checkpoints_the_prefix_hash() {
    let t = TempDir::new("piece-large");
    let store = LayoutStore::open_with(t.path(), &LayoutOptions::create())
        .await
        .unwrap();
    let (data, desc) = content(40 << 20, 9);
    let layout = PieceLayout::for_size(desc.size).unwrap();
    assert_eq!(layout.piece_length(), 1 << 20);
    let dir = t
        .path()
        .join(".oci-rs/ingests")
        .join(Algorithm::Sha256.hash(b"big").encoded());
    let w = store.piece_writer("big", &desc, layout).await.unwrap();
    for i in (0..20).rev() {
        put(&*w, &data, i).await;
    }
    drop(w);
    let state = std::fs::read(dir.join("state")).unwrap();
    let hashed = oci_digest::Digester::restore(&state)
        .unwrap()
        .bytes_hashed();
    assert!((16 << 20..=20 << 20).contains(&hashed), "{hashed}");
    let store = LayoutStore::open(t.path()).await.unwrap();
    let w = store.piece_writer("big", &desc, layout).await.unwrap();
    for i in 20..40 {
        put(&*w, &data, i).await;
    }
    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written);
    assert_eq!(
        collect(store.fetch(&desc).await.unwrap(), u64::MAX)
            .await
            .unwrap(),
        data
    );
}
