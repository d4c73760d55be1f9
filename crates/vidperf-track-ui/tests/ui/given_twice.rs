#[vidperf::track(strategy = "vsrm", strategy = "seedvr2")]
fn enhance() {}

fn main() {}
