#[vidperf::track(strategy = "vsrm")]
struct Enhancer;

fn main() {}
