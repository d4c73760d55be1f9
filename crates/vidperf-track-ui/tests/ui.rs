//! `#[vidperf::track]` as the compiler sees it: any return type compiles; each mistake
//! in its arguments is one clear error at the right place (the `.stderr` files).

#[test]
fn track_compiles_on_any_function_and_names_each_mistake() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/any_return_type.rs");
    cases.compile_fail("tests/ui/missing_strategy.rs");
    cases.compile_fail("tests/ui/unknown_argument.rs");
    cases.compile_fail("tests/ui/not_a_string.rs");
    cases.compile_fail("tests/ui/given_twice.rs");
    cases.compile_fail("tests/ui/not_a_function.rs");
}
