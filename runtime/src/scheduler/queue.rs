//! Run queues: crossbeam-deque's, or under loom a small stand-in with the same interface
//! (loom cannot see inside crossbeam, so models check our protocol around the queues).

#[cfg(not(ringleader_loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker as Local};

#[cfg(ringleader_loom)]
pub(crate) use model::{Injector, Local, Steal, Stealer};

#[cfg(ringleader_loom)]
mod model {
    use crate::loom::{lock, Arc, Mutex};
    use std::collections::VecDeque;

    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)]
        Retry,
    }

    pub(crate) struct Local<T>(Arc<Mutex<VecDeque<T>>>);
    pub(crate) struct Stealer<T>(Arc<Mutex<VecDeque<T>>>);
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    /// Moves up to half of `src` (at most 4 under the model) to `dest`, returning one.
    fn batch<T>(src: &Mutex<VecDeque<T>>, dest: &Local<T>) -> Steal<T> {
        let mut src = lock(src);
        let Some(first) = src.pop_front() else {
            return Steal::Empty;
        };
        let n = (src.len() / 2).min(4);
        let mut dest = lock(&dest.0);
        for _ in 0..n {
            if let Some(t) = src.pop_front() {
                dest.push_back(t);
            }
        }
        Steal::Success(first)
    }

    impl<T> Local<T> {
        pub(crate) fn new_fifo() -> Self {
            Local(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn push(&self, t: T) {
            lock(&self.0).push_back(t)
        }
        pub(crate) fn pop(&self) -> Option<T> {
            lock(&self.0).pop_front()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
        pub(crate) fn len(&self) -> usize {
            lock(&self.0).len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            batch(&self.0, dest)
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            lock(&self.0).len()
        }
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, t: T) {
            lock(&self.0).push_back(t)
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            match lock(&self.0).pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            batch(&self.0, dest)
        }
        /// Moves up to `limit` (at most 4 under the model) to `dest`.
        pub(crate) fn steal_batch_with_limit(&self, dest: &Local<T>, limit: usize) -> Steal<()> {
            let mut src = lock(&self.0);
            if src.is_empty() {
                return Steal::Empty;
            }
            let mut dest = lock(&dest.0);
            for _ in 0..limit.min(4) {
                match src.pop_front() {
                    Some(t) => dest.push_back(t),
                    None => break,
                }
            }
            Steal::Success(())
        }
        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            lock(&self.0).len()
        }
    }
}
