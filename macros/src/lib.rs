//! `#[ringleader::main]` and `#[ringleader::test]` (being written).
