//! The per-store resource limiter. The memory cap counts every linear
//! memory of the instance together (a component may hold several), and a
//! refused growth is remembered, so that the trap that follows (a guest
//! whose allocation failed aborts) is reported as the memory cap, not as a
//! bug. Counts of instances, tables and memories and the size of tables are
//! capped by wasmtime's [`StoreLimits`].

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Most core instances a processor's store may create (a component made by
/// `wasm32-wasip2` has a handful; interpreters bundled as components more).
const MAX_INSTANCES: usize = 1_000;
/// Most tables and memories a store may create.
const MAX_TABLES: usize = 1_000;
const MAX_MEMORIES: usize = 100;
/// Most elements of one table (each costs a pointer on the host).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Limits of one store, recording refused memory growths.
pub(crate) struct Limiter {
    inner: StoreLimits,
    /// Cap on the sum of all linear memories, in bytes.
    memory_cap: usize,
    /// Sum of all linear memories granted so far, in bytes.
    memory_used: usize,
    /// The last growth granted, taken back if the growth then failed.
    last_grant: usize,
    refused: bool,
}

impl Limiter {
    /// A limiter capping each linear memory at `memory_bytes`.
    pub(crate) fn new(memory_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .instances(MAX_INSTANCES)
            .tables(MAX_TABLES)
            .memories(MAX_MEMORIES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(false)
            .build();
        Limiter {
            inner,
            memory_cap: memory_bytes,
            memory_used: 0,
            last_grant: 0,
            refused: false,
        }
    }

    /// The memory cap, in bytes.
    pub(crate) fn memory_cap(&self) -> usize {
        self.memory_cap
    }

    /// Records a refusal made outside memory growth (state writes held on
    /// the guest's behalf beyond its cap), so that the call's failure is
    /// reported as the memory cap.
    pub(crate) fn refuse(&mut self) {
        self.refused = true;
    }

    /// Whether a memory growth was refused since the last call, and resets.
    pub(crate) fn take_refused(&mut self) -> bool {
        std::mem::take(&mut self.refused)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grant = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(grant);
        let allowed = total <= self.memory_cap && maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.memory_used = total;
            self.last_grant = grant;
        } else {
            self.refused = true;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        tracing::debug!("memory growth failed after it was allowed: {error:#}");
        self.memory_used -= std::mem::take(&mut self.last_grant);
        self.refused = true;
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_all_memories_together() {
        let mut l = Limiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap(), "a second memory");
        assert!(!l.memory_growing(30, 50, None).unwrap(), "60 + 50 > 100");
        assert!(l.take_refused());
        assert!(l.memory_growing(30, 40, None).unwrap(), "60 + 40 fits");
        assert!(!l.memory_growing(0, 1, None).unwrap(), "full");
        // A growth that was allowed but failed gives its bytes back.
        let mut l = Limiter::new(100);
        assert!(l.memory_growing(0, 80, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert!(l.take_refused());
        assert!(l.memory_growing(0, 90, None).unwrap());
        // The memory's own maximum still applies.
        assert!(!Limiter::new(100).memory_growing(0, 50, Some(40)).unwrap());
    }

    #[test]
    fn refusal_is_remembered_once() {
        let mut l = Limiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 16, None).unwrap());
        assert!(!l.take_refused());
        assert!(!l.memory_growing(1 << 16, 2 << 20, None).unwrap());
        assert!(l.take_refused());
        assert!(!l.take_refused());
    }
}
