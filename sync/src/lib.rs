//! Async synchronisation primitives for ringleader, usable under any executor.
