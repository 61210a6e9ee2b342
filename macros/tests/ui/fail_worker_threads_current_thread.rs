#[ringleader::main(flavor = "current_thread", worker_threads = 2)]
async fn main() {}

// Reported together with the signature's problems.
#[ringleader::test(flavor = "current_thread", worker_threads = 4)]
fn sync_too() {}
