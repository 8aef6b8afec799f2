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

/// Pages of `path` in the page cache, and the file's size in pages, from `fincore`.
fn cached_pages(path: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new("fincore")
        .args(["-b", "-n", "-o", "PAGES,SIZE"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("`fincore` is needed by this test ({e}): apt-get install util-linux-extra")
        });
    assert!(out.status.success(), "fincore failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    let (pages, size) = (it.next().unwrap(), it.next().unwrap());
    (pages, size.div_ceil(4096))
}

/// Blob data is written in odd-sized pieces, the writer is dropped at offsets that are not
/// block-aligned (with bytes still buffered) and resumed, on a disk file system (where the bulk is
/// written with O_DIRECT unless `buffered_writes` is set) and on tmpfs (which refuses O_DIRECT
/// before Linux 6.6, so the writer falls back to the page cache, and takes it since): every byte
/// arrives, in order, and verifies.
#[tokio::test]
async fn odd_pieces_and_unaligned_resumes_with_and_without_direct_io() {
    let shm = std::path::Path::new("/dev/shm");
    assert!(
        shm.is_dir(),
        "this test needs a tmpfs at /dev/shm (present on every Linux system)"
    );
    let data = Bytes::from(Rng::new(5).bytes(9 * MIB + 4321));
    let b = blob("application/octet-stream", data.clone());
    let cuts = [
        1,
        4095,
        4097,
        777_777,
        3 * MIB + 1,
        5 * MIB - 3,
        9 * MIB + 4000,
    ];
    // "disk": the build's directory, never a tmpfs (TMPDIR may be one).
    let disk = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (fs, base) in [("disk", disk), ("tmpfs", shm.to_owned())] {
        for buffered_writes in [false, true] {
            let case = format!("{fs}, buffered_writes {buffered_writes}");
            let t = TempDir::new_in(&base, "direct");
            let mut options = LayoutOptions::create();
            options.buffered_writes = buffered_writes;
            let store = LayoutStore::open_with(t.path(), &options).await.unwrap();

            // One writer, odd pieces: on disk, with direct I/O, the data skips the page cache
            // (a resume re-reads the data to hash it, which would fill the cache, so none here).
            let other = Bytes::from(Rng::new(6).bytes(9 * MIB + 17));
            let o = blob("application/octet-stream", other.clone());
            let mut w = store.writer("one", &o.desc).await.unwrap();
            let mut at = 0;
            for n in [1, 4103, 65_535, 1_000_003].iter().cycle() {
                let n = (*n).min(other.len() - at);
                w.write(other.slice(at..at + n)).await.unwrap();
                at += n;
                if at == other.len() {
                    break;
                }
            }
            assert_eq!(w.commit().await.unwrap(), PushOutcome::Written, "{case}");
            let (cached, pages) = cached_pages(&store.blob_path(&o.desc.digest));
            if fs == "disk" && !buffered_writes {
                assert!(
                    cached * 4 < pages,
                    "{case}: {cached} of {pages} pages in the page cache: not written with O_DIRECT"
                );
            } else {
                assert!(
                    cached * 4 > pages * 3,
                    "{case}: only {cached} of {pages} pages in the page cache"
                );
            }
            let read = collect(store.fetch(&o.desc).await.unwrap(), u64::MAX).await;
            assert_eq!(read.unwrap(), other, "{case}");

            // Writers dropped at unaligned offsets with bytes still buffered, then resumed.
            let mut at = 0;
            for (i, cut) in cuts.iter().copied().chain([data.len()]).enumerate() {
                // Each writer resumes where the last one stopped (its buffer written on drop).
                let mut w = store.writer("odd", &b.desc).await.unwrap();
                assert_eq!(w.offset(), at as u64, "{case}: resume offset");
                // Pieces of 1, 4096+7, 64 KiB-1, ... bytes.
                let sizes = [1, 4103, 65_535, 1_000_003];
                let mut k = i;
                while at < cut {
                    let n = sizes[k % sizes.len()].min(cut - at);
                    w.write(data.slice(at..at + n)).await.unwrap();
                    at += n;
                    k += 1;
                }
                if at == data.len() {
                    assert_eq!(w.commit().await.unwrap(), PushOutcome::Written, "{case}");
                }
            }
            assert_eq!(
                collect(store.fetch(&b.desc).await.unwrap(), u64::MAX)
                    .await
                    .unwrap(),
                data,
                "{case}"
            );
        }
    }
}
