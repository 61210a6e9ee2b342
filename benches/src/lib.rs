//! Shared helpers for ringleader's side-by-side benchmarks.
