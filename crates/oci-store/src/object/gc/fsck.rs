//! fsck: every blob re-hashed as it streams, then the graph below the roots checked.

use super::*;

impl BucketStore {
    /// fsck: re-hashes every blob (streaming), then checks the graph below the roots.
    pub(in crate::object) async fn check(&self, options: &FsckOptions) -> Result<FsckReport> {
        self.settle_all().await;
        let (blobs, skipped) = self.list_blobs().await?;
        let mut report = FsckReport {
            skipped,
            ..FsckReport::default()
        };
        let mut digests: Vec<Digest> = blobs.keys().cloned().collect();
        digests.sort();
        for d in digests {
            let key = self.keys().blob(&d);
            let got = match self.store().get(&key).await {
                Ok(g) => g,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(backend_err(format!("read {d}"), e)),
            };
            let mut h = Digester::new(d.algorithm());
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| backend_err(format!("read {d}"), e))?;
                h.update(&chunk);
            }
            report.checked += 1;
            let size = h.bytes_hashed();
            report.bytes += size;
            let actual = h.finalize();
            if actual != d {
                tracing::warn!(digest = %d, %actual, "corrupt blob");
                report.corrupt.push(Corrupt {
                    digest: d.clone(),
                    actual,
                    size,
                });
                if options.repair {
                    match self.store().delete(&key).await {
                        Ok(()) => report.removed.push(d),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(backend_err(format!("remove corrupt {d}"), e)),
                    }
                }
            }
        }
        // Roots first, then a fresh listing: content committed (and tagged) while the blobs
        // were being hashed is in it.
        let (fresh, _) = self.list_blobs().await?;
        let roots = self.read_roots(&fresh, None).await?.roots;
        let corrupt: HashSet<&Digest> = report.corrupt.iter().map(|c| &c.digest).collect();
        let mut blobs: HashMap<Digest, BlobMeta> = fresh
            .into_iter()
            .filter(|(d, _)| !corrupt.contains(d))
            .collect();
        // Content referred to that is newer than the listing is looked up.
        let _ = self.mark_all(&mut blobs, &roots, None).await?;
        let mut r = std::mem::take(&mut report);
        self.with_graph(&blobs, |g| {
            let mut part = FsckReport::default();
            g.check(&roots, &mut part)?;
            Ok(part)
        })
        .await
        .map(|part| {
            r.missing = part.missing;
            r.foreign = part.foreign;
            r.wrong_size = part.wrong_size;
            r.dangling = part.dangling;
        })?;
        Ok(r)
    }
}
