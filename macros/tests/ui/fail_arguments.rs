#[ringleader::main]
async fn main(args: Vec<String>) {
    drop(args);
}

#[ringleader::test]
async fn with_fixture(name: &str, size: usize) {
    let _ = (name, size);
}
