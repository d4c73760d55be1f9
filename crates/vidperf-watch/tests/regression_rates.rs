//! False alarms and power of the comparison at its defaults, on fewer simulated
//! comparisons than docs/REGRESSIONS.md's (seeded: the same verdicts every run).

#[path = "../examples/regression_sim.rs"]
#[allow(dead_code)]
mod sim;

use sim::Shape;

#[test]
fn same_distributions_are_rarely_called_regressed() {
    for (shape, n, seed) in [
        (
            Shape::LogNormal {
                median: 0.5,
                sigma: 0.3,
            },
            30,
            11,
        ),
        (
            Shape::Bimodal {
                fast: 0.4,
                slow: 0.8,
            },
            100,
            12,
        ),
    ] {
        let (any, _) = sim::rate(shape, n, 1.0, 200, seed);
        assert!(
            any <= 0.02,
            "{} at n = {n}: {:.1}% regressed",
            shape.name(),
            any * 100.0
        );
    }
}

#[test]
fn a_ten_percent_slowdown_is_found_at_a_hundred_operations() {
    let shape = Shape::LogNormal {
        median: 0.5,
        sigma: 0.1,
    };
    let (_, p50) = sim::rate(shape, 100, 1.10, 100, 13);
    assert!(p50 >= 0.9, "{:.1}% detected", p50 * 100.0);
}
