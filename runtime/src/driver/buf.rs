//! Owned buffers for completion-based I/O.
//!
//! The kernel reads from or writes into a buffer *after* the call that started the operation
//! returned, possibly after the future that asked for it was dropped. So an operation takes
//! its buffer by value and gives it back with the result (`let (res, buf) = f.read(buf).await`);
//! if the future is dropped first, the driver keeps the buffer until the kernel is done with
//! it. The traits here say which types can be lent to the kernel that way.

use std::ops::{Bound, RangeBounds};

/// A buffer the kernel may read from while an operation is in flight.
///
/// # Safety
/// Implementors promise that, for as long as the value is alive and not mutated through
/// `&mut self` methods of this trait family:
/// - `stable_ptr()` points to `bytes_total()` bytes of memory owned by the value, and the
///   pointer does not change when the value itself is moved (the memory is on the heap or
///   `'static`);
/// - the first `bytes_init()` bytes are initialised, and `bytes_init() <= bytes_total()`.
pub unsafe trait IoBuf: Send + 'static {
    /// Start of the buffer's memory; stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;
    /// Initialised bytes: what a write sends.
    fn bytes_init(&self) -> usize;
    /// Capacity in bytes.
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer, owning it; `into_inner` gives it back.
    ///
    /// # Panics
    /// If the range is out of `0..bytes_total()` or decreasing, as slicing does.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(
            begin <= end && end <= self.bytes_total(),
            "slice {begin}..{end} out of a buffer of {} bytes",
            self.bytes_total()
        );
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

/// A buffer the kernel may write into while an operation is in flight.
///
/// # Safety
/// As [`IoBuf`], and `stable_mut_ptr()` is the same memory as `stable_ptr()`, writable for
/// `bytes_total()` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's memory, writable.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `len` bytes are now initialised (the kernel wrote them).
    ///
    /// # Safety
    /// The first `len` bytes must be initialised and `len <= bytes_total()`.
    unsafe fn set_init(&mut self, len: usize);
}

// SAFETY: a Vec's heap allocation does not move when the Vec does; len <= capacity.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; the spare capacity is writable memory of the same allocation.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        if len > self.len() {
            // SAFETY: the caller guarantees the first `len` bytes are initialised and that
            // `len <= capacity`.
            unsafe { self.set_len(len) };
        }
    }
}

// SAFETY: a boxed slice's allocation is stable across moves and fully initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for IoBuf; every byte of a boxed slice is initialised and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _len: usize) {}
}

// SAFETY: a String's heap allocation is stable across moves; len <= capacity. Not IoBufMut:
// the kernel could write bytes that are not UTF-8.
unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: 'static memory never moves nor is freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: 'static memory never moves nor is freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

/// A range of an owned buffer, itself an owned buffer: read into the tail of a `Vec`, write
/// part of one.
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T> Slice<T> {
    /// Offset of the view's start in the whole buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// Offset of the view's end in the whole buffer.
    pub fn end(&self) -> usize {
        self.end
    }
    /// The whole buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }
    /// Gives the whole buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

// SAFETY: the view lies inside the inner buffer (checked at construction), whose memory is
// stable by the inner buffer's own contract.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        // Pointer arithmetic only; `begin <= bytes_total` of the inner buffer.
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf
            .bytes_init()
            .clamp(self.begin, self.end)
            .saturating_sub(self.begin)
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as for IoBuf; writes stay in the view, which is inside the inner buffer.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }
    unsafe fn set_init(&mut self, len: usize) {
        // Only a view that starts inside the initialised prefix extends it: otherwise the
        // bytes between that prefix and `begin` would be claimed without being written.
        if self.buf.bytes_init() >= self.begin {
            // SAFETY: `..begin` was initialised already and the caller guarantees
            // `begin..begin + len` is now; `begin + len <= end <= bytes_total`.
            unsafe { self.buf.set_init(self.begin + len) };
        }
    }
}
