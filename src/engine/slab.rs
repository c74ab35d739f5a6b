//! Executions in slots addressed by generational keys: a key handed out with a Task call or
//! a timer goes stale when its execution ends, so a late result can never reach whatever
//! reuses the slot.

/// Identifies an execution within its driver; stale after the slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecKey {
    slot: u32,
    gen: u32,
}

struct Slot<T> {
    gen: u32,
    value: Option<T>,
}

pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, value: T) -> ExecKey {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        s.value = Some(value);
        self.len += 1;
        ExecKey { slot, gen: s.gen }
    }

    pub fn get_mut(&mut self, key: ExecKey) -> Option<&mut T> {
        let s = self.slots.get_mut(key.slot as usize)?;
        if s.gen != key.gen {
            return None;
        }
        s.value.as_mut()
    }

    pub fn get(&self, key: ExecKey) -> Option<&T> {
        let s = self.slots.get(key.slot as usize)?;
        if s.gen != key.gen {
            return None;
        }
        s.value.as_ref()
    }

    pub fn remove(&mut self, key: ExecKey) -> Option<T> {
        let s = self.slots.get_mut(key.slot as usize)?;
        if s.gen != key.gen {
            return None;
        }
        let value = s.value.take()?;
        // Bumped again, so the key is stale even before the slot is reused.
        s.gen = s.gen.wrapping_add(1);
        self.free.push(key.slot);
        self.len -= 1;
        Some(value)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys of the values `pick` selects.
    pub fn keys_where(&self, mut pick: impl FnMut(&T) -> bool) -> Vec<ExecKey> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let value = s.value.as_ref()?;
                pick(value).then_some(ExecKey {
                    slot: i as u32,
                    gen: s.gen,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn a_key_goes_stale_when_its_value_leaves() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(
            slab.get(a),
            None,
            "the old key must not reach the new value"
        );
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }
}
