//! Every kind of return type compiles, and keeps its value.

struct Frames(u64);

impl vidperf::OperationOutcome for Frames {
    fn frames_processed(&self) -> Option<u64> {
        Some(self.0)
    }
}

#[derive(Debug)]
struct NotDisplay;

#[vidperf::track(strategy = "vsrm")]
fn unit() {}

#[vidperf::track(strategy = "vsrm")]
fn number() -> u32 {
    7
}

#[vidperf::track(strategy = "vsrm")]
fn bytes() -> Vec<u8> {
    vec![1, 2, 3]
}

#[vidperf::track(strategy = "vsrm")]
fn reference(input: &str) -> &str {
    input
}

#[vidperf::track(strategy = "vsrm")]
fn outcome() -> Frames {
    Frames(3)
}

#[vidperf::track(strategy = "vsrm")]
fn result_of_outcome() -> Result<Frames, std::fmt::Error> {
    Ok(Frames(4))
}

#[vidperf::track(strategy = "vsrm")]
fn result_of_number() -> Result<u32, std::num::ParseIntError> {
    "12".parse()
}

#[vidperf::track(strategy = "vsrm")]
fn result_without_display() -> Result<u32, NotDisplay> {
    Err(NotDisplay)
}

#[vidperf::track(strategy = "vsrm")]
fn option() -> Option<String> {
    None
}

#[vidperf::track(strategy = "vsrm")]
fn iterator() -> impl Iterator<Item = u8> {
    [1u8, 2].into_iter()
}

#[vidperf::track(strategy = "vsrm")]
async fn later() -> u64 {
    5
}

fn main() {
    unit();
    assert_eq!(number(), 7);
    assert_eq!(bytes(), vec![1, 2, 3]);
    assert_eq!(reference("x"), "x");
    assert_eq!(outcome().0, 3);
    assert_eq!(result_of_outcome().map(|f| f.0), Ok(4));
    assert_eq!(result_of_number(), Ok(12));
    assert!(result_without_display().is_err());
    assert_eq!(option(), None);
    assert_eq!(iterator().count(), 2);
    let _ = later();
}
