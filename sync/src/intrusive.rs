//! Intrusive waiter lists: the waiter's node lives inside its (pinned) future, so waiting
//! allocates nothing and a notifier hands over a notification with one atomic store.
//!
//! # Protocol
//!
//! A primitive keeps one [`List`] inside the `crate::loom::Mutex` that guards the rest of its
//! state; holding `&mut List` therefore means holding that lock. Each waiting future embeds
//! one [`Node`] and is `!Unpin`, so once polled the node stays at one address until the
//! future is dropped.
//!
//! - **Links and waker** (`Node::links`) are read and written only by a holder of the lock:
//!   by the list's methods, and by the owner through them ([`List::set_waker`],
//!   [`List::remove`]).
//! - **`Node::state`** is `WAITING` (0) while the node is linked. A notifier unlinks the node
//!   under the lock, takes its waker, and *then* stores what it handed over (a non-zero
//!   value, Release). That store is the notifier's last touch of the node: from the moment
//!   the owner reads a non-zero state (Acquire) it may free the node without the lock.
//! - **The owner's duty.** Before its node's memory goes away (the future's `Drop`), the
//!   owner reads the state; if it is `WAITING`, it takes the lock, reads it again (final
//!   under the lock: only lock holders change it) and, still `WAITING`, unlinks the node
//!   with [`List::remove`]. A node is linked at most once in its life.
//!
//! Wake-ups are the primitive's business: [`List::pop_front`] returns the waker so that the
//! caller can wake it after releasing the lock.

use std::marker::PhantomPinned;
use std::ptr::NonNull;
use std::task::Waker;

use crate::loom::{AtomicUsize, Ordering, UnsafeCell};

/// A node's state while it is linked (or was never linked).
pub(crate) const WAITING: usize = 0;

/// One waiter, embedded in its future. See the module docs for who touches what.
#[derive(Debug)]
pub(crate) struct Node {
    /// Only under the owning primitive's lock.
    links: UnsafeCell<Links>,
    /// `WAITING`, or the value a notifier stored when it unlinked this node.
    state: AtomicUsize,
    /// The list holds pointers to this node: it must not move once linked.
    _pinned: PhantomPinned,
}

#[derive(Debug)]
struct Links {
    prev: Option<NonNull<Node>>,
    next: Option<NonNull<Node>>,
    waker: Option<Waker>,
}

impl Node {
    /// An unlinked node.
    pub(crate) fn new() -> Node {
        Node {
            links: UnsafeCell::new(Links {
                prev: None,
                next: None,
                waker: None,
            }),
            state: AtomicUsize::new(WAITING),
            _pinned: PhantomPinned,
        }
    }

    /// What a notifier stored (`WAITING` if none did). A non-zero value means the node is no
    /// longer linked, and the notifier is done with it.
    pub(crate) fn state(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }
}

/// A FIFO of [`Node`]s, guarded by its primitive's lock.
#[derive(Debug)]
pub(crate) struct List {
    head: Option<NonNull<Node>>,
    tail: Option<NonNull<Node>>,
    len: usize,
}

// SAFETY: the list only holds pointers to nodes; they are dereferenced only by a holder of
// `&mut List` (the primitive's lock), and the nodes' contents (links, a `Waker`, an atomic)
// may be used from any thread.
unsafe impl Send for List {}

impl List {
    /// An empty list.
    pub(crate) const fn new() -> List {
        List {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// Whether no node is linked.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Number of linked nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Links `node` at the back, with `waker`.
    ///
    /// # Safety
    /// - `node` points to a live `Node` that has never been linked (its state is `WAITING`),
    ///   and it will not move.
    /// - Its owner keeps the duty of the module docs: the node stays valid until a notifier
    ///   unlinked it or the owner itself calls [`List::remove`] on this list.
    pub(crate) unsafe fn push_back(&mut self, node: NonNull<Node>, waker: Option<Waker>) {
        // SAFETY: the caller guarantees `node` is live; we hold the lock (`&mut self`).
        unsafe {
            Self::with_links(node, |l| {
                *l = Links {
                    prev: self.tail,
                    next: None,
                    waker,
                }
            })
        };
        match self.tail {
            // SAFETY: linked nodes are live (push_back's contract), and we hold the lock.
            Some(t) => unsafe { Self::with_links(t, |l| l.next = Some(node)) },
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// Unlinks the first node, stores `value` (non-zero) as its state and returns its waker.
    /// `None` if the list is empty.
    pub(crate) fn pop_front(&mut self, value: usize) -> Option<Option<Waker>> {
        debug_assert_ne!(value, WAITING);
        let node = self.head?;
        // SAFETY: a linked node is live until its state leaves WAITING (push_back's
        // contract), and we hold the lock.
        let waker = unsafe { self.unlink(node) };
        // SAFETY: as above; this Release store is our last touch of the node.
        unsafe { node.as_ref() }
            .state
            .store(value, Ordering::Release);
        Some(waker)
    }

    /// Unlinks `node`, which its owner still found `WAITING` under the lock; drops its waker.
    ///
    /// # Safety
    /// `node` is linked in this list (its state, read under this lock, is `WAITING`).
    pub(crate) unsafe fn remove(&mut self, node: NonNull<Node>) {
        // SAFETY: the caller guarantees `node` is linked here, hence live; we hold the lock.
        drop(unsafe { self.unlink(node) });
    }

    /// Stores `waker` in `node` unless the stored one would wake the same task.
    ///
    /// # Safety
    /// `node` is linked in this list (its state, read under this lock, is `WAITING`).
    pub(crate) unsafe fn set_waker(&mut self, node: NonNull<Node>, waker: &Waker) {
        // SAFETY: the caller guarantees `node` is linked here, hence live; we hold the lock.
        unsafe {
            Self::with_links(node, |l| match &mut l.waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            })
        }
    }

    /// Unlinks a linked `node`, fixing its neighbours; returns its waker.
    ///
    /// # Safety
    /// `node` is linked in this list.
    unsafe fn unlink(&mut self, node: NonNull<Node>) -> Option<Waker> {
        // SAFETY: the caller guarantees `node` is linked here; we hold the lock.
        let (prev, next, waker) =
            unsafe { Self::with_links(node, |l| (l.prev.take(), l.next.take(), l.waker.take())) };
        match prev {
            // SAFETY: `prev` is linked in this list, hence live.
            Some(p) => unsafe { Self::with_links(p, |l| l.next = next) },
            None => self.head = next,
        }
        match next {
            // SAFETY: `next` is linked in this list, hence live.
            Some(n) => unsafe { Self::with_links(n, |l| l.prev = prev) },
            None => self.tail = prev,
        }
        self.len -= 1;
        waker
    }

    /// Runs `f` on `node`'s links.
    ///
    /// # Safety
    /// `node` is live, and the caller holds the lock guarding the list it is (being) linked
    /// in, so no other access to the links can overlap.
    unsafe fn with_links<R>(node: NonNull<Node>, f: impl FnOnce(&mut Links) -> R) -> R {
        // SAFETY: `node` is live (caller); `&Node` is fine as every field the list changes
        // is behind an `UnsafeCell` or an atomic.
        let node = unsafe { node.as_ref() };
        // SAFETY: the lock serialises every access to the links (caller).
        node.links.with_mut(|p| f(unsafe { &mut *p }))
    }
}

#[cfg(all(test, not(ringleader_loom)))]
mod tests {
    use super::*;
    use std::pin::pin;

    #[test]
    fn fifo_order_and_remove_from_middle() {
        let (a, b, c) = (pin!(Node::new()), pin!(Node::new()), pin!(Node::new()));
        let [pa, pb, pc] = [&*a, &*b, &*c].map(NonNull::from);
        let mut list = List::new();
        // SAFETY: the nodes are pinned on this stack frame, outlive the list's use of them,
        // and each is linked once.
        unsafe {
            list.push_back(pa, None);
            list.push_back(pb, None);
            list.push_back(pc, None);
        }
        assert_eq!(list.len(), 3);
        // SAFETY: `b` is linked and WAITING.
        unsafe { list.remove(pb) };
        assert!(matches!(list.pop_front(1), Some(None)));
        assert_eq!((a.state(), b.state(), c.state()), (1, WAITING, WAITING));
        assert!(matches!(list.pop_front(2), Some(None)));
        assert_eq!(c.state(), 2);
        assert!(list.is_empty());
        assert!(list.pop_front(1).is_none());
    }
}
