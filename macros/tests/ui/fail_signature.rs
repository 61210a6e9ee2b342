#[ringleader::test]
async fn generic<T: Default>() {
    let _ = T::default();
}

#[ringleader::test]
async fn where_clause() where u8: Copy {}

#[ringleader::test]
async unsafe fn not_safe() {}

#[ringleader::test]
const async fn constant() {}

#[ringleader::test]
async extern "C" fn foreign() {}

#[ringleader::test]
fn many_problems_at_once<T>(x: T) {
    drop(x);
}

fn main() {}
