async fn misuse() {
    // `ref` would borrow an output that does not outlive the poll.
    ringleader::select! {
        Some(ref s) = std::future::ready(Some(String::new())) => { let _ = s; }
    }
    // Two `else` branches.
    ringleader::select! {
        _ = std::future::ready(()) => {}
        else => {}
        else => {}
    }
    // Nothing to wait for.
    ringleader::select! {}
    // A handler without the comma that ends it.
    ringleader::select! {
        a = std::future::ready(1) => a
        b = std::future::ready(2) => b,
    }
    // A word other than `biased`.
    ringleader::select! {
        unbiased;
        _ = std::future::ready(()) => {}
    }
    // try_join! without futures has no error type to give.
    let _ = ringleader::try_join!();
}

fn main() {
    drop(misuse());
}
