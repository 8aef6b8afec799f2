//! Finding bad pieces without a map, after the whole digest did not match: the pieces of one
//! suspect source at a time (the least trusted first: sources are listed in order of trust, the
//! most trusted, the origin, last) are fetched again from another source and compared; when that
//! is not enough (the sources disagree and no single replacement verifies), more sources are
//! asked about the contested pieces and combinations of their versions are tried, a bounded
//! number of them, the whole digest checking each.

use futures_util::StreamExt;
use oci_digest::Digest;

use super::attempt::Failure;
use super::options::FetchEvent;
use super::run::{Fetch, Phase, Version};
use crate::error::{Result, StoreError};

/// How a search for the bad pieces ended.
pub(super) enum Located {
    /// The blob verifies now.
    Verified,
    /// The bad pieces could not be told apart.
    Unresolved,
    /// Pieces went missing (their copy was dropped to make room for another) and no source
    /// could serve them again.
    Missing,
}

impl Fetch<'_> {
    /// Looks for the bad pieces after the whole digest did not match (every piece held).
    pub(super) async fn locate(&self) -> Result<Located> {
        let n = self.sources.len();
        let suspects = std::iter::once(None).chain((0..n).map(Some));
        for suspect in suspects {
            if self.cancelled() {
                return Ok(Located::Unresolved);
            }
            let pieces: Vec<u64> = {
                let st = self.sched();
                (0..st.pieces.len() as u64)
                    .filter(|&i| {
                        let p = &st.pieces[i as usize];
                        matches!(p.phase, Phase::Held)
                            && p.supplier == suspect
                            && !st.agreed.contains(&i)
                    })
                    .collect()
            };
            if pieces.is_empty() {
                continue;
            }
            tracing::info!(digest = %self.desc.digest, suspect = %suspect.map_or("an earlier fetch".to_owned(), |s| crate::util::OneLine(&self.names[s]).to_string()), pieces = pieces.len(), "checking a suspect source's pieces against other sources");
            let results: Vec<Result<()>> = futures_util::stream::iter(pieces)
                .map(|p| self.second_opinion(p, suspect))
                .buffer_unordered(self.concurrency())
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
            match self.refill_and_verify().await? {
                Some(true) => return Ok(Located::Verified),
                Some(false) => {}
                None => return Ok(Located::Missing),
            }
        }
        // The contested pieces: ask every source not heard yet (hash only).
        let contested: Vec<u64> = self
            .sched()
            .versions
            .iter()
            .filter(|(_, vs)| vs.len() >= 2)
            .map(|(i, _)| *i)
            .collect();
        if contested.is_empty() {
            return Ok(Located::Unresolved);
        }
        for &p in &contested {
            for r in self.referees(p, None) {
                match self.attempt(r, p, None, false, true).await {
                    Ok(Some(d)) => self.sched().add_version(p, &d, r),
                    Ok(None) | Err(Failure::Cancelled) => {}
                    Err(Failure::Writer(e)) => return Err(e),
                    Err(f) => self.failed_attempt(r, p, f),
                }
            }
        }
        self.search(&contested).await
    }

    fn concurrency(&self) -> usize {
        (self.sources.len() * self.options.connections_per_source.max(1)).max(1)
    }

    /// Sources that may be asked about piece `p` and have not served it yet, the most trusted
    /// (listed last) first, never `not`.
    fn referees(&self, p: u64, not: Option<usize>) -> Vec<usize> {
        let st = self.sched();
        let vouched: u64 = st
            .versions
            .get(&p)
            .map_or(0, |vs| vs.iter().fold(0, |a, v| a | v.sources));
        let Some(piece) = st.pieces.get(p as usize) else {
            return Vec::new();
        };
        (0..self.sources.len())
            .rev()
            .filter(|&r| {
                Some(r) != not
                    && st.sources[r].alive
                    && piece.excluded & (1 << r) == 0
                    && vouched & (1 << r) == 0
            })
            .collect()
    }

    fn failed_attempt(&self, s: usize, p: u64, f: Failure) {
        // Id 0 is no attempt's: the piece's phase is this search's to set.
        self.failed(s, p, 0, f);
    }

    /// Fetches held piece `p` (served by `suspect`) again from another source, in its place,
    /// and records both versions.
    async fn second_opinion(&self, p: u64, suspect: Option<usize>) -> Result<()> {
        let held = self.writer.piece_digest(p).await?;
        {
            let mut st = self.sched();
            st.held_digest.insert(p, held.clone());
            if let Some(s) = suspect {
                st.add_version(p, &held, s);
            }
        }
        for r in self.referees(p, suspect) {
            match self.replace_from(p, r).await? {
                Some(d) => {
                    if d == held {
                        self.sched().agreed.insert(p);
                    }
                    return Ok(());
                }
                None => continue,
            }
        }
        Ok(())
    }

    /// Drops the held copy of piece `p` and fetches it from `r` into its place: the new
    /// version's SHA-256, or `None` when `r` failed (the piece is then missing).
    async fn replace_from(&self, p: u64, r: usize) -> Result<Option<Digest>> {
        self.writer.discard_piece(p).await?;
        {
            let mut st = self.sched();
            if let Some(piece) = st.piece(p) {
                piece.phase = Phase::Missing;
            }
            st.held_digest.remove(&p);
        }
        match self.attempt(r, p, None, true, true).await {
            Ok(Some(d)) => {
                self.writer.complete_piece(p).await?;
                let mut st = self.sched();
                st.add_version(p, &d, r);
                st.held_digest.insert(p, d.clone());
                if let Some(piece) = st.piece(p) {
                    piece.phase = Phase::Held;
                    piece.supplier = Some(r);
                }
                drop(st);
                self.emit(FetchEvent::PieceDone {
                    source: r,
                    index: p,
                });
                Ok(Some(d))
            }
            Ok(None) | Err(Failure::Cancelled) => Ok(None),
            Err(Failure::Writer(e)) => Err(e),
            Err(f) => {
                self.failed_attempt(r, p, f);
                Ok(None)
            }
        }
    }

    /// Fetches pieces that went missing, then checks the whole digest: `Some(verified)`, or
    /// `None` when pieces stay missing.
    async fn refill_and_verify(&self) -> Result<Option<bool>> {
        let missing = {
            let st = self.sched();
            st.pieces.iter().any(|p| !matches!(p.phase, Phase::Held))
        };
        if missing {
            self.run_workers().await;
            if let Some(e) = self.sched().fatal.take() {
                return Err(e);
            }
            if self
                .sched()
                .pieces
                .iter()
                .any(|p| !matches!(p.phase, Phase::Held))
            {
                return Ok(None);
            }
        }
        match self.writer.verify().await {
            Ok(_) => Ok(Some(true)),
            Err(StoreError::Verify(_)) => Ok(Some(false)),
            Err(e) => Err(e),
        }
    }

    /// Tries combinations of the versions of the contested pieces, first "without the versions
    /// only these sources served" for ever larger sets of sources, then in order of how many
    /// sources vouch for each version; at most `max_combinations`.
    async fn search(&self, contested: &[u64]) -> Result<Located> {
        let cands: Vec<(u64, Vec<Version>)> = {
            let st = self.sched();
            contested
                .iter()
                .filter_map(|p| {
                    let mut vs = st.versions.get(p)?.clone();
                    // Most vouchers first; then the most trusted voucher (listed last).
                    vs.sort_by(|a, b| {
                        b.sources
                            .count_ones()
                            .cmp(&a.sources.count_ones())
                            .then(a.sources.leading_zeros().cmp(&b.sources.leading_zeros()))
                    });
                    Some((*p, vs))
                })
                .collect()
        };
        let involved: Vec<usize> = {
            let all = cands
                .iter()
                .flat_map(|(_, vs)| vs.iter())
                .fold(0u64, |a, v| a | v.sources);
            (0..64).filter(|s| all & (1 << s) != 0).collect()
        };
        let max = self.options.max_combinations.max(1);
        let mut tried: Vec<Vec<usize>> = Vec::new();
        // The combination held now already failed.
        let current: Vec<usize> = {
            let st = self.sched();
            cands
                .iter()
                .map(|(p, vs)| {
                    st.held_digest
                        .get(p)
                        .and_then(|d| vs.iter().position(|v| &v.digest == d))
                        .unwrap_or(usize::MAX)
                })
                .collect()
        };
        tried.push(current);
        let mut plans: Vec<Vec<usize>> = Vec::new();
        'sizes: for k in 1..=involved.len() {
            let mut idx: Vec<usize> = (0..k).collect();
            loop {
                let excluded = idx.iter().fold(0u64, |a, &i| a | (1 << involved[i]));
                let combo: Option<Vec<usize>> = cands
                    .iter()
                    .map(|(_, vs)| vs.iter().position(|v| v.sources & !excluded != 0))
                    .collect();
                if let Some(c) = combo
                    && !plans.contains(&c)
                {
                    plans.push(c);
                    if plans.len() >= max {
                        break 'sizes;
                    }
                }
                // The next k-subset of `involved`.
                let Some(pos) = (0..k).rev().find(|&j| idx[j] < involved.len() - k + j) else {
                    break;
                };
                idx[pos] += 1;
                for j in pos + 1..k {
                    idx[j] = idx[j - 1] + 1;
                }
            }
        }
        // Then every combination, the best-vouched versions first (an odometer).
        let mut odo = vec![0usize; cands.len()];
        while plans.len() < max * 2 {
            if !plans.contains(&odo) {
                plans.push(odo.clone());
            }
            let Some(pos) = (0..odo.len()).find(|&j| odo[j] + 1 < cands[j].1.len()) else {
                break;
            };
            odo[pos] += 1;
            for v in odo.iter_mut().take(pos) {
                *v = 0;
            }
        }
        let mut attempts = 0;
        for plan in plans {
            if attempts >= max || self.cancelled() {
                break;
            }
            if tried.contains(&plan) {
                continue;
            }
            attempts += 1;
            tried.push(plan.clone());
            let mut ok = true;
            for ((p, vs), &choice) in cands.iter().zip(&plan) {
                let Some(want) = vs.get(choice) else {
                    ok = false;
                    break;
                };
                if self.sched().held_digest.get(p) == Some(&want.digest) {
                    continue;
                }
                let vouchers: Vec<usize> = (0..self.sources.len())
                    .rev()
                    .filter(|&r| want.sources & (1 << r) != 0 && self.sched().sources[r].alive)
                    .collect();
                let mut got = None;
                for r in vouchers {
                    if let Some(d) = self.replace_from(*p, r).await? {
                        got = Some(d);
                        break;
                    }
                }
                if got.as_ref() != Some(&want.digest) {
                    ok = false;
                    break;
                }
            }
            match self.refill_and_verify().await? {
                Some(true) => return Ok(Located::Verified),
                Some(false) => {}
                None => return Ok(Located::Missing),
            }
            if !ok {
                tracing::debug!("a source no longer serves the version it served before");
            }
        }
        Ok(Located::Unresolved)
    }
}
