//! The reader's errors: asyncio's `IncompleteReadError` and `LimitOverrunError`, and the
//! enum its methods return. Each converts into an `io::Error` for `?` in `io::Result` code.

use std::fmt;
use std::io;

/// The stream ended before a read could be satisfied (asyncio's `IncompleteReadError`):
/// the bytes read until the end are given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteReadError {
    /// Every byte read before the end (taken out of the reader's buffer).
    pub partial: Vec<u8>,
    /// How many bytes were asked for: `Some(n)` for `readexactly(n)`, `None` for
    /// `readuntil` (a separator was expected).
    pub expected: Option<usize>,
}

impl fmt::Display for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(n) => write!(
                f,
                "{} bytes read on a total of {} expected bytes",
                self.partial.len(),
                n
            ),
            None => write!(
                f,
                "{} bytes read on a total of undefined expected bytes",
                self.partial.len()
            ),
        }
    }
}

impl std::error::Error for IncompleteReadError {}

impl From<IncompleteReadError> for io::Error {
    /// `UnexpectedEof`, carrying the error (get it back with `into_inner` and a downcast).
    fn from(err: IncompleteReadError) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, err)
    }
}

/// A separator was not found within the reader's limit (asyncio's `LimitOverrunError`).
///
/// For `readuntil` the data stays in the reader's buffer: read it out with `read(n)` or
/// `readexactly(consumed)`, or raise the limit and call `readuntil` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverrunError {
    /// How many bytes of the buffer can be taken without reaching into a separator: the
    /// separator's offset if it was found beyond the limit, otherwise every buffered byte
    /// that cannot be the start of one.
    pub consumed: usize,
    /// The limit in force.
    pub limit: usize,
}

impl fmt::Display for LimitOverrunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "separator not found within the limit of {} bytes ({} bytes buffered before it)",
            self.limit, self.consumed
        )
    }
}

impl std::error::Error for LimitOverrunError {}

impl From<LimitOverrunError> for io::Error {
    /// `InvalidData`, carrying the error.
    fn from(err: LimitOverrunError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }
}

/// Why a [`StreamReader`](super::StreamReader) read failed: the socket's error, the end of
/// the stream before the read was satisfied, or a line over the limit. Converts into
/// `io::Error` (kinds: the socket's, `UnexpectedEof`, `InvalidData`), so `?` works in
/// functions returning `io::Result`.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed (`ConnectionReset`, ...).
    Io(io::Error),
    /// The stream ended first; the partial data is in the error.
    IncompleteRead(IncompleteReadError),
    /// No separator within the limit.
    LimitOverrun(LimitOverrunError),
}

impl ReadError {
    /// The partial data, if the stream ended first.
    pub fn incomplete(&self) -> Option<&IncompleteReadError> {
        match self {
            ReadError::IncompleteRead(e) => Some(e),
            _ => None,
        }
    }

    /// The overrun, if a separator was not found within the limit.
    pub fn limit_overrun(&self) -> Option<&LimitOverrunError> {
        match self {
            ReadError::LimitOverrun(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::IncompleteRead(e) => e.fmt(f),
            ReadError::LimitOverrun(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::IncompleteRead(e) => Some(e),
            ReadError::LimitOverrun(e) => Some(e),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> ReadError {
        ReadError::Io(err)
    }
}

impl From<IncompleteReadError> for ReadError {
    fn from(err: IncompleteReadError) -> ReadError {
        ReadError::IncompleteRead(err)
    }
}

impl From<LimitOverrunError> for ReadError {
    fn from(err: LimitOverrunError) -> ReadError {
        ReadError::LimitOverrun(err)
    }
}

impl From<ReadError> for io::Error {
    fn from(err: ReadError) -> io::Error {
        match err {
            ReadError::Io(e) => e,
            ReadError::IncompleteRead(e) => e.into(),
            ReadError::LimitOverrun(e) => e.into(),
        }
    }
}
