//! The attributes' compile errors, one file per kind of misuse (`tests/ui/*.rs`, each with
//! the compiler output it must give in `*.stderr`), and one file of uses that must compile
//! and run. Regenerate the outputs with `TRYBUILD=overwrite cargo test -p ringleader-macros
//! --test compile`, then read them: they are the messages users see.
//!
//! One test function, so trybuild builds the facade once for all the cases.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
