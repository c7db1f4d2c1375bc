//! A slot table with incarnation-checked ids and lowest-slot-first reuse.
//!
//! Reusing the lowest free slot (rather than the most recently freed one) keeps
//! the table's shape close to a function of which objects are alive, which keeps
//! the model checker's state space small. Incarnations are never reset, so an id
//! issued for a freed object never names a later one (until a slot has been
//! reused 2^32 times).

pub(crate) trait SlabId: Copy {
    fn new(slot: u32, incarnation: u32) -> Self;
    fn slot(self) -> u32;
    fn incarnation(self) -> u32;
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Slot<T> {
    incarnation: u32,
    value: Option<T>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slab<I, T> {
    slots: Vec<Slot<T>>,
    /// Free slots, sorted descending: `pop` yields the lowest.
    free: Vec<u32>,
    len: usize,
    _id: std::marker::PhantomData<fn() -> I>,
}

impl<I: SlabId, T> Default for Slab<I, T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            _id: std::marker::PhantomData,
        }
    }
}

impl<I: SlabId, T> Slab<I, T> {
    pub(crate) fn insert(&mut self, value: T) -> I {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let s = &mut self.slots[slot as usize];
            s.value = Some(value);
            return I::new(slot, s.incarnation);
        }
        let slot = u32::try_from(self.slots.len()).expect("more than 2^32 live objects");
        self.slots.push(Slot {
            incarnation: 0,
            value: Some(value),
        });
        I::new(slot, 0)
    }

    pub(crate) fn get(&self, id: I) -> Option<&T> {
        let s = self.slots.get(id.slot() as usize)?;
        if s.incarnation != id.incarnation() {
            return None;
        }
        s.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: I) -> Option<&mut T> {
        let s = self.slots.get_mut(id.slot() as usize)?;
        if s.incarnation != id.incarnation() {
            return None;
        }
        s.value.as_mut()
    }

    pub(crate) fn contains(&self, id: I) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn remove(&mut self, id: I) -> Option<T> {
        let s = self.slots.get_mut(id.slot() as usize)?;
        if s.incarnation != id.incarnation() {
            return None;
        }
        let value = s.value.take()?;
        s.incarnation = s.incarnation.wrapping_add(1);
        self.len -= 1;
        self.release_slot(id.slot());
        Some(value)
    }

    /// Removes everything; ids issued before stay stale.
    pub(crate) fn clear(&mut self) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.value.take().is_some() {
                s.incarnation = s.incarnation.wrapping_add(1);
                self.free.push(i as u32);
            }
        }
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.len = 0;
    }

    fn release_slot(&mut self, slot: u32) {
        // Usually the slot just taken is the lowest free one: an O(1) push.
        let at = self.free.partition_point(|&f| f > slot);
        self.free.insert(at, slot);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|v| (I::new(i as u32, s.incarnation), v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserId;

    #[test]
    fn a_stale_id_does_not_name_the_slots_next_occupant() {
        let mut slab: Slab<UserId, &str> = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), Some("a"));
        let c = slab.insert("c");
        assert_eq!(c.slot(), a.slot(), "lowest free slot is reused");
        assert_ne!(c, a);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(c), Some(&"c"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.get(b), Some(&"b"));
    }

    #[test]
    fn an_id_stays_stale_after_its_table_empties() {
        let mut slab: Slab<UserId, u8> = Slab::default();
        let a = slab.insert(1);
        slab.remove(a);
        assert_eq!(slab.len(), 0);
        let b = slab.insert(2);
        assert_eq!(b.slot(), a.slot());
        assert_eq!(slab.get(a), None, "the old id must not see the new value");
        assert_eq!(slab.get(b), Some(&2));
    }

    #[test]
    fn freed_slots_are_reused_lowest_first_whatever_order_they_were_freed_in() {
        let mut slab: Slab<UserId, u8> = Slab::default();
        let ids: Vec<UserId> = (0..5).map(|i| slab.insert(i)).collect();
        for i in [2, 0, 4, 3] {
            slab.remove(ids[i]);
        }
        let reused: Vec<u32> = (0..4).map(|i| slab.insert(10 + i).slot()).collect();
        assert_eq!(reused, vec![0, 2, 3, 4]);
        assert_eq!(slab.insert(99).slot(), 5, "then the table grows");
    }

    #[test]
    fn contains_answers_for_live_ids_only() {
        let mut slab: Slab<UserId, u8> = Slab::default();
        let a = slab.insert(1);
        assert!(slab.contains(a));
        slab.remove(a);
        assert!(!slab.contains(a), "a removed id");
        let b = slab.insert(2);
        assert!(slab.contains(b));
        assert!(!slab.contains(a), "a stale id for a reused slot");
        assert!(!slab.contains(UserId::new(7, 0)), "a slot never used");
    }
}
