//! `Event`: asyncio's `Event`, a flag that tasks can wait to see set.
//!
//! # Protocol
//!
//! One `crate::loom::Mutex<State>` holds the flag and a [`WaitList`] of waiters; an atomic
//! mirror of the flag (written only under the lock) serves [`Event::is_set`] and the fast path
//! of [`Event::wait`]. [`Event::set`] notifies (unlinks) every queued waiter under the lock:
//! a notified waiter completes on its next poll whatever the flag says by then, so a `set`
//! followed at once by a `clear` still releases everyone who was waiting, as in asyncio.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::loom::{lock, AtomicBool, Mutex, Ordering};
use crate::waitlist::{WaitList, WakeList};

/// A flag tasks can wait for (asyncio's `Event`): [`set`](Event::set) wakes every waiter,
/// [`wait`](Event::wait) returns at once while the flag is set, [`clear`](Event::clear)
/// resets it.
///
/// ```
/// use ringleader_sync::Event;
///
/// let ev = Event::new();
/// assert!(!ev.is_set());
/// ev.set();
/// futures::executor::block_on(ev.wait()); // returns at once: the flag is set
/// ev.clear();
/// assert!(!ev.is_set());
/// ```
pub struct Event {
    state: Mutex<State>,
    /// Mirror of `State::set`, written under the lock.
    flag: AtomicBool,
}

#[derive(Debug)]
struct State {
    set: bool,
    waiters: WaitList<()>,
}

impl Event {
    /// An event whose flag is clear.
    pub fn new() -> Event {
        Event {
            state: Mutex::new(State {
                set: false,
                waiters: WaitList::new(),
            }),
            flag: AtomicBool::new(false),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Sets the flag and wakes every waiting task; they complete even if the flag is cleared
    /// again before they run.
    pub fn set(&self) {
        let mut wakes = WakeList::new();
        let mut st = lock(&self.state);
        st.set = true;
        self.flag.store(true, Ordering::SeqCst);
        st.waiters.notify_all(&mut wakes, |_| {});
        drop(st);
        wakes.wake_all();
    }

    /// Clears the flag: later [`wait`](Event::wait)s wait for the next [`set`](Event::set).
    pub fn clear(&self) {
        let mut st = lock(&self.state);
        st.set = false;
        self.flag.store(false, Ordering::SeqCst);
    }

    /// Waits until the flag is set; returns at once if it is set now.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future just leaves the queue.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            key: None,
            done: false,
        }
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Event")
            .field("set", &st.set)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct EventWait<'a> {
    event: &'a Event,
    key: Option<usize>,
    done: bool,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Pending;
        }
        let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
        let mut st = lock(&this.event.state);
        match this.key {
            None if !st.set => {
                this.key = Some(st.waiters.push_back((), Some(cx.waker().clone())));
                return Poll::Pending;
            }
            None => {}
            Some(key) => {
                if st.waiters.is_queued(key) {
                    st.waiters.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                st.waiters.remove(key);
                this.key = None;
            }
        }
        drop(st);
        this.done = true;
        progress.made_progress();
        Poll::Ready(())
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.event.state).waiters.remove(key);
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("queued", &self.key.is_some())
            .field("done", &self.done)
            .finish()
    }
}
