//! [`BuildError`]: why a configuration was rejected.

/// Why the configuration was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An environment variable holds something other than what it documents.
    #[error("environment variable {var}={value:?} is invalid: expected {expected}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A setting made in code holds something other than what it documents.
    #[error("{setting} {value:?} is invalid: expected {expected}")]
    InvalidSetting {
        /// The setting (`Builder::alertmanager`, …).
        setting: &'static str,
        /// Its value.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// An environment variable asks for a part this build of vidperf leaves out.
    #[error(
        "environment variable {var} is set, but vidperf was built without its `{feature}` feature"
    )]
    FeatureNotBuilt {
        /// The variable.
        var: &'static str,
        /// The cargo feature that builds the part.
        feature: &'static str,
    },
    /// The resource monitor could not start.
    #[cfg(any(feature = "system", feature = "gpu"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
    #[error(transparent)]
    Monitor(#[from] vidperf_sampler::StartError),
    /// The HTTP API could not start (e.g. the address is taken).
    #[cfg(feature = "http-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http-api")))]
    #[error(transparent)]
    Http(#[from] vidperf_server::ServeError),
    /// The OTLP export could not be configured or started.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    #[error(transparent)]
    Otlp(#[from] vidperf_otel::OtelError),
    /// The alert rule file is wrong (the error names the file, line and field).
    #[cfg(feature = "watch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
    #[error(transparent)]
    Rules(#[from] vidperf_watch::RuleError),
    /// The alert rules cannot run (e.g. a window longer than the statistics keep).
    #[cfg(feature = "watch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
    #[error(transparent)]
    Watch(#[from] vidperf_watch::WatchError),
    /// The baseline export cannot be read (the error names the file and why).
    #[cfg(feature = "watch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
    #[error(transparent)]
    Baseline(#[from] vidperf_watch::baseline::BaselineError),
    /// The Alertmanager URL is wrong.
    #[cfg(feature = "alertmanager")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alertmanager")))]
    #[error(transparent)]
    Alertmanager(#[from] vidperf_watch::alertmanager::AlertmanagerError),
}
