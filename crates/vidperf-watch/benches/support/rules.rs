//! The rule set both alert benchmarks load: 20 rules over two windows, none with a
//! strategy (each is one alert per strategy seen), none that fires.

/// Strategies with operations in the statistics.
pub(crate) const STRATEGIES: usize = 64;

const METRICS: [&str; 10] = [
    "duration_p50",
    "duration_p95",
    "duration_p99",
    "failure_rate",
    "fps",
    "quality",
    "peak_memory_bytes",
    "peak_gpu_memory_fraction",
    "active_operations",
    "duration_p95",
];

/// The rule file's text, evaluated every `interval` ("5s", "100ms").
pub(crate) fn twenty_rules(interval: &str) -> String {
    let mut text = format!("evaluation_interval = \"{interval}\"\n");
    for r in 0..20 {
        let metric = METRICS[r % METRICS.len()];
        let window = if r % 2 == 0 { "1m" } else { "5m" };
        let side = if r % 3 == 0 {
            "below = 0.000001"
        } else {
            "above = 1e12"
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"Rule{r}\"\nmetric = \"{metric}\"\n{side}\nwindow = \"{window}\"\n\
             for = \"30s\"\nmin_samples = 5\n"
        ));
    }
    text
}
