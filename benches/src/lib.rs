//! ringleader's side-by-side benchmarks live in `benches/` (criterion, `harness = false`);
//! their shared helpers in `benches/common/`. This library is empty: the peers (tokio,
//! async-executor) are dev-dependencies only. See `README.md` for how to run them and the
//! latest figures.
