#[vidperf::track(operation = "enhancement")]
fn enhance() {}

fn main() {}
