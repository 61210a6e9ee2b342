//! The registry of live tasks: sharded, always on.
//!
//! Every spawned task is bound here (the registry owns one reference) until it completes, so
//! shutdown can find and cancel every task that has not finished, and introspection can list
//! them (asyncio's `all_tasks`). A task maps to a shard by its id; ids are handed out in
//! per-thread blocks, so consecutive spawns spread over the shards and concurrent spawners
//! rarely meet on one lock.
//!
//! Closing is per shard and under the shard's lock: a bind that races `close` either lands
//! before it (and the task is cancelled by the drain that follows) or sees the shard closed
//! (and the spawner cancels the task itself).

use crossbeam_utils::CachePadded;
use slab::Slab;

use super::raw::{RawTask, Task};
use super::Id;
use crate::loom::{lock, Mutex};

pub(crate) struct Registry {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    mask: usize,
}

struct Shard {
    tasks: Slab<Task>,
    closed: bool,
}

impl Registry {
    /// `shards` is rounded up to a power of two.
    pub(crate) fn new(shards: usize) -> Registry {
        let n = shards.max(1).next_power_of_two();
        Registry {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Mutex::new(Shard {
                        tasks: Slab::new(),
                        closed: false,
                    }))
                })
                .collect(),
            mask: n - 1,
        }
    }

    fn shard(&self, id: Id) -> &Mutex<Shard> {
        &self.shards[id.as_u64() as usize & self.mask]
    }

    /// Stores the registry's reference, or hands it back if the registry is closed.
    pub(crate) fn bind(&self, task: Task) -> Result<(), Task> {
        let raw = task.raw();
        let mut shard = lock(self.shard(task.id()));
        if shard.closed {
            return Err(task);
        }
        let key = shard.tasks.insert(task);
        // SAFETY: registry_key is only accessed under this shard's lock, which we hold.
        raw.header().registry_key.with_mut(|k| unsafe { *k = key });
        Ok(())
    }

    /// Takes the registry's reference back from a finished task; `None` if shutdown already
    /// drained it (or it was never bound).
    pub(crate) fn remove(&self, raw: RawTask) -> Option<Task> {
        let header = raw.header();
        let mut shard = lock(self.shard(header.id));
        // SAFETY: registry_key is only accessed under this shard's lock, which we hold.
        let key = header.registry_key.with(|k| unsafe { *k });
        match shard.tasks.get(key) {
            Some(task) if task.raw() == raw => Some(shard.tasks.remove(key)),
            _ => None,
        }
    }

    /// Closes every shard to new tasks and cancels every task still in it. Callable from
    /// several threads at once: each shard is drained by whoever gets it first.
    pub(crate) fn close_and_cancel_all(&self, start: usize) {
        let n = self.shards.len();
        for i in 0..n {
            let drained: Vec<Task> = {
                let mut shard = lock(&self.shards[(start + i) & self.mask]);
                shard.closed = true;
                shard.tasks.drain().collect()
            };
            // Outside the lock: cancelling drops futures, which may spawn (rejected) or
            // complete other tasks (which remove themselves from the registry).
            for task in drained {
                task.shutdown();
            }
        }
    }

    /// Number of live (bound, unfinished) tasks.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).tasks.len()).sum()
    }

    /// Ids, names and spawn locations of the live tasks.
    pub(crate) fn snapshot(&self) -> Vec<super::TaskInfo> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for (_, task) in shard.tasks.iter() {
                let raw = task.raw();
                let header = raw.header();
                let state = header.state.load();
                out.push(super::TaskInfo {
                    id: header.id,
                    name: header.name.as_deref().map(str::to_owned),
                    spawned_at: header.spawned_at,
                    cancelled: state.is_cancelled(),
                });
            }
        }
        out.sort_by_key(|t| t.id);
        out
    }
}
