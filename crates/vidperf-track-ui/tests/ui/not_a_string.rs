#[vidperf::track(strategy = vsrm)]
fn enhance() {}

fn main() {}
