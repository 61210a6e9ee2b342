//! Structured concurrency for ringleader: task groups, cancel scopes, deadlines, shields and
//! error groups.
//!
//! This crate is being built; it lands after the runtime core and time.
