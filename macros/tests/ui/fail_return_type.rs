// Type errors in the body point at the body, as in any `async fn`.
#[ringleader::main]
async fn main() -> Result<(), String> {
    let n: u32 = "1".parse().map_err(|_| "bad")?;
    Err(n)
}
