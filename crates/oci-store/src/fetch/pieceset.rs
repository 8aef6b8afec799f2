//! A set of piece indexes (a bitmap), as piece writers keep and record what they hold.

use std::ops::Range;

use oci_digest::PieceLayout;

/// Piece indexes below a count, as a bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PieceSet {
    bits: Vec<u64>,
    count: u64,
}

impl PieceSet {
    /// An empty set of pieces below `count` (at most [`PieceLayout::MAX_PIECES`]: 32 KiB).
    pub(crate) fn new(count: u64) -> PieceSet {
        PieceSet {
            bits: vec![0; usize::try_from(count.div_ceil(64)).unwrap_or(0)],
            count,
        }
    }

    fn slot(&self, index: u64) -> Option<(usize, u64)> {
        (index < self.count).then(|| ((index / 64) as usize, 1u64 << (index % 64)))
    }

    pub(crate) fn contains(&self, index: u64) -> bool {
        self.slot(index)
            .is_some_and(|(w, bit)| self.bits.get(w).is_some_and(|v| v & bit != 0))
    }

    /// Adds `index`; false when it is out of range.
    pub(crate) fn insert(&mut self, index: u64) -> bool {
        match self.slot(index) {
            Some((w, bit)) => match self.bits.get_mut(w) {
                Some(v) => {
                    *v |= bit;
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    pub(crate) fn remove(&mut self, index: u64) {
        if let Some((w, bit)) = self.slot(index)
            && let Some(v) = self.bits.get_mut(w)
        {
            *v &= !bit;
        }
    }

    /// Number of pieces in the set.
    pub(crate) fn len(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether every piece below the count is in the set.
    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.count
    }

    /// The indexes in the set, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).filter(|&i| self.contains(i))
    }

    /// The first index not in the set (the count when full): the held prefix is `0..first_missing`.
    pub(crate) fn first_missing(&self) -> u64 {
        for (w, v) in self.bits.iter().enumerate() {
            if *v != u64::MAX {
                return (w as u64 * 64 + u64::from(v.trailing_ones())).min(self.count);
            }
        }
        self.count
    }

    /// Bytes of the held prefix under `layout`.
    pub(crate) fn prefix_bytes(&self, layout: &PieceLayout) -> u64 {
        let first = self.first_missing();
        layout.range(first).map_or(layout.size(), |r| r.start)
    }

    /// Bytes held under `layout`.
    pub(crate) fn bytes(&self, layout: &PieceLayout) -> u64 {
        self.iter().map(|i| layout.len_of(i)).sum()
    }

    /// The byte ranges held under `layout`, merged.
    pub(crate) fn ranges(&self, layout: &PieceLayout) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for i in self.iter() {
            let Some(r) = layout.range(i) else { continue };
            match out.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => out.push(r),
            }
        }
        out
    }

    /// The pieces of `layout` lying wholly inside `ranges` (held bytes under another layout).
    pub(crate) fn from_ranges(layout: &PieceLayout, ranges: &[Range<u64>]) -> PieceSet {
        let mut set = PieceSet::new(layout.count());
        for r in ranges {
            for i in layout.pieces_within(r.clone()) {
                set.insert(i);
            }
        }
        set
    }

    /// The bitmap as lowercase hex, piece `i` in bit `i % 8` of byte `i / 8`.
    pub(crate) fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let nbytes = usize::try_from(self.count.div_ceil(8)).unwrap_or(0);
        let mut s = String::with_capacity(nbytes * 2);
        for i in 0..nbytes {
            let b = (self.bits[i / 8] >> ((i % 8) * 8)) as u8;
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Reads [`to_hex`](PieceSet::to_hex) output for `count` pieces; `None` when it is not
    /// exactly that (wrong length, not lowercase hex, bits past the count).
    pub(crate) fn from_hex(count: u64, hex: &str) -> Option<PieceSet> {
        let nbytes = usize::try_from(count.div_ceil(8)).ok()?;
        if hex.len() != nbytes * 2 {
            return None;
        }
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut set = PieceSet::new(count);
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let b = (digit(pair[0])? << 4) | digit(pair[1])?;
            for bit in 0..8 {
                if b & (1 << bit) != 0 && !set.insert(i as u64 * 8 + bit) {
                    return None;
                }
            }
        }
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        let mut s = PieceSet::new(70);
        assert_eq!(s.first_missing(), 0);
        for i in 0..65 {
            assert!(s.insert(i));
        }
        assert!(!s.insert(70));
        assert_eq!(s.first_missing(), 65);
        s.remove(3);
        assert_eq!(s.first_missing(), 3);
        assert_eq!(s.len(), 64);
        assert!(!s.is_full());
        let mut all = PieceSet::new(70);
        (0..70).for_each(|i| {
            all.insert(i);
        });
        assert_eq!(all.to_hex(), format!("{}3f", "ff".repeat(8)));
        assert_eq!(PieceSet::from_hex(70, &all.to_hex()), Some(all));
        assert_eq!(PieceSet::new(0).first_missing(), 0);
        assert!(PieceSet::new(0).is_full());
        // A bit past the count is refused.
        assert!(PieceSet::from_hex(3, "08").is_none());
        assert!(PieceSet::from_hex(3, "07").is_some_and(|s| s.is_full()));
        assert!(PieceSet::from_hex(3, "0F").is_none());
        assert!(PieceSet::from_hex(3, "007").is_none());
    }

    proptest! {
        #[test]
        fn hex_and_ranges_round_trip(
            held in proptest::collection::vec(any::<bool>(), 0..200),
            other_shift in 12u32..15,
        ) {
            let count = held.len() as u64;
            let layout = PieceLayout::new(count * 4096 - u64::from(count > 0) * 100, 4096).unwrap_or_else(|_| PieceLayout::new(0, 4096).unwrap());
            let mut s = PieceSet::new(layout.count());
            for (i, h) in held.iter().enumerate() {
                if *h && (i as u64) < layout.count() { s.insert(i as u64); }
            }
            prop_assert_eq!(PieceSet::from_hex(layout.count(), &s.to_hex()), Some(s.clone()));
            let ranges = s.ranges(&layout);
            prop_assert_eq!(PieceSet::from_ranges(&layout, &ranges), s.clone());
            prop_assert_eq!(ranges.iter().map(|r| r.end - r.start).sum::<u64>(), s.bytes(&layout));
            // Under a coarser layout, a piece is held only when all its bytes were.
            let coarse = PieceLayout::new(layout.size(), 1 << other_shift).unwrap();
            let c = PieceSet::from_ranges(&coarse, &ranges);
            for i in c.iter() {
                let r = coarse.range(i).unwrap();
                prop_assert!(ranges.iter().any(|h| h.start <= r.start && r.end <= h.end));
            }
            let p = s.first_missing();
            prop_assert!((0..p).all(|i| s.contains(i)));
            prop_assert!(p == layout.count() || !s.contains(p));
        }
    }
}
