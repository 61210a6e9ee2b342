//! asyncio's `StreamWriter` (with its transport's write buffer) over a socket's send side.
//!
//! # Protocol
//! One lock (a [`SpinLock`], see its module for why not a `Mutex`) guards [`State`].
//! Handles: the [`StreamWriter`] (writes, drains, closes) and at most one flush task
//! (`task` says whether one exists and whether it is parked).
//! - `write` appends to `buf` and, unless `flushing` is already set, sets it and hands the
//!   data to the flush task: wakes it if it is parked, spawns it if none exists. The task
//!   first runs once the writing task yields (awaits something not ready): a spawned or
//!   woken task goes to the worker's LIFO slot, behind the running task. So everything
//!   written in one go (every echo of a batch of received lines) leaves in one send.
//!   asyncio's transport instead tries a `send(2)` in every `write`: a system call per
//!   write, which made the `lines` benchmark (batches of 100 lines) ~15x slower when this
//!   writer did the same.
//! - The flush task swaps `buf` out (its length moves to `in_flight`), sends it through the
//!   ring with the lock released, and repeats until `buf` is empty or a send fails; then it
//!   clears `flushing`, performs a pending `write_eof` / `close`, and wakes the waiters
//!   (after every round too). It then parks (`task = Parked(waker)`) for the next write,
//!   which costs a wake instead of a spawn, or exits (`task = None`) once nothing can
//!   be written any more: the writer dropped, closed, shut for writing, or failed. Whoever
//!   makes that so while the task is parked wakes it (the guard's release does), so a
//!   parked task never holds the fd of a finished writer.
//! - `paused` is asyncio's flow control: set when `buf + in_flight` rises above the
//!   high-water mark, cleared when it falls to the low-water mark or below. `drain` waits
//!   while `paused`.
//! - The first send error is kept in `error`; later writes are dropped and every `drain`
//!   returns it. A send error also sets `lost`: the writer then counts as closing and
//!   closed (`is_closing`, `wait_closed`), as asyncio's transport closes itself. A writer
//!   never panics on a hung-up peer.
//! - `write_eof` and `close` happen once nothing is buffered: at once if nothing is, else by
//!   the flush task when it empties the buffer (or fails). `close` shuts the socket down in
//!   both directions (the reader sees end of stream); the fd itself closes when the reader,
//!   the writer and any flush task have dropped it.
//!
//! # Hosted writes (a server handler's own writer)
//! The lock costs one atomic read-modify-write per `write`, which on the `lines` benchmark
//! was the largest user-space cost per line (a line server writes once per line). A task
//! that owns a writer can *host* it ([`Host::enter`] around each of its polls; the server
//! does so for each handler's writer): during the poll, the task's `write`s on this thread
//! append to `Hosted::staged`, a buffer only this poll touches (reached through a thread
//! local, so no atomic operation), and the poll's end hands the staged bytes to `buf` under
//! one lock, which then kicks the flush task as a write would. Since the flush task runs
//! once the writing task yields, it sees the same bytes in the same order as before.
//! - The first staged write of a poll *begins* hosting under the lock: it sets
//!   `State::hosted` and takes `room`, what may be staged before the high-water mark could
//!   be crossed (`high - size`), so staged writes never need `paused`.
//! - While `hosted`, writes from elsewhere (another task sharing the writer) go to
//!   `State::side`, appended after the staged bytes at the hand-over: each staged write
//!   came before, or concurrently with, every side write (see the next point), so that
//!   order is one the tasks could have seen. `settle` (a `write_eof` or `close` to
//!   perform) and `flush` wait for the hand-over.
//! - `attention` is also set while `side` is non-empty or a close or `write_eof` is
//!   pending. A staged write first loads it (acquire): if set, it hands the staged bytes
//!   over and takes the locked path. A write, close or error that happened before a
//!   staged write (in the happens-before order: the other task signalled the host after
//!   it) released `attention` before that signal, so the host sees it: a side write is
//!   never placed after a staged write that followed it, and a write that follows a close
//!   fails as without hosting.
//! - Every other method of the writer, called in a hosted poll, hands the staged bytes
//!   over first (through `StreamWriter::lock`), so each sees all writes made before it.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use ringleader_runtime::driver::{ops, SharedFd};
use socket2::SockRef;

use super::spin::{SpinGuard, SpinLock};
use super::{local_addr_of, peer_addr_of, Family, StreamAddr};

/// asyncio's default high-water mark of a transport's write buffer: 64 KiB.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// asyncio's default low-water mark: a quarter of the high one, 16 KiB.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// What a write must do after releasing the lock for its data to be sent.
enum Kick {
    Nothing,
    Spawn,
    Wake(Waker),
}

/// The largest emptied buffer kept for reuse by the next flush round.
const KEEP_SPARE: usize = 1 << 20;

struct Shared {
    fd: SharedFd,
    family: Family,
    state: SpinLock<State>,
    /// `paused || error.is_some() || closing || eof_requested || !side.is_empty()`,
    /// refreshed whenever a [`Guard`] is released: lets `drain` return without locking in
    /// the common case (nothing to wait for), and tells a staged write to take the locked
    /// path (see the module's hosted writes).
    attention: AtomicBool,
}

/// The locked state; releasing it refreshes `Shared::attention` and then (with the lock
/// released) wakes the waiters that [`State::wake_all`] marked.
struct Guard<'a> {
    shared: &'a Arc<Shared>,
    st: ManuallyDrop<SpinGuard<'a, State>>,
    /// What to do for the flush task once the lock is released (a hand-over's kick).
    kick: Kick,
}

impl std::ops::Deref for Guard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.st
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let attention = self.st.needs_attention();
        // Stored only on a change: no write to a shared cache line on every `write`.
        if self.shared.attention.load(Ordering::Relaxed) != attention {
            self.shared.attention.store(attention, Ordering::Release);
        }
        let mut wake = if std::mem::take(&mut self.st.wake) {
            std::mem::take(&mut self.st.waiters)
        } else {
            Vec::new()
        };
        // A parked flush task that will never have work again (closed, failed, writer
        // dropped) is woken to exit, so it does not hold the fd.
        if matches!(self.st.task, Task::Parked(_)) && !self.st.flushing && self.st.task_done() {
            if let Task::Parked(waker) = std::mem::replace(&mut self.st.task, Task::Running) {
                wake.push(waker);
            }
        }
        // SAFETY: `st` is not used again: this is the guard's drop, and the field is
        // dropped here only (ManuallyDrop has no drop of its own).
        unsafe { ManuallyDrop::drop(&mut self.st) };
        // Woken outside the lock: a waker's code never runs under it.
        for w in wake {
            w.wake();
        }
        follow(
            self.shared,
            std::mem::replace(&mut self.kick, Kick::Nothing),
        );
    }
}

/// Where the flush task stands.
#[derive(Default)]
enum Task {
    /// None exists: the next write that needs one spawns it.
    #[default]
    None,
    /// It waits for work: waking this gives it some.
    Parked(Waker),
    /// It runs, or was woken and will run; it looks at the buffer before it parks.
    Running,
}

#[derive(Default)]
struct State {
    /// Bytes waiting for the flush task.
    buf: Vec<u8>,
    /// An emptied buffer kept for the next swap.
    spare: Vec<u8>,
    /// Bytes the flush task is sending now.
    in_flight: usize,
    flushing: bool,
    /// The flush task, if one exists (see the module's protocol).
    task: Task,
    /// The [`StreamWriter`] was dropped: the flush task exits once the buffer is sent.
    writer_gone: bool,
    paused: bool,
    high: usize,
    low: usize,
    error: Option<io::Error>,
    /// A send failed: the connection is gone (asyncio's transport closes itself then), so
    /// the writer counts as closing and closed.
    lost: bool,
    /// A write came after `close` / `write_eof`: it was dropped, and `drain` / `flush`
    /// report `BrokenPipe`. What was written before is still sent.
    late_write: bool,
    eof_requested: bool,
    eof_done: bool,
    closing: bool,
    closed: bool,
    waiters: Vec<Waker>,
    /// The waiters are to be woken when the lock is released (see [`Guard`]).
    wake: bool,
    /// A host stages writes now (see the module's hosted writes).
    hosted: bool,
    /// Bytes written by others while `hosted`: they follow the staged bytes.
    side: Vec<u8>,
}

impl State {
    /// Marks data as handed to the flush task; what the caller must do once the lock is
    /// released to get it sent.
    #[inline]
    fn kick(&mut self) -> Kick {
        if std::mem::replace(&mut self.flushing, true) {
            return Kick::Nothing;
        }
        match std::mem::replace(&mut self.task, Task::Running) {
            Task::None => Kick::Spawn,
            Task::Parked(waker) => Kick::Wake(waker),
            Task::Running => Kick::Nothing,
        }
    }

    /// What `Shared::attention` is to say.
    #[inline]
    fn needs_attention(&self) -> bool {
        self.paused
            || self.error.is_some()
            || self.closing
            || self.eof_requested
            || !self.side.is_empty()
    }

    /// The flush task has nothing left to do, ever: it may exit.
    fn task_done(&self) -> bool {
        self.writer_gone || self.closed || self.eof_done || self.error.is_some()
    }

    #[inline]
    fn size(&self) -> usize {
        self.buf.len() + self.in_flight + self.side.len()
    }

    fn fail(&mut self, err: io::Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
        self.buf.clear();
        self.side.clear();
        self.paused = false;
    }

    /// A send failed: the error is kept and the connection counts as lost.
    fn lose(&mut self, err: io::Error) {
        self.fail(err);
        self.lost = true;
    }

    fn error(&self) -> Option<io::Error> {
        self.error.as_ref().map(|e| match e.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(e.kind(), e.to_string()),
        })
    }

    /// Wakes every waiter once the lock is released.
    fn wake_all(&mut self) {
        if !self.waiters.is_empty() {
            self.wake = true;
        }
    }

    fn add_waiter(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    /// Ends a close whose buffer can no longer be sent (a send failed): the socket is shut
    /// down all the same, so the peer and this side's reader see the end.
    fn close_now(&mut self, fd: &SharedFd) {
        if !self.closed {
            let _ = SockRef::from(&**fd).shutdown(Shutdown::Both);
            self.closed = true;
            self.eof_done = true;
        }
    }

    /// Performs a pending `write_eof` / `close` once nothing is left to send.
    fn settle(&mut self, fd: &SharedFd) {
        if self.flushing || self.hosted || !self.buf.is_empty() {
            return;
        }
        let sock = SockRef::from(&**fd);
        if self.closing && !self.closed {
            // Errors (the peer already gone: NotConnected) change nothing for a close.
            let _ = sock.shutdown(Shutdown::Both);
            self.closed = true;
            self.eof_done = true;
            self.wake_all();
        } else if self.eof_requested && !self.eof_done {
            self.eof_done = true;
            if let Err(e) = sock.shutdown(Shutdown::Write) {
                if e.kind() != io::ErrorKind::NotConnected {
                    self.fail(e);
                }
            }
            self.wake_all();
        }
    }
}

/// A poll's staged writes (see the module's hosted writes): lives in [`HOST`] during the
/// poll of the task that hosts the writer, in its [`Host`] between polls.
struct Hosted {
    shared: Arc<Shared>,
    stage: Stage,
}

/// The staged bytes of a hosted poll.
#[derive(Default)]
struct Stage {
    staged: Vec<u8>,
    /// Bytes that may still be staged in this poll without crossing the high-water mark.
    room: usize,
    /// This poll began hosting: `State::hosted` is set and `staged` is to be handed over.
    active: bool,
}

impl Stage {
    /// Hands the staged bytes (then the side writes) to the flush task's buffer and ends the
    /// hosting; what to do for the flush task once the lock is released.
    fn absorb(&mut self, st: &mut State, fd: &SharedFd) -> Kick {
        self.merge(st);
        let kick = if st.buf.is_empty() {
            Kick::Nothing
        } else {
            st.kick()
        };
        Self::settle(st, fd);
        kick
    }

    /// Moves the staged bytes, then the side writes, into `buf` and ends the hosting.
    fn merge(&mut self, st: &mut State) {
        self.active = false;
        self.room = 0;
        st.hosted = false;
        if st.error.is_none() {
            if st.buf.is_empty() {
                // The usual case (the previous batch is sent): no copy; `staged` keeps the
                // emptied buffer for the next poll.
                std::mem::swap(&mut st.buf, &mut self.staged);
            } else {
                st.buf.extend_from_slice(&self.staged);
            }
            st.buf.extend_from_slice(&st.side);
        }
        self.staged.clear();
        st.side.clear();
        if st.size() > st.high {
            st.paused = true;
        }
    }

    /// After a merge: a close or `write_eof` asked while hosted, and `flush` waiters.
    fn settle(st: &mut State, fd: &SharedFd) {
        st.settle(fd);
        st.wake_all();
    }
}

/// The end of a hosted poll: hands the staged bytes over and, when no flush is under way,
/// sends them at once with one non-blocking `send(2)` (the writing task has yielded, which
/// is when the flush task would have run), sparing the flush task's wake-up, poll and
/// park. What the socket does not take at once goes to the flush task, ahead of anything
/// written meanwhile.
fn hand_over(shared: &Arc<Shared>, stage: &mut Stage) {
    let chunk = {
        let mut st = lock(shared);
        stage.merge(&mut st);
        if st.buf.is_empty() || st.flushing {
            st.kick = if st.buf.is_empty() {
                Kick::Nothing
            } else {
                st.kick()
            };
            Stage::settle(&mut st, &shared.fd);
            return;
        }
        // No flush under way, so the flush task is parked or absent and leaves `buf` alone
        // until it is kicked; `flushing` keeps other writers from kicking it meanwhile.
        st.flushing = true;
        let spare = std::mem::take(&mut st.spare);
        let chunk = std::mem::replace(&mut st.buf, spare);
        st.in_flight = chunk.len();
        Stage::settle(&mut st, &shared.fd);
        chunk
    };
    let res = ops::send_nonblocking(shared.fd.as_raw_fd(), &chunk);
    let mut st = lock(shared);
    st.in_flight = 0;
    let mut chunk = chunk;
    match res {
        Ok(n) if n == chunk.len() => {}
        Ok(n) if st.error.is_none() => {
            // The rest goes first, then what others wrote meanwhile.
            chunk.drain(..n);
            chunk.extend_from_slice(&st.buf);
            std::mem::swap(&mut st.buf, &mut chunk);
        }
        // The writer failed meanwhile (a write after a close): the rest is dropped, as the
        // failure dropped the buffer.
        Ok(_) => {}
        Err(e) => st.lose(e),
    }
    chunk.clear();
    if chunk.capacity() <= KEEP_SPARE && st.spare.capacity() < chunk.capacity() {
        st.spare = chunk;
    }
    if st.error.is_none() && !st.buf.is_empty() {
        // Still flushing: the flush task takes over (through the ring if the socket is full).
        st.kick = match std::mem::replace(&mut st.task, Task::Running) {
            Task::None => Kick::Spawn,
            Task::Parked(waker) => Kick::Wake(waker),
            Task::Running => Kick::Nothing,
        };
        if st.size() <= st.low {
            st.paused = false;
        }
    } else {
        // As the flush task when it empties the buffer.
        st.flushing = false;
        st.paused = false;
        if st.error.is_some() && st.closing {
            st.close_now(&shared.fd);
        }
        st.settle(&shared.fd);
    }
    st.wake_all();
}

thread_local! {
    /// The hosted writer of the poll running on this thread, if any (see [`Host::enter`]).
    static HOST: RefCell<Option<Hosted>> = const { RefCell::new(None) };
}

/// The right to host a writer's writes during the polls of the task that owns it (see the
/// module's hosted writes); from [`StreamWriter::host`].
pub(crate) struct Host {
    slot: Option<Hosted>,
}

impl Host {
    /// Runs `poll` (one poll of the hosting task) with this writer's writes on this thread
    /// staged; hands them over when it returns (or unwinds).
    pub(crate) fn enter<R>(&mut self, poll: impl FnOnce() -> R) -> R {
        /// Restores the thread's previous host and hands the staged bytes over.
        struct Exit<'a> {
            host: &'a mut Host,
            previous: Option<Hosted>,
        }
        impl Drop for Exit<'_> {
            fn drop(&mut self) {
                let previous = self.previous.take();
                let mine = HOST
                    .try_with(|h| match h.try_borrow_mut() {
                        Ok(mut slot) => std::mem::replace(&mut *slot, previous),
                        Err(_) => None,
                    })
                    .ok()
                    .flatten();
                let Some(mut hosted) = mine else {
                    return;
                };
                if hosted.stage.active {
                    hand_over(&hosted.shared, &mut hosted.stage);
                }
                self.host.slot = Some(hosted);
            }
        }
        let Some(mine) = self.slot.take() else {
            return poll();
        };
        let mut mine = Some(mine);
        let previous = HOST.try_with(|h| match h.try_borrow_mut() {
            Ok(mut slot) => Some(std::mem::replace(&mut *slot, mine.take())),
            Err(_) => None,
        });
        let Ok(Some(previous)) = previous else {
            // The slot is borrowed (never expected: no writer method calls out while it
            // borrows it) or gone (the thread is exiting): no hosting, writes take the lock.
            self.slot = mine;
            return poll();
        };
        let _exit = Exit {
            host: self,
            previous,
        };
        poll()
    }
}

/// The sending side of a stream (asyncio's `StreamWriter` together with its transport's
/// write buffer), from [`open_connection`](super::open_connection),
/// [`start_server`](super::start_server)'s handler or [`split`](super::split).
///
/// Methods take `&self` (the state is behind a lock), so one writer can be shared by
/// several tasks in an `Arc`, as a chat server's broadcast does.
///
/// # Writing and draining
/// [`write`](Self::write) never waits: it buffers, and a background flush (a small task
/// of the writer's, spawned by its first write and parked between writes until the writer
/// is dropped or closed) sends the buffer as soon as the writing task yields (awaits
/// something not ready). So writes made in one go leave in one send, and nothing written
/// stays behind even if `drain` is never called. [`drain`](Self::drain) is the
/// backpressure: it waits while the buffer is above the high-water mark (default
/// [`DEFAULT_HIGH_WATER`], 64 KiB) until it is at or below the low-water mark
/// ([`DEFAULT_LOW_WATER`], 16 KiB), and reports a send error. As in asyncio, call it after
/// writing: `writer.write(data); writer.drain().await?`.
///
/// The writer a [`start_server`](super::start_server) handler is given is cheaper still
/// in its handler's task: the writes of one poll of that task are collected without
/// taking the lock and sent when the poll ends, with one `send(2)` made by the task itself
/// when no flush is under way. What the program can observe is the same (order against
/// writes from other tasks, `drain`, `flush`, `close`), except that
/// [`write_buffer_size`](Self::write_buffer_size) asked from another task does not count
/// the bytes the handler's running poll has written so far.
///
/// # Errors
/// A send error (the peer hung up: `BrokenPipe`, `ConnectionReset`) is kept: later writes
/// are dropped and every [`drain`](Self::drain) returns it. Nothing panics.
///
/// # Dropping
/// Dropping the writer does not close the connection (the reader shares the fd); what is
/// buffered is still sent by the flush task. The fd closes once the reader and writer are
/// dropped and the flush is done. [`close`](Self::close) shuts the connection down.
pub struct StreamWriter {
    shared: Arc<Shared>,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("StreamWriter")
            .field("buffered", &st.size())
            .field("closing", &st.closing)
            .field("error", &st.error)
            .finish()
    }
}

impl StreamWriter {
    pub(crate) fn new(fd: SharedFd, family: Family) -> StreamWriter {
        StreamWriter {
            shared: Arc::new(Shared {
                fd,
                family,
                state: SpinLock::new(State {
                    high: DEFAULT_HIGH_WATER,
                    low: DEFAULT_LOW_WATER,
                    ..State::default()
                }),
                attention: AtomicBool::new(false),
            }),
        }
    }

    /// Takes the lock, first handing over this thread's staged writes if this writer is
    /// hosted here.
    fn lock(&self) -> Guard<'_> {
        let mut st = lock(&self.shared);
        // `try_with`: a writer dropped while the thread's locals are torn down has no host.
        let kick = HOST.try_with(|h| {
            let Ok(mut slot) = h.try_borrow_mut() else {
                return Kick::Nothing;
            };
            match slot.as_mut() {
                Some(hosted)
                    if hosted.stage.active && Arc::ptr_eq(&hosted.shared, &self.shared) =>
                {
                    hosted.stage.absorb(&mut st, &self.shared.fd)
                }
                _ => Kick::Nothing,
            }
        });
        st.kick = kick.unwrap_or(Kick::Nothing);
        st
    }

    /// A handle that closes or aborts this writer without keeping it alive (for the
    /// server's `close_clients` / `abort_clients`).
    pub(crate) fn closer(&self) -> Closer {
        Closer(Arc::downgrade(&self.shared))
    }

    /// The hosting right of this writer, for the task that owns it (see the module's
    /// hosted writes).
    pub(crate) fn host(&self) -> Host {
        Host {
            slot: Some(Hosted {
                shared: self.shared.clone(),
                stage: Stage::default(),
            }),
        }
    }

    /// Stages `data` if this writer is hosted on this thread and the data may go without
    /// the lock (see the module's hosted writes); whether it did. Begins the hosting (one
    /// lock) at a poll's first staged write.
    #[inline]
    fn stage(&self, data: &[u8]) -> bool {
        HOST.try_with(|h| {
            let Ok(mut slot) = h.try_borrow_mut() else {
                return false;
            };
            let Some(hosted) = slot.as_mut() else {
                return false;
            };
            if !Arc::ptr_eq(&hosted.shared, &self.shared) {
                return false;
            }
            let stage = &mut hosted.stage;
            if stage.active {
                if data.len() <= stage.room && !self.shared.attention.load(Ordering::Acquire) {
                    stage.room -= data.len();
                    stage.staged.extend_from_slice(data);
                    return true;
                }
                // Past the room, or something to look at: the locked path, after the
                // staged bytes.
                let kick = {
                    let mut st = lock(&self.shared);
                    stage.absorb(&mut st, &self.shared.fd)
                };
                drop(slot);
                self.follow(kick);
                return false;
            }
            // Begin: only in the state where a write takes the lock's fast path.
            let mut st = self.shared.state.lock();
            if st.error.is_some()
                || st.closing
                || st.eof_requested
                || st.size() + data.len() > st.high
            {
                return false;
            }
            st.hosted = true;
            stage.active = true;
            stage.room = st.high - st.size() - data.len();
            stage.staged.extend_from_slice(data);
            true
        })
        .unwrap_or(false)
    }

    /// Queues `data` for sending; never waits (see the type's docs). Data written after a
    /// send error is dropped (the error is reported by [`drain`](Self::drain)); data written
    /// after [`write_eof`](Self::write_eof) or [`close`](Self::close) is dropped and makes
    /// `drain` fail with `BrokenPipe`.
    #[inline]
    pub fn write(&self, data: &[u8]) {
        if data.is_empty() || self.stage(data) {
            return;
        }
        let kick = {
            // The common case (no error, not closing, staying below the high-water mark)
            // changes neither `paused` nor `error` and wakes no waiter, so it needs none of
            // `Guard`'s work on release: the plain spin guard, unlocked by one store.
            let mut st = self.shared.state.lock();
            if st.error.is_some()
                || st.closing
                || st.eof_requested
                || st.hosted
                || st.size() + data.len() > st.high
            {
                drop(st);
                return self.write_all_of(std::iter::once(data));
            }
            st.buf.extend_from_slice(data);
            st.kick()
        };
        self.follow(kick);
    }

    /// Spawns or wakes the flush task, as [`State::kick`] decided.
    #[inline]
    fn follow(&self, kick: Kick) {
        follow(&self.shared, kick);
    }

    /// Appends every buffer under one lock (to `side` while another poll hosts the
    /// writer); spawns or wakes the flush task if needed.
    fn write_all_of<'a>(&self, bufs: impl IntoIterator<Item = &'a [u8]>) {
        let kick = {
            let mut st = self.lock();
            let st = &mut *st;
            let hosted = st.hosted;
            let start = if hosted { st.side.len() } else { st.buf.len() };
            for data in bufs {
                if data.is_empty() {
                    continue;
                }
                if st.error.is_some() {
                    return;
                }
                if st.closing || st.eof_requested {
                    // Dropped; what was written before the close is still sent.
                    st.late_write = true;
                    st.wake_all();
                    return;
                }
                if hosted {
                    st.side.extend_from_slice(data);
                } else {
                    st.buf.extend_from_slice(data);
                }
            }
            let added = if hosted { st.side.len() } else { st.buf.len() } - start;
            if added == 0 {
                return;
            }
            if st.size() > st.high {
                st.paused = true;
            }
            if hosted {
                // The hand-over at the host's poll end sends it.
                Kick::Nothing
            } else {
                st.kick()
            }
        };
        self.follow(kick);
    }

    /// Writes each buffer in turn (asyncio's `writelines`), under one lock.
    pub fn writelines<I>(&self, lines: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let lines: Vec<I::Item> = lines.into_iter().collect();
        self.write_all_of(lines.iter().map(AsRef::as_ref));
    }

    /// Waits until the write buffer is at or below the low-water mark if it rose above the
    /// high-water mark (asyncio's `drain`); returns at once otherwise.
    ///
    /// # Errors
    /// The first send error (`BrokenPipe`, `ConnectionReset`...) once one happened, or
    /// `BrokenPipe` after a write following `close` / `write_eof`, or once
    /// [`close`](Self::close) was called (asyncio's `drain` fails after a close too; use
    /// [`wait_closed`](Self::wait_closed) to wait for the buffer to be sent).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping it only stops the waiting; the buffer is sent regardless.
    pub async fn drain(&self) -> io::Result<()> {
        if !self.shared.attention.load(Ordering::Acquire) {
            return Ok(());
        }
        poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(e) = st.error() {
                return Poll::Ready(Err(e));
            }
            if st.late_write {
                return Poll::Ready(Err(late_write_error()));
            }
            if st.closing {
                // As asyncio's: nothing can be written any more, so there is nothing to
                // drain for (`wait_closed` waits for the buffer to be sent).
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "drain() after close()",
                )));
            }
            if st.paused {
                st.add_waiter(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Waits until everything written so far has been handed to the kernel (stronger than
    /// [`drain`](Self::drain), which waits only above the high-water mark).
    ///
    /// # Errors
    /// As [`drain`](Self::drain).
    ///
    /// # Cancel safety
    /// Cancel safe, as `drain`.
    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(e) = st.error() {
                return Poll::Ready(Err(e));
            }
            if st.late_write {
                return Poll::Ready(Err(late_write_error()));
            }
            // Another poll hosting the writer may hold writes made before this call.
            if st.flushing || st.hosted {
                st.add_waiter(cx.waker());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Sends `count` bytes of `file` from `offset` (to the end of the file if `None`) after
    /// everything written before, without copying them through user memory (asyncio's
    /// `loop.sendfile(writer.transport, file, offset, count)`); returns how many bytes were
    /// sent (fewer than `count` only if the file ended first). The transfer is
    /// [`sendfile`](crate::sendfile)'s: `splice(2)` through the ring, or reads and sends
    /// where splice cannot serve.
    ///
    /// It first waits for the buffer to be handed to the kernel, as [`flush`](Self::flush)
    /// does; bytes written during that wait go too, ahead of the file. Once the file is
    /// being sent, writes (from this task's other futures, or from other tasks) wait in the
    /// buffer and follow it, and [`close`](Self::close) / [`write_eof`](Self::write_eof)
    /// wait for it too. The file's own position is neither used nor moved.
    ///
    /// ```
    /// use ringleader_io::fs::File;
    /// use ringleader_io::streams::{open_connection, start_server, StreamReader, StreamWriter};
    ///
    /// ringleader_runtime::run(async {
    ///     let path = std::env::temp_dir().join(format!("writer-sendfile-{}", std::process::id()));
    ///     std::fs::write(&path, b"0123456789")?;
    ///     let served = path.clone();
    ///     let server = start_server(
    ///         move |_reader: StreamReader, writer: StreamWriter| {
    ///             let path = served.clone();
    ///             async move {
    ///                 let file = File::open(&path).await?;
    ///                 writer.write(b"head:");
    ///                 let sent = writer.sendfile(&file, 2, Some(5)).await?;
    ///                 writer.write(b":tail\n");
    ///                 writer.close();
    ///                 writer.wait_closed().await?;
    ///                 assert_eq!(sent, 5);
    ///                 Ok::<_, std::io::Error>(())
    ///             }
    ///         },
    ///         "127.0.0.1:0",
    ///     )
    ///     .await?;
    ///     let port = server.local_addrs()[0].as_inet().unwrap().port();
    ///     let (mut reader, _writer) = open_connection("127.0.0.1", port).await?;
    ///     assert_eq!(reader.readline().await?, b"head:23456:tail\n");
    ///     server.close();
    ///     server.wait_closed().await;
    ///     std::fs::remove_file(&path)
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    /// The writer's own error, as [`drain`](Self::drain) gives it; `BrokenPipe` after
    /// [`close`](Self::close) or [`write_eof`](Self::write_eof); otherwise
    /// [`sendfile`](crate::sendfile)'s. An error of the connection (`BrokenPipe`,
    /// `ConnectionReset`...) is kept as the writer's, as a failed send's is; after a file
    /// error the connection stays usable, but the peer may have received part of the file.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped while the file is being sent, an unknown prefix of it has
    /// been sent. Writes made meanwhile are sent after that prefix; nothing leaks.
    pub async fn sendfile(
        &self,
        file: &crate::fs::File,
        offset: u64,
        count: Option<usize>,
    ) -> io::Result<usize> {
        // Take the sending turn: once nothing is being flushed, mark the flush as ours
        // (`flushing`), so writes wait in the buffer and kick no flush task until we are
        // done, as a hosted poll's hand-over does while it sends.
        poll_fn(|cx| {
            let mut st = self.lock();
            if let Some(e) = st.error() {
                return Poll::Ready(Err(e));
            }
            if st.late_write || st.closing || st.eof_requested {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "sendfile after close() or write_eof()",
                )));
            }
            if st.flushing || st.hosted || !st.buf.is_empty() {
                if !st.flushing && !st.buf.is_empty() {
                    // Not expected (buffered bytes always have a flush under way), but
                    // then nothing would wake us: start one.
                    st.kick = st.kick();
                }
                st.add_waiter(cx.waker());
                return Poll::Pending;
            }
            st.flushing = true;
            Poll::Ready(Ok(()))
        })
        .await?;
        // Gives the turn back however the transfer ends, the future dropped included.
        struct Turn<'a>(&'a Arc<Shared>, Option<io::Error>);
        impl Drop for Turn<'_> {
            fn drop(&mut self) {
                let mut st = lock(self.0);
                if let Some(err) = self.1.take() {
                    st.lose(err);
                }
                st.flushing = false;
                if st.error.is_none() && !st.buf.is_empty() {
                    // What was written meanwhile goes now, as a write would send it.
                    st.kick = st.kick();
                } else {
                    if st.size() <= st.low {
                        st.paused = false;
                    }
                    if st.error.is_some() && st.closing {
                        st.close_now(&self.0.fd);
                    }
                    st.settle(&self.0.fd);
                }
                st.wake_all();
            }
        }
        let mut turn = Turn(&self.shared, None);
        let result = crate::sendfile::sendfile_to(file, &self.shared.fd, offset, count).await;
        if let Err(err) = &result {
            if connection_lost(err) {
                turn.1 = Some(match err.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(err.kind(), err.to_string()),
                });
            }
        }
        drop(turn);
        result
    }

    /// Bytes written but not yet handed to the kernel (asyncio's
    /// `transport.get_write_buffer_size()`).
    pub fn write_buffer_size(&self) -> usize {
        self.lock().size()
    }

    /// Sets the high- and low-water marks of [`drain`](Self::drain) (asyncio's
    /// `transport.set_write_buffer_limits`).
    ///
    /// # Errors
    /// `InvalidInput` if `low > high`.
    pub fn set_write_buffer_limits(&self, high: usize, low: usize) -> io::Result<()> {
        if low > high {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("low-water mark {low} above high-water mark {high}"),
            ));
        }
        let mut st = self.lock();
        st.high = high;
        st.low = low;
        if st.size() > high {
            st.paused = true;
        } else if st.size() <= low {
            st.paused = false;
            st.wake_all();
        }
        Ok(())
    }

    /// Shuts the sending direction down once the buffer is sent: the peer reads end of
    /// stream (asyncio's `write_eof`). Later writes fail.
    pub fn write_eof(&self) {
        let mut st = self.lock();
        st.eof_requested = true;
        st.settle(&self.shared.fd);
    }

    /// Whether [`write_eof`](Self::write_eof) may be called: always true for TCP and Unix
    /// stream sockets.
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the stream once the buffer is sent: the socket is shut down in both
    /// directions (the peer reads end of stream, this side's reader too). Returns at once;
    /// [`wait_closed`](Self::wait_closed) waits for it.
    pub fn close(&self) {
        // `self.lock()`, not `lock(..)`: it first hands over what this poll staged.
        close_state(&mut self.lock(), &self.shared.fd);
    }

    /// Closes the connection at once (asyncio's `writer.transport.abort()`): what is
    /// buffered is dropped unsent, the socket is shut down in both directions (the peer
    /// and this side's reader see end of stream), and writes, [`drain`](Self::drain) and
    /// [`wait_closed`](Self::wait_closed) report `ConnectionAborted` from then on. For a
    /// peer that stopped reading, where [`close`](Self::close) would wait for it forever.
    pub fn abort(&self) {
        // Take what this poll staged first, so that it is dropped with the rest.
        drop(self.lock());
        self.closer().abort();
    }

    /// Whether [`close`](Self::close) was called (or is under way), or the connection was
    /// lost to a send error (asyncio's transport closes itself then).
    pub fn is_closing(&self) -> bool {
        let st = self.lock();
        st.closing || st.lost
    }

    /// Waits until [`close`](Self::close) has finished (the buffer sent, or its send
    /// failed), or the connection was lost to a send error. Like asyncio's, it waits for a
    /// close that has not been asked yet.
    ///
    /// # Errors
    /// The send error that ended the flush or lost the connection, if any.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.lock();
            if st.closed || st.lost {
                return Poll::Ready(match st.error() {
                    Some(e) => Err(e),
                    None => Ok(()),
                });
            }
            st.add_waiter(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The peer's address (asyncio's `get_extra_info('peername')`).
    ///
    /// # Errors
    /// `NotConnected` once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<StreamAddr> {
        peer_addr_of(&self.shared.fd, self.shared.family)
    }

    /// This end's address (asyncio's `get_extra_info('sockname')`).
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<StreamAddr> {
        local_addr_of(&self.shared.fd, self.shared.family)
    }
}

/// [`StreamWriter::close`]'s work on the locked state, shared with the server's [`Closer`].
fn close_state(st: &mut State, fd: &SharedFd) {
    st.closing = true;
    if st.error.is_some() && !st.flushing {
        st.buf.clear();
    }
    st.settle(fd);
}

/// Errors that mean the connection itself is gone (not a file error).
fn connection_lost(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

fn late_write_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "write after close() or write_eof()",
    )
}

fn lock(shared: &Arc<Shared>) -> Guard<'_> {
    Guard {
        shared,
        st: ManuallyDrop::new(shared.state.lock()),
        kick: Kick::Nothing,
    }
}

/// Spawns or wakes the flush task, as [`State::kick`] decided.
#[inline]
fn follow(shared: &Arc<Shared>, kick: Kick) {
    match kick {
        Kick::Nothing => {}
        Kick::Wake(waker) => waker.wake(),
        Kick::Spawn => spawn_flush(shared),
    }
}

#[cold]
fn spawn_flush(shared: &Arc<Shared>) {
    match ringleader_runtime::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(flush(shared.clone()))),
        Err(_) => {
            let mut st = lock(shared);
            st.flushing = false;
            st.task = Task::None;
            st.fail(io::Error::other(
                "StreamWriter::write outside a ringleader runtime: nothing can send the buffer",
            ));
            st.wake_all();
        }
    }
}

/// The flush task (see the module's protocol).
fn flush(shared: Arc<Shared>) -> impl std::future::Future<Output = ()> + Send {
    // If the task is dropped mid-way (the runtime shutting down), the buffer can no longer
    // be sent: record that, so `drain`, `flush` and `wait_closed` report it, not wait. A
    // task dropped while parked with nothing to send leaves only `task` to reset. The guard
    // is made here, outside the async block, so that it also runs for a task dropped
    // before its first poll (a runtime shut down right after the spawn).
    struct Abandoned(Arc<Shared>, bool);
    impl Drop for Abandoned {
        fn drop(&mut self) {
            if self.1 {
                return;
            }
            let mut st = lock(&self.0);
            st.task = Task::None;
            // Nothing buffered and no close left to perform: nothing was lost.
            let close_pending = st.closing && !st.closed;
            if !st.flushing && !close_pending {
                return;
            }
            st.flushing = false;
            st.in_flight = 0;
            st.fail(io::Error::other(
                "the runtime shut down before the buffer was sent",
            ));
            if st.closing {
                st.close_now(&self.0.fd);
            }
            st.wake_all();
        }
    }
    impl Abandoned {
        /// The task finished: nothing to record.
        fn disarm(mut self) {
            self.1 = true;
        }
    }
    let guard = Abandoned(shared, false);
    async move {
        flush_rounds(&guard.0).await;
        guard.disarm();
    }
}

async fn flush_rounds(shared: &Arc<Shared>) {
    loop {
        // Parks until there is something to send; returns `None` when the task is to exit.
        let chunk = poll_fn(|cx| {
            let mut st = lock(shared);
            if st.error.is_some() || st.buf.is_empty() {
                if st.flushing {
                    st.flushing = false;
                    st.paused = false;
                    if st.error.is_some() && st.closing {
                        st.close_now(&shared.fd);
                    }
                    st.settle(&shared.fd);
                    st.wake_all();
                }
                if st.task_done() {
                    st.task = Task::None;
                    return Poll::Ready(None);
                }
                // Kept alive for the next write: waking it costs less than spawning.
                match &mut st.task {
                    Task::Parked(w) if w.will_wake(cx.waker()) => {}
                    task => *task = Task::Parked(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            st.task = Task::Running;
            let spare = std::mem::take(&mut st.spare);
            let chunk = std::mem::replace(&mut st.buf, spare);
            st.in_flight = chunk.len();
            Poll::Ready(Some(chunk))
        })
        .await;
        let Some(chunk) = chunk else {
            return;
        };
        let fd = &shared.fd;
        let (res, mut chunk) = crate::fd::write_all(chunk, |b, _| ops::send(fd.clone(), b)).await;
        let mut st = lock(shared);
        st.in_flight = 0;
        if let Err(e) = res {
            st.lose(e);
        }
        chunk.clear();
        if chunk.capacity() <= KEEP_SPARE && st.spare.capacity() < chunk.capacity() {
            st.spare = chunk;
        }
        if st.size() <= st.low {
            st.paused = false;
        }
        st.wake_all();
    }
}

/// A server's handle on a connection's writer, for
/// [`Server::close_clients`](super::Server::close_clients) and
/// [`Server::abort_clients`](super::Server::abort_clients); from [`StreamWriter::closer`].
/// It does not keep the writer alive.
pub(crate) struct Closer(std::sync::Weak<Shared>);

impl Closer {
    /// Another handle on the same writer.
    pub(crate) fn clone_weak(&self) -> Closer {
        Closer(self.0.clone())
    }

    /// As [`StreamWriter::close`].
    pub(crate) fn close(&self) {
        if let Some(shared) = self.0.upgrade() {
            close_state(&mut lock(&shared), &shared.fd);
        }
    }

    /// Closes at once (asyncio's `transport.abort()`): what is buffered is dropped, the
    /// socket is shut down in both directions, and the writer fails with
    /// `ConnectionAborted`.
    pub(crate) fn abort(&self) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        {
            let mut st = lock(&shared);
            st.lose(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection was aborted",
            ));
            st.closing = true;
            if !st.flushing {
                // Otherwise the flush task marks it closed when its send ends (failed,
                // since the socket is shut down below).
                st.closed = true;
                st.eof_done = true;
            }
            st.wake_all();
        }
        // Errors (the peer already gone: NotConnected) change nothing for an abort.
        let _ = SockRef::from(&*shared.fd).shutdown(Shutdown::Both);
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        // The flush task sends what is buffered, then exits (a parked one is woken by the
        // guard's release to do so).
        self.lock().writer_gone = true;
    }
}

/// A loom model of the hosted-writes protocol (see the module's docs): the part that
/// orders a host's staged writes against a write made from another thread. It mirrors
/// `StreamWriter::stage` (begin under the lock; a staged write first loads `attention`),
/// `write_all_of` (to `side` while hosted, `attention` stored before the unlock) and
/// `Stage::merge` (staged bytes, then the side's), over the same spin lock with loom's
/// primitives. It runs in the normal `cargo test -p ringleader-io`, as the lock's model.
#[cfg(test)]
mod loom_models {
    use super::super::spin::loom_models::Loom;
    use super::super::spin::SpinLock;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;

    #[derive(Default)]
    struct State {
        buf: Vec<u8>,
        side: Vec<u8>,
        hosted: bool,
    }

    struct Shared {
        state: SpinLock<State, Loom>,
        attention: AtomicBool,
    }

    impl Shared {
        /// The guard's release: `attention` refreshed before the unlock.
        fn write_locked(&self, byte: u8) {
            let mut st = self.state.lock();
            if st.hosted {
                st.side.push(byte);
            } else {
                st.buf.push(byte);
            }
            self.attention.store(!st.side.is_empty(), Ordering::Release);
        }

        fn merge(&self, staged: &mut Vec<u8>) {
            let mut st = self.state.lock();
            st.hosted = false;
            let side = std::mem::take(&mut st.side);
            st.buf.extend_from_slice(staged);
            st.buf.extend_from_slice(&side);
            staged.clear();
            self.attention.store(false, Ordering::Release);
        }
    }

    /// The host stages `1`, lets the other thread run, then writes `3` in the same poll;
    /// the other thread writes `2` and then raises `signal`. If the host saw the signal
    /// before writing `3`, then `2` happened before `3` and must precede it; `1` always
    /// precedes `3`, and every byte arrives once.
    #[test]
    fn a_write_that_happened_before_a_staged_one_precedes_it() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let shared = Arc::new(Shared {
                state: SpinLock::new(State::default()),
                attention: AtomicBool::new(false),
            });
            let signal = Arc::new(AtomicBool::new(false));
            let other = {
                let (shared, signal) = (shared.clone(), signal.clone());
                loom::thread::spawn(move || {
                    shared.write_locked(2);
                    signal.store(true, Ordering::Release);
                })
            };
            // Begin, and stage the first write.
            let mut staged = Vec::new();
            let mut active = {
                let mut st = shared.state.lock();
                st.hosted = true;
                true
            };
            staged.push(1);
            let saw = signal.load(Ordering::Acquire);
            // The second staged write: hand over first if something needs attention.
            if active && shared.attention.load(Ordering::Acquire) {
                shared.merge(&mut staged);
                active = false;
            }
            if active {
                staged.push(3);
            } else {
                shared.write_locked(3);
            }
            // The poll's end.
            if active {
                shared.merge(&mut staged);
            }
            other.join().unwrap();
            let st = shared.state.lock();
            let at = |b: u8| st.buf.iter().position(|&x| x == b).unwrap();
            assert_eq!(st.buf.len(), 3);
            assert!(at(1) < at(3));
            if saw {
                assert!(at(2) < at(3), "{:?}", st.buf);
            }
        });
    }
}
