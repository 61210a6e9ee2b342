//! asyncio's `StreamReader` over a socket's receive side.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use ringleader_runtime::driver::SharedFd;

use super::error::{IncompleteReadError, LimitOverrunError, ReadError};
use super::readbuf::{RecvBuf, CHUNK};
use super::{local_addr_of, peer_addr_of, Family, StreamAddr};

/// Polls `f` as a leaf future of the cooperative budget (see `ringleader_coop`): a read
/// that completes spends one unit, so a task working through many buffered lines still
/// yields to its other branches and to other tasks; one that waits spends nothing.
fn poll_budgeted<T>(cx: &mut Context<'_>, f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let progress = std::task::ready!(ringleader_coop::poll_proceed(cx));
    let out = f(cx);
    if out.is_ready() {
        progress.made_progress();
    }
    out
}

/// The default limit of [`StreamReader::readuntil`] and [`readline`](StreamReader::readline):
/// 64 KiB, as asyncio's.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// The receiving side of a stream (asyncio's `StreamReader`), from [`open_connection`],
/// [`start_server`]'s handler or [`split`].
///
/// Every method takes from the reader's buffer first and receives more only when that
/// cannot serve it. A read served from the buffer still spends a unit of the runtime's
/// cooperative budget, so a task working through a full buffer of short lines yields now
/// and then (to its other branches and to other tasks) instead of holding its worker for
/// the whole buffer.
///
/// # Cancel safety
/// Every read method is cancel safe: the receive in flight belongs to the reader, so a call
/// dropped before it finished (a timeout, a `select`) loses no byte; the bytes it would have
/// returned stay buffered for the next call.
///
/// # Memory
/// [`readuntil`](Self::readuntil), [`readline`](Self::readline) and [`lines`](Self::lines)
/// never buffer more than the limit plus the separator's length: a peer sending an endless
/// line gets a [`LimitOverrunError`], not the process's memory.
/// [`readexactly(n)`](Self::readexactly) buffers up to `n` bytes, by design.
///
/// [`open_connection`]: super::open_connection
/// [`start_server`]: super::start_server
/// [`split`]: super::split
pub struct StreamReader {
    buf: RecvBuf,
    family: Family,
    limit: usize,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buf.data().len())
            .field("eof", &self.buf.eof())
            .field("limit", &self.limit)
            .finish()
    }
}

/// Where a separator search stands: bytes before `scanned` cannot start a separator.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    scanned: usize,
}

/// What a separator search found (lengths of buffered data to take).
#[derive(Debug, Clone, Copy)]
enum Found {
    /// The data through the separator, included.
    Through(usize),
    /// The stream ended before a separator: what remains (maybe 0).
    End(usize),
}

fn find(haystack: &[u8], sep: &[u8]) -> Option<usize> {
    if sep.len() == 1 {
        find_byte(sep[0], haystack)
    } else {
        memchr::memmem::find(haystack, sep)
    }
}

/// The first `byte` in `haystack`: the C library's `memchr`. A line server searches one
/// short line per call; there glibc's (one call, no dispatch) measured about half the
/// cost of the `memchr` crate's (three nested calls) in the `lines` benchmark profile.
#[inline]
fn find_byte(byte: u8, haystack: &[u8]) -> Option<usize> {
    // SAFETY: memchr reads at most `haystack.len()` bytes from its start, all within the
    // slice, and writes nothing.
    let at = unsafe { libc::memchr(haystack.as_ptr().cast(), byte.into(), haystack.len()) };
    if at.is_null() {
        return None;
    }
    // The result points into the slice (memchr's contract), so the offset is in range.
    Some(at as usize - haystack.as_ptr() as usize)
}

impl StreamReader {
    pub(crate) fn new(fd: SharedFd, family: Family) -> StreamReader {
        StreamReader {
            buf: RecvBuf::new(fd),
            family,
            limit: DEFAULT_LIMIT,
        }
    }

    /// The limit of [`readuntil`](Self::readuntil) and [`readline`](Self::readline).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the limit (asyncio's `limit=` argument); at least 1.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// How many received bytes are buffered, not yet read out.
    pub fn buffered(&self) -> usize {
        self.buf.data().len()
    }

    /// The buffer's allocated size in bytes (bounded by the limit plus one receive for
    /// line reads; see the type's docs).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the stream has ended and the buffer is empty (asyncio's `at_eof()`).
    pub fn at_eof(&self) -> bool {
        self.buf.eof() && self.buf.data().is_empty()
    }

    /// The peer's address.
    ///
    /// # Errors
    /// `NotConnected` once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<StreamAddr> {
        peer_addr_of(self.buf.fd(), self.family)
    }

    /// This end's address.
    ///
    /// # Errors
    /// The `getsockname` error.
    pub fn local_addr(&self) -> io::Result<StreamAddr> {
        local_addr_of(self.buf.fd(), self.family)
    }

    /// Reads up to `n` bytes: what is buffered, or else what one receive brings. Empty at
    /// end of stream (and for `n == 0`).
    ///
    /// # Errors
    /// The socket's error.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| loop {
                let have = self.buf.data().len();
                if have > 0 {
                    return Poll::Ready(Ok(self.buf.take(n)));
                }
                if self.buf.eof() {
                    return Poll::Ready(Ok(Vec::new()));
                }
                std::task::ready!(self.buf.poll_fill(cx, n.max(CHUNK)))?;
            })
        })
        .await
    }

    /// Reads until end of stream (asyncio's `read(-1)`).
    ///
    /// # Errors
    /// The socket's error; what was read stays buffered.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| loop {
                if self.buf.eof() {
                    let n = self.buf.data().len();
                    return Poll::Ready(Ok(self.buf.take(n)));
                }
                std::task::ready!(self.buf.poll_fill(cx, usize::MAX))?;
            })
        })
        .await
    }

    /// Reads exactly `n` bytes.
    ///
    /// # Errors
    /// [`ReadError::IncompleteRead`] if the stream ends first, carrying the bytes read (they
    /// are taken out of the buffer); [`ReadError::Io`] for the socket's error.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| loop {
                let have = self.buf.data().len();
                if have >= n {
                    return Poll::Ready(Ok(self.buf.take(n)));
                }
                if self.buf.eof() {
                    let partial = self.buf.take(have);
                    return Poll::Ready(Err(ReadError::IncompleteRead(IncompleteReadError {
                        partial,
                        expected: Some(n),
                    })));
                }
                std::task::ready!(self.buf.poll_fill(cx, n - have))?;
            })
        })
        .await
    }

    /// Reads through the next `b"\n"` (included). At end of stream gives what remains
    /// (empty once nothing does), as asyncio's `readline()`.
    ///
    /// # Errors
    /// [`ReadError::LimitOverrun`] if no newline comes within the limit. As asyncio's
    /// `readline` (and unlike [`readuntil`](Self::readuntil)), the overlong line's buffered
    /// part is then discarded (through its newline, if that was buffered), so the next
    /// call starts after it. [`ReadError::Io`] for the socket's error.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn readline(&mut self) -> Result<Vec<u8>, ReadError> {
        // The common case, a whole line already buffered: served without the poll loop
        // (spending a unit of budget as the loop would; without budget left, the loop
        // yields first).
        if ringleader_coop::has_budget_remaining() {
            if let Some(n) = self.buffered_line() {
                ringleader_coop::spend();
                return Ok(self.buf.take(n));
            }
        }
        let mut scan = Scan::default();
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| {
                let n = std::task::ready!(self.poll_line(cx, &mut scan))?;
                Poll::Ready(Ok(self.buf.take(n)))
            })
        })
        .await
    }

    /// Reads through the next `b"\n"` (included), as [`readline`](Self::readline), but
    /// appends the line to `line` instead of returning a new vector, and gives its length
    /// (0 at end of stream, with nothing appended). A loop that clears and reuses one
    /// vector allocates nothing per line (as `BufRead::read_until` in std):
    ///
    /// ```
    /// # use ringleader_io::streams::split;
    /// # use ringleader_io::net::UnixStream;
    /// # ringleader_runtime::run(async {
    /// let (a, b) = UnixStream::pair()?;
    /// let (mut reader, _w) = split(a);
    /// let (_r, writer) = split(b);
    /// writer.write(b"one\ntwo\n");
    /// writer.close();
    /// let mut line = Vec::new();
    /// let mut got = Vec::new();
    /// loop {
    ///     line.clear();
    ///     if reader.readline_into(&mut line).await? == 0 {
    ///         break; // end of stream
    ///     }
    ///     got.push(String::from_utf8_lossy(&line).into_owned());
    /// }
    /// assert_eq!(got, ["one\n", "two\n"]);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`readline`](Self::readline); nothing is appended on an error.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs): bytes are appended only when the call completes.
    pub async fn readline_into(&mut self, line: &mut Vec<u8>) -> Result<usize, ReadError> {
        // The common case, a whole line already buffered: one search and one copy (and a
        // unit of budget, as in `readline`).
        if ringleader_coop::has_budget_remaining() {
            if let Some(n) = self
                .buf
                .take_through_into(b'\n', self.limit, find_byte, line)
            {
                ringleader_coop::spend();
                return Ok(n);
            }
        }
        let mut scan = Scan::default();
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| {
                let n = std::task::ready!(self.poll_line(cx, &mut scan))?;
                self.buf.take_into(n, line);
                Poll::Ready(Ok(n))
            })
        })
        .await
    }

    /// The length of the first buffered line (newline included), if one is buffered
    /// within the limit.
    #[inline]
    fn buffered_line(&self) -> Option<usize> {
        let at = find_byte(b'\n', self.buf.data())?;
        (at <= self.limit).then_some(at + 1)
    }

    /// Waits for a line: the length to take out of the buffer (what remains at end of
    /// stream, 0 once nothing does), or readline's errors (an overlong line discarded).
    fn poll_line(
        &mut self,
        cx: &mut Context<'_>,
        scan: &mut Scan,
    ) -> Poll<Result<usize, ReadError>> {
        match std::task::ready!(self.poll_find(cx, &[b"\n"], scan)) {
            Ok(Found::Through(n) | Found::End(n)) => Poll::Ready(Ok(n)),
            Err(ReadError::LimitOverrun(e)) => {
                *scan = Scan::default();
                let data = self.buf.data();
                let through = if data.get(e.consumed) == Some(&b'\n') {
                    e.consumed + 1
                } else {
                    data.len()
                };
                self.buf.consume(through);
                Poll::Ready(Err(ReadError::LimitOverrun(e)))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_readline(
        &mut self,
        cx: &mut Context<'_>,
        scan: &mut Scan,
    ) -> Poll<Result<Vec<u8>, ReadError>> {
        let n = std::task::ready!(self.poll_line(cx, scan))?;
        Poll::Ready(Ok(self.buf.take(n)))
    }

    /// Reads through the next `separator` (included), as asyncio's `readuntil`.
    ///
    /// # Errors
    /// - [`ReadError::LimitOverrun`] if the separator is not within the limit (the data
    ///   before the separator would be longer than the limit): the data stays buffered, so
    ///   the caller can read it out with [`read`](Self::read) or
    ///   [`readexactly`](Self::readexactly), or raise the limit and call again.
    /// - [`ReadError::IncompleteRead`] if the stream ends before a separator, carrying
    ///   what remained (taken out of the buffer).
    /// - [`ReadError::Io`]: the socket's error, or `InvalidInput` for an empty separator.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn readuntil(&mut self, separator: &[u8]) -> Result<Vec<u8>, ReadError> {
        self.readuntil_any(&[separator]).await
    }

    /// Reads through the first of several separators (asyncio 3.13's `readuntil` given a
    /// tuple): the shortest data that ends with any of them. If two matches end at the same
    /// byte, the shorter separator is the one that matched (for the limit, as asyncio).
    ///
    /// ```
    /// # use ringleader_io::streams::split;
    /// # use ringleader_io::net::UnixStream;
    /// # ringleader_runtime::run(async {
    /// let (a, b) = UnixStream::pair()?;
    /// let (mut reader, _w) = split(a);
    /// let (_r, writer) = split(b);
    /// writer.write(b"one\r\ntwo\nthree");
    /// writer.close();
    /// let seps: [&[u8]; 2] = [b"\r\n", b"\n"];
    /// assert_eq!(reader.readuntil_any(&seps).await?, b"one\r\n");
    /// assert_eq!(reader.readuntil_any(&seps).await?, b"two\n");
    /// let end = reader.readuntil_any(&seps).await.unwrap_err();
    /// assert_eq!(end.incomplete().unwrap().partial, b"three");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`readuntil`](Self::readuntil); `InvalidInput` if `separators` is empty or holds
    /// an empty separator.
    ///
    /// # Cancel safety
    /// Cancel safe (see the type's docs).
    pub async fn readuntil_any(&mut self, separators: &[&[u8]]) -> Result<Vec<u8>, ReadError> {
        if separators.is_empty() || separators.iter().any(|s| s.is_empty()) {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the separator is empty",
            )));
        }
        // Shortest first: on a tie in where matches end, the shorter one is kept.
        let sorted: Vec<&[u8]>;
        let seps = if separators.len() == 1 {
            separators
        } else {
            let mut v = separators.to_vec();
            v.sort_by_key(|s| s.len());
            sorted = v;
            &sorted[..]
        };
        let mut scan = Scan::default();
        poll_fn(|cx| {
            poll_budgeted(cx, |cx| {
                Poll::Ready(
                    match std::task::ready!(self.poll_find(cx, seps, &mut scan))? {
                        Found::Through(n) => Ok(self.buf.take(n)),
                        Found::End(n) => Err(ReadError::IncompleteRead(IncompleteReadError {
                            partial: self.buf.take(n),
                            expected: None,
                        })),
                    },
                )
            })
        })
        .await
    }

    /// Waits until the buffer holds one of `seps` (not empty, shortest first) within the
    /// limit (the length through the match ending first) or the stream ended without one
    /// (the length remaining). Takes nothing out.
    fn poll_find(
        &mut self,
        cx: &mut Context<'_>,
        seps: &[&[u8]],
        scan: &mut Scan,
    ) -> Poll<Result<Found, ReadError>> {
        let longest = seps.iter().map(|s| s.len()).max().unwrap_or(1);
        loop {
            let data = self.buf.data();
            let len = data.len();
            let from = scan.scanned.min(len);
            // (start, end) of the match ending first.
            let mut best: Option<(usize, usize)> = None;
            for sep in seps {
                if let Some(i) = find(&data[from..], sep) {
                    let start = from + i;
                    let end = start + sep.len();
                    if best.is_none_or(|(_, e)| end < e) {
                        best = Some((start, end));
                    }
                }
            }
            if let Some((at, end)) = best {
                if at > self.limit {
                    return Poll::Ready(Err(ReadError::LimitOverrun(LimitOverrunError {
                        consumed: at,
                        limit: self.limit,
                    })));
                }
                *scan = Scan::default();
                return Poll::Ready(Ok(Found::Through(end)));
            }
            // No separator starts before here (one may straddle the end).
            let offset = (len + 1).saturating_sub(longest);
            scan.scanned = offset;
            if offset > self.limit {
                return Poll::Ready(Err(ReadError::LimitOverrun(LimitOverrunError {
                    consumed: offset,
                    limit: self.limit,
                })));
            }
            if self.buf.eof() {
                *scan = Scan::default();
                return Poll::Ready(Ok(Found::End(len)));
            }
            // Never receive past the point where the overrun shows: at most the limit plus
            // the longest separator is buffered.
            let want = (self.limit + longest).saturating_sub(len).max(1);
            std::task::ready!(self.buf.poll_fill(cx, want))?;
        }
    }

    /// The lines of the stream, as asyncio's `async for line in reader`: each item is
    /// [`readline`](Self::readline)'s (newline included; the last line may lack one); the
    /// stream ends at end of stream.
    ///
    /// ```
    /// # use ringleader_io::streams::split;
    /// # use ringleader_io::net::UnixStream;
    /// use futures_core::Stream;
    /// # ringleader_runtime::run(async {
    /// let (a, b) = UnixStream::pair()?;
    /// let (mut reader, _w) = split(a);
    /// let (_r, writer) = split(b);
    /// writer.write(b"one\ntwo\n");
    /// writer.close();
    /// writer.wait_closed().await?;
    /// let mut lines = reader.lines();
    /// let mut got = Vec::new();
    /// while let Some(line) = std::future::poll_fn(|cx| {
    ///     std::pin::Pin::new(&mut lines).poll_next(cx)
    /// })
    /// .await
    /// {
    ///     got.push(line?);
    /// }
    /// assert_eq!(got, [b"one\n".to_vec(), b"two\n".to_vec()]);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn lines(&mut self) -> Lines<'_> {
        Lines {
            reader: self,
            scan: Scan::default(),
        }
    }
}

/// The lines of a [`StreamReader`], from [`StreamReader::lines`]: a
/// [`Stream`](futures_core::Stream) of `Result<Vec<u8>, ReadError>`.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Lines<'a> {
    reader: &'a mut StreamReader,
    scan: Scan,
}

impl Stream for Lines<'_> {
    type Item = Result<Vec<u8>, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (reader, scan) = (&mut *this.reader, &mut this.scan);
        match std::task::ready!(poll_budgeted(cx, |cx| reader.poll_readline(cx, scan))) {
            Ok(line) if line.is_empty() => Poll::Ready(None),
            other => Poll::Ready(Some(other)),
        }
    }
}
