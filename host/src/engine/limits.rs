//! The per-store resource limiter: wasmtime's [`StoreLimits`] plus a flag
//! that remembers whether a memory growth was refused, so that a trap that
//! follows (a guest whose allocation failed aborts) is reported as the
//! memory cap, not as a bug.

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
    refused: bool,
}

impl Limiter {
    /// A limiter capping each linear memory at `memory_bytes`.
    pub(crate) fn new(memory_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .instances(MAX_INSTANCES)
            .tables(MAX_TABLES)
            .memories(MAX_MEMORIES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(false)
            .build();
        Limiter {
            inner,
            refused: false,
        }
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
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
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
    fn refusal_is_remembered_once() {
        let mut l = Limiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 16, None).unwrap());
        assert!(!l.take_refused());
        assert!(!l.memory_growing(1 << 16, 2 << 20, None).unwrap());
        assert!(l.take_refused());
        assert!(!l.take_refused());
    }
}
