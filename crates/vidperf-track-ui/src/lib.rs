//! Compile tests of `#[vidperf::track]` (in `tests/`). A crate of its own so that
//! the macro crate, a proc-macro, has no dev-dependency on the crate that uses it.
