#[ringleader::main(threads = 4)]
async fn main() {}

#[ringleader::test(flavour = "current_thread")]
async fn misspelt() {}

#[ringleader::test(runtime::flavor = "current_thread")]
async fn a_path() {}
