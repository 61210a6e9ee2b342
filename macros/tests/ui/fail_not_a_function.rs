#[ringleader::main]
struct Main;

fn main() {}
