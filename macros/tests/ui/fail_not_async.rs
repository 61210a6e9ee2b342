#[ringleader::main]
fn main() {}

#[ringleader::test]
fn sync_test() {}
