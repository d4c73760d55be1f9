#[vidperf::track(strategy = "vsrm", kind = "enhancement")]
fn enhance() {}

fn main() {}
