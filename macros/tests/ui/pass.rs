//! Uses that must compile without warnings, and run.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs)]

use std::time::Duration;

/// Any name, any visibility, doc comments and other attributes are kept.
#[ringleader::main(flavor = "current_thread", start_paused = true, debug = false)]
#[inline(never)]
pub async fn simulate() -> Duration {
    let start = ringleader::time::Instant::now();
    ringleader::time::sleep(Duration::from_secs(60)).await;
    start.elapsed()
}

#[ringleader::main(crate = "::ringleader", worker_threads = 2)]
async fn fallible() -> Result<u64, std::num::ParseIntError> {
    let n: u64 = "41".parse()?;
    if n == 0 {
        return Ok(0);
    }
    Ok(ringleader::spawn(async move { n + 1 }).await.unwrap())
}

#[ringleader::test(flavor = "multi_thread", worker_threads = 1, start_paused = false)]
async fn compiled_as_a_test_only() {}

fn main() {
    assert!(simulate() >= Duration::from_secs(60));
    assert_eq!(fallible(), Ok(42));
}
