//! Time: `sleep`, `interval`, `timeout`, `Instant`, and a paused clock for tests.
//!
//! Timers live in per-worker hierarchical timing wheels (1 ms resolution, O(1) insert and
//! cancel, no runtime-wide timer lock; see `driver.rs` for the protocol). A dropped
//! [`Sleep`] frees its entry at once.
//!
//! # Paused clock
//! With [`Builder::start_paused`](crate::runtime::Builder::start_paused) or [`pause`], time
//! stands still until [`advance`] moves it, or until every task waits: then it jumps to
//! the next deadline (auto-advance). "Every task" means every worker is idle, no blocking
//! job runs, and no `block_on` future is being polled or has been woken, so time never
//! moves while the test's own body runs, on either flavour. A test of a one-hour timeout
//! then runs in milliseconds and gives the same result every run.
//!
//! ```
//! use std::time::Duration;
//! use ringleader_runtime::{runtime::Builder, time};
//!
//! let rt = Builder::new_current_thread().start_paused(true).build().unwrap();
//! rt.block_on(async {
//!     let start = time::Instant::now();
//!     time::sleep(Duration::from_secs(3600)).await; // returns at once in real time
//!     assert!(start.elapsed() >= Duration::from_secs(3600));
//! });
//! ```

pub(crate) mod driver;
mod wheel;

use std::fmt;
use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use driver::Filed;

use crate::loom::Arc;
use crate::scheduler::{self, Shared};

/// A point in time on the runtime's clock (which is virtual while paused).
///
/// Outside a runtime it is `std::time::Instant`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(std::time::Instant);

impl Instant {
    /// The current time on the current runtime's clock.
    #[inline]
    pub fn now() -> Instant {
        if !driver::any_clock_paused() {
            // No clock was ever paused: every runtime's clock is real time.
            return Instant(std::time::Instant::now());
        }
        Instant(scheduler::with_current_shared(|shared| match shared {
            Some(shared) => shared.time.clock.now(),
            None => std::time::Instant::now(),
        }))
    }

    /// Time since `earlier` (zero if `earlier` is later).
    #[inline]
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// Time since this instant, on the runtime's clock.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// `self + d`, or `None` on overflow.
    #[inline]
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        self.0.checked_add(d).map(Instant)
    }

    /// `self + d`, or, if that overflows (`Duration::MAX` as "no limit"), an instant about
    /// 30 years after `self`: a deadline that never comes, without a panic.
    #[inline]
    pub fn saturating_add(&self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant(self.0 + FAR_FUTURE))
    }

    /// `self - d`, or `None` on underflow.
    #[inline]
    pub fn checked_sub(&self, d: Duration) -> Option<Instant> {
        self.0.checked_sub(d).map(Instant)
    }

    /// The std instant.
    #[inline]
    pub fn into_std(self) -> std::time::Instant {
        self.0
    }

    /// From a std instant.
    #[inline]
    pub fn from_std(t: std::time::Instant) -> Instant {
        Instant(t)
    }
}

impl fmt::Debug for Instant {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<std::time::Instant> for Instant {
    #[inline]
    fn from(t: std::time::Instant) -> Instant {
        Instant(t)
    }
}

impl From<Instant> for std::time::Instant {
    #[inline]
    fn from(t: Instant) -> std::time::Instant {
        t.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn add(self, d: Duration) -> Instant {
        Instant(self.0 + d)
    }
}

impl AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0 - d)
    }
}

impl SubAssign<Duration> for Instant {
    #[inline]
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    #[inline]
    fn sub(self, other: Instant) -> Duration {
        self.duration_since(other)
    }
}

fn current_shared(what: &str) -> Arc<Shared> {
    match scheduler::with_current_shared(|s| s.cloned()) {
        Some(shared) => shared,
        None => panic!(
            "{what} must be called from inside a ringleader runtime (a task, block_on, or \
             after Handle::enter)"
        ),
    }
}

/// Waits until `duration` has passed (asyncio's `sleep`).
///
/// As asyncio's `sleep`, it always suspends the task: a zero duration yields once to the
/// scheduler, so every other ready task runs first (`await asyncio.sleep(0)`, the same as
/// [`yield_now`](crate::task::yield_now)). [`sleep_until`] an instant already passed
/// completes at once, as tokio's.
///
/// # Panics
/// Outside a ringleader runtime.
///
/// # Cancel safety
/// Cancel safe: dropping it removes its timer.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    let shared = current_shared("sleep");
    let now = Instant(shared.time.clock.now());
    let deadline = now.checked_add(duration).unwrap_or(now + FAR_FUTURE);
    let mut sleep = Sleep::new(deadline, shared);
    // The deadline is in the future (or now): the first poll needs no clock read to know
    // whether it has already passed unless the duration is zero.
    sleep.future_at_creation = !duration.is_zero();
    sleep.yield_first = duration.is_zero();
    sleep
}

/// About 30 years: far enough for "never", small enough not to overflow.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Waits until `deadline`.
///
/// # Panics
/// Outside a ringleader runtime.
///
/// # Cancel safety
/// Cancel safe.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline, current_shared("sleep_until"))
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    shared: Arc<Shared>,
    /// Where the timer is filed (lazily, at the first poll that has to wait).
    entry: Option<Filed>,
    /// The filed timer was seen fired (its entry is gone from the wheel).
    fired: bool,
    /// Set by `sleep(d)` with `d > 0`: the deadline was ahead of the clock when the sleep
    /// was made, so the first poll files the timer without reading the clock again. If it
    /// has passed meanwhile (a sleep polled late), the wheel fires it at its next look,
    /// since an entry filed in the past is due at once.
    future_at_creation: bool,
    /// Set by `sleep(Duration::ZERO)`: the first poll yields (asyncio's `sleep(0)`).
    yield_first: bool,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl Sleep {
    fn new(deadline: Instant, shared: Arc<Shared>) -> Sleep {
        Sleep {
            deadline,
            shared,
            entry: None,
            fired: false,
            future_at_creation: false,
            yield_first: false,
        }
    }

    /// When this sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.fired
            || self
                .entry
                .as_ref()
                .is_some_and(|filed| self.shared.time.is_fired(filed))
            || Instant::now() >= self.deadline
    }

    /// Moves the deadline (the sleep waits again even if it had ended).
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.cancel_timer();
        this.fired = false;
        this.deadline = deadline;
        this.future_at_creation = false;
        this.yield_first = false;
    }

    fn cancel_timer(&mut self) {
        if let Some(filed) = self.entry.take() {
            if !self.fired {
                self.shared.time.deregister(&filed);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if std::mem::take(&mut this.yield_first) {
            // Woken during our own poll: the task is queued behind the other ready ones.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let progress = ready!(ringleader_coop::poll_proceed(cx));
        if let Some(filed) = &this.entry {
            if this.fired || this.shared.time.poll_filed(filed, cx.waker()) {
                this.fired = true;
                progress.made_progress();
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        let time = &this.shared.time;
        let deadline_ms = time.clock.deadline_ms(this.deadline.0);
        if !std::mem::take(&mut this.future_at_creation) && this.deadline.0 <= time.clock.now() {
            progress.made_progress();
            return Poll::Ready(());
        }
        let shard = scheduler::current_worker_index(&this.shared).unwrap_or(time.external_shard());
        let (filed, earlier) = time.register(shard, deadline_ms, cx.waker().clone());
        if earlier && shard == time.external_shard() {
            // Every worker may be parked past this deadline: have one recompute its timeout.
            if let Some(worker) = time.worker_to_wake_for(deadline_ms) {
                this.shared.unpark_worker(worker);
            }
        }
        this.entry = Some(filed);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

/// What an [`Interval`] does about ticks it missed (the task was busy past them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up (the default).
    #[default]
    Burst,
    /// Start counting the period again from the late tick.
    Delay,
    /// Drop the missed ticks and fire at the next multiple of the period.
    Skip,
}

/// Ticks at a fixed period; see [`interval`]. Also a [`Stream`](futures_core::Stream) of
/// the ticks' scheduled times, which never ends.
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Instant,
    missed: MissedTickBehavior,
    sleep: Pin<Box<Sleep>>,
}

/// An interval whose first tick completes at once, then every `period`.
///
/// # Panics
/// If `period` is zero, or outside a runtime.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// An interval whose first tick is at `start`.
///
/// # Panics
/// If `period` is zero, or outside a runtime.
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        next: start,
        missed: MissedTickBehavior::default(),
        sleep: Box::pin(sleep_until(start)),
    }
}

/// The ticks as a stream (it never ends): `while let Some(at) = ticks.next().await`, or
/// a branch of `select!`.
impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped `tick()` loses no tick.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(self.sleep.as_mut().poll(cx));
        let tick = self.next;
        let now = Instant::now();
        self.next = match self.missed {
            MissedTickBehavior::Burst => tick + self.period,
            MissedTickBehavior::Delay => now.max(tick) + self.period,
            MissedTickBehavior::Skip => {
                let behind = now.duration_since(tick);
                let periods = behind.as_nanos() / self.period.as_nanos() + 1;
                tick + self.period * periods as u32
            }
        };
        let next = self.next;
        self.sleep.as_mut().reset(next);
        Poll::Ready(tick)
    }

    /// Sets how missed ticks are handled.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Runs `future` for at most `duration` (asyncio's `wait_for`): `Err(Elapsed)` and the
/// future dropped if it has not finished by then.
///
/// The duration counts from the first poll (when the timeout is awaited, as asyncio's
/// `wait_for` starts timing when it runs). A future that finishes on that first poll costs
/// no timer at all.
///
/// For timeouts that nest with task groups and cancel scopes, use
/// `ringleader::taskgroup::timeout`, built on cancel scopes.
///
/// # Panics
/// When polled outside a runtime.
///
/// # Cancel safety
/// As cancel safe as `future`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future: Some(future),
        when: When::After(duration),
        sleep: None,
    }
}

/// [`timeout`] with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future: Some(future),
        when: When::At(deadline),
        sleep: None,
    }
}

/// A timeout's deadline: relative until the first poll fixes it.
#[derive(Debug, Clone, Copy)]
enum When {
    After(Duration),
    At(Instant),
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        // An `Option` so the inner future is dropped as soon as the deadline passes.
        #[pin]
        future: Option<F>,
        when: When,
        // Created only once the future has to wait.
        sleep: Option<Sleep>,
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("when", &self.when).finish()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let deadline = match *this.when {
            When::At(deadline) => deadline,
            When::After(duration) => {
                let now = Instant::now();
                let deadline = now.checked_add(duration).unwrap_or(now + FAR_FUTURE);
                *this.when = When::At(deadline);
                deadline
            }
        };
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Elapsed(())));
        };
        if let Poll::Ready(out) = future.poll(cx) {
            this.future.set(None);
            return Poll::Ready(Ok(out));
        }
        // The deadline is checked without the budget: a timeout must fire even when the
        // inner future exhausted it. (`Sleep` is `Unpin`.)
        let sleep = this.sleep.get_or_insert_with(|| sleep_until(deadline));
        let fired = ringleader_coop::unconstrained(|| Pin::new(&mut *sleep).poll(cx).is_ready());
        if fired {
            this.future.set(None);
            return Poll::Ready(Err(Elapsed(())));
        }
        Poll::Pending
    }
}

/// Pauses the current runtime's clock: time moves only by [`advance`] or auto-advance.
///
/// # Panics
/// Outside a runtime.
pub fn pause() {
    let shared = current_shared("time::pause");
    shared.time.pause();
    unpark_all_workers(&shared);
}

/// After the clock changed mode: every worker re-parks under the new clock's rules (a
/// real-time park timeout means nothing to a paused clock, and a worker parked with no
/// timeout on a paused clock must take up its timers' real deadlines once it resumes).
fn unpark_all_workers(shared: &Shared) {
    for worker in 0..shared.num_workers() {
        shared.unpark_worker(worker);
    }
}

/// Resumes real time on the current runtime's clock (from the virtual time reached).
///
/// # Panics
/// Outside a runtime.
pub fn resume() {
    let shared = current_shared("time::resume");
    shared.time.resume();
    unpark_all_workers(&shared);
}

/// Moves the paused clock forward by `duration`, fires the timers that became due, and
/// yields so their tasks run.
///
/// # Panics
/// Outside a runtime, or if the clock is not paused.
pub async fn advance(duration: Duration) {
    let shared = current_shared("time::advance");
    assert!(
        shared.time.clock.is_paused(),
        "time::advance requires a paused clock (Builder::start_paused or time::pause)"
    );
    shared.time.clock.advance(duration);
    let now = shared.time.clock.now_ms();
    shared.time.process_all(now);
    crate::task::yield_now().await;
}
