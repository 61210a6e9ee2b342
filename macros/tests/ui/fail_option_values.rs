#[ringleader::test(worker_threads = "2")]
async fn threads_as_a_string() {}

#[ringleader::test(worker_threads = 0)]
async fn zero_threads() {}

#[ringleader::test(worker_threads = 1 + 1)]
async fn threads_as_an_expression() {}

#[ringleader::test(flavor = current_thread)]
async fn flavor_unquoted() {}

#[ringleader::test(flavor = "single_thread")]
async fn unknown_flavor() {}

#[ringleader::test(start_paused = 1)]
async fn paused_as_a_number() {}

#[ringleader::test(start_paused)]
async fn paused_without_a_value() {}

#[ringleader::test(debug = "yes")]
async fn debug_as_a_string() {}

#[ringleader::test(crate = ringleader)]
async fn crate_unquoted() {}

#[ringleader::test(crate = "not a path")]
async fn crate_not_a_path() {}

#[ringleader::test(debug = true, debug = false)]
async fn repeated() {}

fn main() {}
