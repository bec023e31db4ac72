//! A channel's whole read-back, held compactly while the ledger is streamed past it: the
//! SKUs' bytes in one arena and 16 bytes per item (offset, length, quantity), sorted by
//! SKU for binary search, with a bit per item for "the ledger has it" (what is left over is
//! `unknown`). About 16 bytes plus the SKU's length per item: 1M SKUs of 12 bytes take
//! 28 MB, where a `Vec<Listed>` would take about 64 MB (24-byte `String` + 8-byte quantity
//! + a heap allocation per SKU).

use onhand_channels::Listed;

/// One listed item: its SKU's place in the arena and its quantity.
#[derive(Debug, Clone, Copy)]
struct Item {
    start: u32,
    len: u8,
    quantity: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("the read-back's SKUs exceed 4 GiB; reconcile this channel in parts")]
    Full,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// One bit per item (after `finish`): the ledger has its SKU.
    seen: Vec<u64>,
    /// Items dropped because an earlier one had the same SKU.
    duplicates: u64,
    sorted: bool,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one listed item (before [`Snapshot::finish`]).
    pub fn push(&mut self, listed: &Listed) -> Result<(), SnapshotError> {
        let sku = listed.sku.as_str().as_bytes();
        // A Sku is 1..=255 bytes.
        let len = u8::try_from(sku.len()).map_err(|_| SnapshotError::Full)?;
        let start = u32::try_from(self.bytes.len()).map_err(|_| SnapshotError::Full)?;
        if u32::try_from(self.bytes.len() + sku.len()).is_err() {
            return Err(SnapshotError::Full);
        }
        self.bytes.extend_from_slice(sku);
        self.items.push(Item {
            start,
            len,
            quantity: listed.quantity,
        });
        self.sorted = false;
        Ok(())
    }

    /// Sorts by SKU and drops repeated SKUs (a channel listing one SKU twice; the first one
    /// read is kept, the others counted in [`Snapshot::duplicates`]).
    pub fn finish(&mut self) {
        let bytes = &self.bytes;
        let key =
            |item: &Item| &bytes[item.start as usize..item.start as usize + item.len as usize];
        // Stable, so the first item read of a repeated SKU comes first.
        self.items.sort_by(|a, b| key(a).cmp(key(b)));
        let before = self.items.len();
        self.items
            .dedup_by(|later, earlier| key(later) == key(earlier));
        self.duplicates += (before - self.items.len()) as u64;
        self.items.shrink_to_fit();
        self.bytes.shrink_to_fit();
        self.seen = vec![0; self.items.len().div_ceil(64)];
        self.sorted = true;
    }

    fn sku(&self, item: &Item) -> &[u8] {
        &self.bytes[item.start as usize..item.start as usize + item.len as usize]
    }

    /// The quantity listed for `sku`, marking it as known to the ledger.
    pub fn take(&mut self, sku: &str) -> Option<i64> {
        debug_assert!(self.sorted, "finish() before lookups");
        let index = self
            .items
            .binary_search_by(|item| self.sku(item).cmp(sku.as_bytes()))
            .ok()?;
        self.seen[index / 64] |= 1 << (index % 64);
        Some(self.items[index].quantity)
    }

    /// Items whose SKU the ledger did not have (never [`Snapshot::take`]n), in SKU order.
    pub fn unseen(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.seen[i / 64] & (1 << (i % 64)) == 0)
            .map(|(_, item)| {
                let sku = std::str::from_utf8(self.sku(item))
                    .expect("invariant: the arena holds whole SKUs, which are UTF-8");
                (sku, item.quantity)
            })
    }

    /// Distinct SKUs listed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.items.capacity() * std::mem::size_of::<Item>()
            + self.seen.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use onhand_common::Sku;

    use super::*;

    fn listed(sku: &str, quantity: i64) -> Listed {
        Listed {
            sku: Sku::parse(sku).expect("sku"),
            quantity,
        }
    }

    #[test]
    fn lookups_leftovers_and_duplicates() {
        let mut s = Snapshot::new();
        for (sku, q) in [("B", 2), ("Café Mug", 7), ("A", 1), ("B", 99), ("Z", 26)] {
            s.push(&listed(sku, q)).expect("push");
        }
        s.finish();
        assert_eq!(s.len(), 4);
        assert_eq!(s.duplicates(), 1);
        assert_eq!(s.take("B"), Some(2), "the first B read is kept");
        assert_eq!(s.take("Café Mug"), Some(7));
        assert_eq!(s.take("nope"), None);
        assert_eq!(s.unseen().collect::<Vec<_>>(), vec![("A", 1), ("Z", 26)]);
    }

    proptest::proptest! {
        /// Whatever the order and repeats, a lookup finds the first quantity read for a
        /// SKU, and the leftovers are exactly the SKUs never looked up.
        #[test]
        fn behaves_like_a_map_of_first_reads(
            items in proptest::collection::vec(("[a-zA-Z0-9 é-]{1,12}", -5i64..50), 0..200),
            probes in proptest::collection::vec("[a-zA-Z0-9 é-]{1,12}", 0..50),
        ) {
            let mut s = Snapshot::new();
            let mut first = std::collections::BTreeMap::new();
            for (sku, q) in &items {
                s.push(&listed(sku, *q)).expect("push");
                first.entry(sku.clone()).or_insert(*q);
            }
            s.finish();
            proptest::prop_assert_eq!(s.len(), first.len());
            proptest::prop_assert_eq!(s.duplicates() as usize, items.len() - first.len());
            for p in &probes {
                proptest::prop_assert_eq!(s.take(p), first.get(p).copied());
            }
            let left: Vec<(String, i64)> = s.unseen().map(|(k, q)| (k.to_owned(), q)).collect();
            let want: Vec<(String, i64)> = first
                .into_iter()
                .filter(|(k, _)| !probes.contains(k))
                .collect();
            proptest::prop_assert_eq!(left, want);
        }
    }

    #[test]
    fn sixteen_bytes_per_item_plus_the_sku() {
        assert_eq!(std::mem::size_of::<Item>(), 16);
        let mut s = Snapshot::new();
        for i in 0..10_000 {
            s.push(&listed(&format!("SKU-{i:07}"), i)).expect("push");
        }
        s.finish();
        assert!(s.heap_bytes() <= 10_000 * (16 + 11) + 10_000 / 8 + 64);
        assert_eq!(s.take("SKU-0004242"), Some(4242));
        assert_eq!(s.unseen().count(), 9_999);
    }
}
