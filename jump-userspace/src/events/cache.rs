//! A generic bounded cache for the event enricher's lookups (user names, sessions, login
//! trust): a flood of distinct keys costs lookups, never memory.

use std::collections::HashMap;

/// A map that forgets everything when it is full: cheap, bounded, and right for facts that
/// rarely change (user names, a session's SSH client).
// INVARIANT (bounded): `map.len() <= cap` after every call.
pub(crate) struct BoundedCache<K, V> {
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(cap: usize) -> Self {
        assert!(cap > 0, "a cache holds at least one entry");
        Self {
            map: HashMap::new(),
            cap,
        }
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        self.map.get(k).cloned()
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            self.map.clear();
        }
        self.map.insert(k, v);
    }

    pub(crate) fn get_or(&mut self, k: K, f: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(&k) {
            return v.clone();
        }
        let v = f();
        self.insert(k, v.clone());
        v
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_stay_within_their_capacity() {
        let mut c = BoundedCache::new(3);
        for k in 0..100u32 {
            assert_eq!(c.get_or(k, || k * 2), k * 2);
            assert!(c.len() <= 3, "the cache holds {} entries", c.len());
        }
        c.insert(99, 1);
        assert_eq!(c.get(&99), Some(1), "replacing a present key keeps it");
    }
}
