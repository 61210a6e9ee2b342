//! asyncio's queues: [`Queue`] (FIFO), [`PriorityQueue`] (smallest first, as `heapq`) and
//! [`LifoQueue`], with `task_done`/`join` and Python 3.13's `shutdown`.
//!
//! The queues are shared by reference (wrap one in an `Arc` to share it between tasks).
//!
//! ```
//! use ringleader_sync::queue::Queue;
//! # futures::executor::block_on(async {
//! let q = Queue::new(2);
//! q.put(1).await.unwrap();
//! q.put_nowait(2).unwrap();
//! assert!(q.full());
//! assert_eq!(q.get().await, Ok(1));
//! q.task_done().unwrap();
//! assert_eq!(q.get_nowait(), Ok(2));
//! q.task_done().unwrap();
//! q.join().await; // every item was marked done
//! # });
//! ```
//!
//! A queue of `!Send` items is not `Sync`, so it cannot be shared across threads:
//!
//! ```compile_fail
//! fn assert_sync<T: Sync>(_: &T) {}
//! let q = ringleader_sync::queue::Queue::<std::rc::Rc<u8>>::new(0);
//! assert_sync(&q);
//! ```
//!
//! Python's exceptions map to these errors:
//!
//! | asyncio                          | here                                                   |
//! |----------------------------------|--------------------------------------------------------|
//! | `put_nowait` raises `QueueFull`  | [`TryPutError::Full`], with the item                   |
//! | `get_nowait` raises `QueueEmpty` | [`TryGetError::Empty`]                                 |
//! | `QueueShutDown` from a put       | [`TryPutError::ShutDown`] / [`PutError`], with the item |
//! | `QueueShutDown` from a get       | [`TryGetError::ShutDown`] / [`QueueShutDown`]          |
//! | `task_done` raises `ValueError`  | [`TaskDoneError`]                                      |
//!
//! # Protocol
//!
//! One mutex guards the items, the counters and three waiter lists (`crate::waitlist`):
//! getters, putters and joiners. Wake-ups are issued after the mutex is released.
//!
//! Getters, as asyncio's "wake the longest waiter": an item put while getters wait is
//! *handed* to the longest waiting getter (stored in its waiter entry), so the n-th getter
//! to wait gets the n-th item put, whatever order the woken tasks then run in. Invariant:
//! getters wait only while the container is empty. A handed item still counts in
//! [`qsize`](Queue::qsize) and [`full`](Queue::full) until its getter runs (`handed`), as
//! in asyncio, where the item stays queued until the woken getter takes it; `get_nowait`
//! cannot take it. A getter whose future is dropped after being handed an item gives it
//! back: to the next waiting getter, or else to the front of the queue.
//!
//! `LifoQueue` and `PriorityQueue` hand a *claim* instead of an item: the item is queued
//! and the longest waiting getter may take one queued item (`claimed`) when it runs; it
//! then pops whatever is next out at that time, the last item put or the smallest, as
//! asyncio's woken getter does (`get_nowait` takes only unclaimed items). A dropped getter
//! passes its claim to the next waiting getter, or leaves the item unclaimed.
//!
//! Putters: when room appears the longest waiting putter is woken and the room is
//! *reserved* for it (`put_reserved`, at most one at a time). A putter inserts its item
//! itself when it runs, then wakes the next one if room remains; a newcomer may put only
//! when no putter waits or holds a reservation. So waiting putters' items enter in the
//! order the putters arrived, on any number of threads. A put future dropped before
//! completing never inserted its item (as asyncio: a cancelled `put` puts nothing), and its
//! reservation passes to the next waiting putter.
//!
//! `shutdown(immediate)` (3.13): later puts fail; getters fail once the queue is empty;
//! with `immediate` the queued items are dropped and counted done at once (so `join`
//! returns), and so are items handed to getters that have not run yet (those getters fail
//! with [`QueueShutDown`] and drop the item when they run or are dropped; claimed items
//! were queued and are dropped with the rest). Every waiting
//! getter and putter is woken to recheck.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::task::{Context, Poll};

use crate::loom::{lock, Mutex};
use crate::waitlist::{WaitList, WakeList};

/// [`Queue::get`] on a queue that was shut down and is empty (asyncio's `QueueShutDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShutDown;

impl fmt::Display for QueueShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue shut down")
    }
}

impl std::error::Error for QueueShutDown {}

/// [`Queue::put`] on a queue that was shut down; holds the item back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct PutError<T>(pub T);

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PutError(..)")
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("queue shut down")
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why [`Queue::put_nowait`] failed; both variants hold the item back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TryPutError<T> {
    /// The queue is full (asyncio's `QueueFull`).
    Full(T),
    /// The queue was shut down (asyncio's `QueueShutDown`).
    ShutDown(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(v) | TryPutError::ShutDown(v) => v,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// Whether the queue was shut down.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, TryPutError::ShutDown(_))
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("queue full"),
            TryPutError::ShutDown(_) => f.write_str("queue shut down"),
        }
    }
}

impl<T> std::error::Error for TryPutError<T> {}

/// Why [`Queue::get_nowait`] returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// No item available (asyncio's `QueueEmpty`).
    Empty,
    /// The queue was shut down and is empty (asyncio's `QueueShutDown`).
    ShutDown,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("queue empty"),
            TryGetError::ShutDown => f.write_str("queue shut down"),
        }
    }
}

impl std::error::Error for TryGetError {}

/// [`Queue::task_done`] called more times than items were put (asyncio's `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

/// The order a queue hands items out in.
trait Store<T> {
    /// `true` (FIFO): an item put while getters wait is handed to the longest waiting
    /// getter itself. `false` (LIFO, priority): the item is queued and the getter is handed
    /// a *claim* on one queued item; it pops the item that is next out when it runs, so
    /// it gets the last one in (or the smallest) at that time, as asyncio's woken getter
    /// does.
    const HANDS_ITEMS: bool;
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    /// Puts back an item that `pop` handed out, so that it comes out next again.
    fn unpop(&mut self, item: T);
    fn len(&self) -> usize;
}

struct Fifo<T>(VecDeque<T>);
struct Lifo<T>(Vec<T>);
struct Heap<T: Ord>(BinaryHeap<Reverse<T>>);

impl<T> Store<T> for Fifo<T> {
    const HANDS_ITEMS: bool = true;
    fn push(&mut self, item: T) {
        self.0.push_back(item)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn unpop(&mut self, item: T) {
        self.0.push_front(item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Store<T> for Lifo<T> {
    const HANDS_ITEMS: bool = false;
    fn push(&mut self, item: T) {
        self.0.push(item)
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn unpop(&mut self, item: T) {
        self.0.push(item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Store<T> for Heap<T> {
    const HANDS_ITEMS: bool = false;
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item))
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(v)| v)
    }
    fn unpop(&mut self, item: T) {
        self.0.push(Reverse(item))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a notifier left in a putter's entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wake {
    /// Still queued.
    Waiting,
    /// Room is reserved for it.
    Reserved,
    /// Woken by `shutdown`: recheck.
    Recheck,
}

/// What a notifier left in a getter's entry.
enum Handed<T> {
    /// Still queued.
    Waiting,
    /// An item was handed to it (FIFO).
    Item(T),
    /// One queued item is claimed for it (LIFO, priority): it pops the next one out.
    Claim,
    /// Woken by `shutdown`: recheck.
    Recheck,
}

struct State<T, S> {
    items: S,
    /// 0: unbounded.
    maxsize: usize,
    unfinished: usize,
    shutdown: bool,
    /// `shutdown(immediate = true)` ran: items handed to getters are void.
    voided: bool,
    getters: WaitList<Handed<T>>,
    putters: WaitList<Wake>,
    joiners: WaitList<()>,
    /// Items handed to notified getters that have not taken them yet (FIFO).
    handed: usize,
    /// Queued items claimed by notified getters that have not taken them yet (LIFO,
    /// priority); at most `items.len()`.
    claimed: usize,
    /// Room promised to notified putters that have not used it yet.
    put_reserved: usize,
}

impl<T, S: Store<T>> State<T, S> {
    /// asyncio's `qsize()`: queued items, handed ones included.
    fn qsize(&self) -> usize {
        self.items.len() + self.handed
    }

    /// Whether there is room beyond what is reserved.
    fn has_room(&self) -> bool {
        self.maxsize == 0 || self.qsize() + self.put_reserved < self.maxsize
    }

    /// Whether a newcomer may put an item now: only if no putter waits or holds a
    /// reservation, so items enter in the order their putters arrived.
    fn room_free(&self) -> bool {
        self.putters.is_empty() && self.put_reserved == 0 && self.has_room()
    }

    /// Reserves room for the longest waiting putter, one at a time: the next is woken when
    /// this one has put its item (or given up), so waiting putters' items enter in order.
    fn wake_putters(&mut self, wakes: &mut WakeList) {
        if self.put_reserved == 0
            && self.has_room()
            && self
                .putters
                .notify_front(wakes, |w| *w = Wake::Reserved)
                .is_some()
        {
            self.put_reserved = 1;
        }
    }

    /// Hands `item` to the longest waiting getter, or queues it with `queue`. For a store
    /// that does not hand items, queues it and gives the longest waiting getter a claim.
    fn hand_or(&mut self, item: T, wakes: &mut WakeList, queue: impl FnOnce(&mut S, T)) {
        if !S::HANDS_ITEMS {
            queue(&mut self.items, item);
            self.claim_for_next_getter(wakes);
            return;
        }
        let mut item = Some(item);
        let handed = self.getters.notify_front(wakes, |slot| {
            if let Some(v) = item.take() {
                *slot = Handed::Item(v);
            }
        });
        match (handed, item) {
            (Some(_), None) => self.handed += 1,
            (_, Some(v)) => queue(&mut self.items, v),
            (None, None) => {}
        }
    }

    /// Inserts a new item (room already checked or reserved).
    fn insert(&mut self, item: T, wakes: &mut WakeList) {
        self.unfinished += 1;
        self.hand_or(item, wakes, S::push);
    }

    /// Gives the longest waiting getter, if any, a claim on one queued item.
    fn claim_for_next_getter(&mut self, wakes: &mut WakeList) {
        if self
            .getters
            .notify_front(wakes, |slot| *slot = Handed::Claim)
            .is_some()
        {
            self.claimed += 1;
        }
    }

    /// Takes a queued item not claimed by a notified getter (for a newcomer: getters wait
    /// only while every queued item is claimed).
    fn take(&mut self, wakes: &mut WakeList) -> Option<T> {
        if self.items.len() <= self.claimed {
            return None;
        }
        let item = self.items.pop();
        if item.is_some() {
            self.wake_putters(wakes);
        }
        item
    }
}

/// The queue shared by the three public types.
struct Core<T, S> {
    state: Mutex<State<T, S>>,
}

impl<T, S: Store<T>> Core<T, S> {
    fn new(maxsize: usize, items: S) -> Self {
        Core {
            state: Mutex::new(State {
                items,
                maxsize,
                unfinished: 0,
                shutdown: false,
                voided: false,
                getters: WaitList::new(),
                putters: WaitList::new(),
                joiners: WaitList::new(),
                handed: 0,
                claimed: 0,
                put_reserved: 0,
            }),
        }
    }

    fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        if st.shutdown {
            return Err(TryPutError::ShutDown(item));
        }
        if !st.room_free() {
            return Err(TryPutError::Full(item));
        }
        st.insert(item, &mut wakes);
        drop(st);
        wakes.wake_all();
        Ok(())
    }

    fn get_nowait(&self) -> Result<T, TryGetError> {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        if let Some(item) = st.take(&mut wakes) {
            drop(st);
            wakes.wake_all();
            return Ok(item);
        }
        if st.shutdown && st.qsize() == 0 {
            Err(TryGetError::ShutDown)
        } else {
            Err(TryGetError::Empty)
        }
    }

    fn poll_get(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
    ) -> Poll<Result<T, QueueShutDown>> {
        let coop = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        if let Some(k) = *key {
            if st.getters.is_queued(k) {
                st.getters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            *key = None;
            let handed = st.getters.remove(k).data;
            if let Handed::Claim = handed {
                if st.voided {
                    // The claimed item was dropped by `shutdown(immediate)`.
                    coop.made_progress();
                    return Poll::Ready(Err(QueueShutDown));
                }
                st.claimed -= 1;
                let item = st.items.pop().expect("a claimed item is queued");
                st.wake_putters(&mut wakes);
                drop(st);
                wakes.wake_all();
                coop.made_progress();
                return Poll::Ready(Ok(item));
            }
            if let Handed::Item(item) = handed {
                let r = if st.voided {
                    // Dropped by `shutdown(immediate)` (and already counted done).
                    Err(item)
                } else {
                    st.handed -= 1;
                    st.wake_putters(&mut wakes);
                    Ok(item)
                };
                drop(st);
                wakes.wake_all();
                coop.made_progress();
                return Poll::Ready(r.map_err(|item| {
                    drop(item);
                    QueueShutDown
                }));
            }
        }
        if let Some(item) = st.take(&mut wakes) {
            drop(st);
            wakes.wake_all();
            coop.made_progress();
            return Poll::Ready(Ok(item));
        }
        if st.shutdown {
            coop.made_progress();
            return Poll::Ready(Err(QueueShutDown));
        }
        *key = Some(
            st.getters
                .push_back(Handed::Waiting, Some(cx.waker().clone())),
        );
        Poll::Pending
    }

    fn cancel_get(&self, key: usize) {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        let mut void = None;
        match st.getters.remove(key).data {
            Handed::Item(item) => {
                if st.voided {
                    void = Some(item);
                } else {
                    // Give the item back: to the next getter, or to the front of the queue.
                    st.handed -= 1;
                    st.hand_or(item, &mut wakes, S::unpop);
                }
            }
            Handed::Claim if !st.voided => {
                // Pass the claim on; with nobody waiting the item is simply unclaimed.
                st.claimed -= 1;
                st.claim_for_next_getter(&mut wakes);
            }
            _ => {}
        }
        drop(st);
        wakes.wake_all();
        drop(void);
    }

    fn poll_put(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<usize>,
        item: &mut Option<T>,
    ) -> Poll<Result<(), PutError<T>>> {
        let Some(value) = item.take() else {
            return Poll::Ready(Ok(()));
        };
        let coop = match ringleader_coop::poll_proceed(cx) {
            Poll::Ready(c) => c,
            Poll::Pending => {
                *item = Some(value);
                return Poll::Pending;
            }
        };
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        let mut reserved = false;
        if let Some(k) = *key {
            if st.putters.is_queued(k) {
                st.putters.set_waker(k, cx.waker());
                *item = Some(value);
                return Poll::Pending;
            }
            *key = None;
            if st.putters.remove(k).data == Wake::Reserved {
                st.put_reserved -= 1;
                reserved = true;
            }
        }
        if st.shutdown {
            drop(st);
            coop.made_progress();
            return Poll::Ready(Err(PutError(value)));
        }
        if reserved || st.room_free() {
            st.insert(value, &mut wakes);
            // The next waiting putter, if room remains.
            st.wake_putters(&mut wakes);
            drop(st);
            wakes.wake_all();
            coop.made_progress();
            return Poll::Ready(Ok(()));
        }
        *key = Some(
            st.putters
                .push_back(Wake::Waiting, Some(cx.waker().clone())),
        );
        *item = Some(value);
        Poll::Pending
    }

    fn cancel_put(&self, key: usize) {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        if st.putters.remove(key).data == Wake::Reserved {
            st.put_reserved -= 1;
            st.wake_putters(&mut wakes);
        }
        drop(st);
        wakes.wake_all();
    }

    fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        if st.unfinished == 0 {
            return Err(TaskDoneError);
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            st.joiners.notify_all(&mut wakes, |_| {});
        }
        drop(st);
        wakes.wake_all();
        Ok(())
    }

    fn poll_join(&self, cx: &mut Context<'_>, key: &mut Option<usize>) -> Poll<()> {
        let mut st = lock(&self.state);
        if let Some(k) = *key {
            if st.joiners.is_queued(k) {
                st.joiners.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            // Notified: the count reached zero after we started waiting (asyncio's
            // `Event.wait` returns even if a put raised it again since).
            st.joiners.remove(k);
            *key = None;
            return Poll::Ready(());
        }
        if st.unfinished == 0 {
            return Poll::Ready(());
        }
        *key = Some(st.joiners.push_back((), Some(cx.waker().clone())));
        Poll::Pending
    }

    fn cancel_join(&self, key: usize) {
        lock(&self.state).joiners.remove(key);
    }

    fn shutdown(&self, immediate: bool) {
        let mut wakes = WakeList::new();
        let mut dropped = Vec::new();
        let mut st = lock(&self.state);
        st.shutdown = true;
        if immediate {
            while let Some(item) = st.items.pop() {
                dropped.push(item);
                st.unfinished = st.unfinished.saturating_sub(1);
            }
            // Items handed to getters that have not run yet are drained too.
            st.unfinished = st.unfinished.saturating_sub(st.handed);
            st.handed = 0;
            // Claimed items were queued, so they are counted and dropped above.
            st.claimed = 0;
            st.voided = true;
            if st.unfinished == 0 {
                st.joiners.notify_all(&mut wakes, |_| {});
            }
        }
        st.getters.notify_all(&mut wakes, |w| *w = Handed::Recheck);
        st.putters.notify_all(&mut wakes, |w| *w = Wake::Recheck);
        drop(st);
        wakes.wake_all();
        // Items are dropped outside the lock: their destructors may use the queue.
        drop(dropped);
    }
}

/// The future of a `get`: frees its waiter entry (giving back an item handed to it) when
/// dropped.
struct GetFut<'a, T, S: Store<T>> {
    core: &'a Core<T, S>,
    key: Option<usize>,
}

impl<T, S: Store<T>> Drop for GetFut<'_, T, S> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.core.cancel_get(k);
        }
    }
}

struct PutFut<'a, T, S: Store<T>> {
    core: &'a Core<T, S>,
    key: Option<usize>,
    item: Option<T>,
}

impl<T, S: Store<T>> Drop for PutFut<'_, T, S> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.core.cancel_put(k);
        }
    }
}

struct JoinFut<'a, T, S: Store<T>> {
    core: &'a Core<T, S>,
    key: Option<usize>,
}

impl<T, S: Store<T>> Drop for JoinFut<'_, T, S> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.core.cancel_join(k);
        }
    }
}

macro_rules! queue_type {
    (
        $(#[$doc:meta])*
        $name:ident, [$($bound:tt)*], $store:ident, $new_store:expr, $order:literal
    ) => {
        $(#[$doc])*
        pub struct $name<T: $($bound)*> {
            core: Core<T, $store<T>>,
        }

        impl<T: $($bound)*> $name<T> {
            #[doc = concat!("A queue holding at most `maxsize` items; 0 means unbounded (asyncio's `maxsize <= 0`). Items come out ", $order, ".")]
            pub fn new(maxsize: usize) -> Self {
                $name {
                    core: Core::new(maxsize, $new_store),
                }
            }

            /// An unbounded queue, as `new(0)`.
            pub fn unbounded() -> Self {
                Self::new(0)
            }

            /// Items in the queue now (asyncio's `qsize()`), counting items already handed
            /// to woken getters that have not run yet.
            pub fn qsize(&self) -> usize {
                lock(&self.core.state).qsize()
            }

            /// Whether the queue holds no item.
            pub fn empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Whether the queue holds `maxsize` items (never, if unbounded).
            pub fn full(&self) -> bool {
                let st = lock(&self.core.state);
                st.maxsize > 0 && st.qsize() >= st.maxsize
            }

            /// The bound given to `new` (0: unbounded).
            pub fn maxsize(&self) -> usize {
                lock(&self.core.state).maxsize
            }

            /// Puts an item without waiting.
            ///
            /// # Errors
            /// [`TryPutError::Full`] when full, or while earlier putters are still waiting
            /// for room (they go first); [`TryPutError::ShutDown`] after
            /// [`shutdown`](Self::shutdown). Both give the item back.
            pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
                self.core.put_nowait(item)
            }

            /// Takes an item without waiting.
            ///
            /// # Errors
            /// [`TryGetError::Empty`] when no item is available (items already handed to,
            /// or claimed by, woken getters do not count: a newcomer never overtakes a
            /// waiting getter); [`TryGetError::ShutDown`] when the queue was shut down and
            /// is empty.
            pub fn get_nowait(&self) -> Result<T, TryGetError> {
                self.core.get_nowait()
            }

            /// Puts an item, waiting for room. Waiting putters are served in arrival order.
            ///
            /// # Errors
            /// [`PutError`] with the item if the queue is (or gets) shut down before the
            /// item goes in.
            ///
            /// # Cancel safety
            /// If the future is dropped before completing, the item was not put and is
            /// dropped with it; room reserved for it passes to the next waiting putter.
            pub async fn put(&self, item: T) -> Result<(), PutError<T>> {
                let mut f = PutFut {
                    core: &self.core,
                    key: None,
                    item: Some(item),
                };
                std::future::poll_fn(|cx| {
                    let PutFut { core, key, item } = &mut f;
                    core.poll_put(cx, key, item)
                })
                .await
            }

            /// Takes an item, waiting for one. Waiting getters are served in arrival order.
            ///
            /// # Errors
            /// [`QueueShutDown`] if the queue is shut down and empty (at once after an
            /// immediate shutdown).
            ///
            /// # Cancel safety
            /// Cancel safe: an item handed to a future that is dropped before returning it
            /// goes to the next waiting getter, or back to the front of the queue.
            pub async fn get(&self) -> Result<T, QueueShutDown> {
                let mut f = GetFut {
                    core: &self.core,
                    key: None,
                };
                std::future::poll_fn(|cx| {
                    let GetFut { core, key } = &mut f;
                    core.poll_get(cx, key)
                })
                .await
            }

            /// Marks one item taken earlier as processed (for [`join`](Self::join)).
            ///
            /// # Errors
            /// [`TaskDoneError`] if called more times than items were put (asyncio's
            /// `ValueError`); the count is unchanged.
            pub fn task_done(&self) -> Result<(), TaskDoneError> {
                self.core.task_done()
            }

            /// Waits until every item put has been marked done with
            /// [`task_done`](Self::task_done) (or dropped by an immediate shutdown).
            ///
            /// # Cancel safety
            /// Cancel safe: it only watches.
            pub async fn join(&self) {
                let mut f = JoinFut {
                    core: &self.core,
                    key: None,
                };
                std::future::poll_fn(|cx| {
                    let JoinFut { core, key } = &mut f;
                    core.poll_join(cx, key)
                })
                .await
            }

            /// Items put and not yet marked done.
            pub fn unfinished_tasks(&self) -> usize {
                lock(&self.core.state).unfinished
            }

            /// Shuts the queue down (Python 3.13): puts fail from now on and waiting putters
            /// get their items back; gets fail once the queue is empty. With `immediate`,
            /// the items still queued are dropped and counted done (so `join` returns) and
            /// waiting getters fail at once.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }

            /// Whether [`shutdown`](Self::shutdown) was called.
            pub fn is_shutdown(&self) -> bool {
                lock(&self.core.state).shutdown
            }
        }

        impl<T: $($bound)*> Default for $name<T> {
            /// An unbounded queue.
            fn default() -> Self {
                Self::new(0)
            }
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let st = lock(&self.core.state);
                f.debug_struct(stringify!($name))
                    .field("maxsize", &st.maxsize)
                    .field("qsize", &st.qsize())
                    .field("unfinished_tasks", &st.unfinished)
                    .field("shutdown", &st.shutdown)
                    .finish()
            }
        }
    };
}

queue_type!(
    /// asyncio's `Queue`: first in, first out.
    Queue, [Sized], Fifo, Fifo(VecDeque::new()), "first in, first out"
);

queue_type!(
    /// asyncio's `PriorityQueue`: the smallest item comes out first (as `heapq`); equal
    /// items come out in no particular order. Use `(priority, seq, item)` tuples for
    /// stable order. Comparisons run under the queue's lock: an `Ord` impl must not use
    /// the queue.
    PriorityQueue, [Ord], Heap, Heap(BinaryHeap::new()), "smallest first"
);

queue_type!(
    /// asyncio's `LifoQueue`: last in, first out.
    LifoQueue, [Sized], Lifo, Lifo(Vec::new()), "last in, first out"
);
