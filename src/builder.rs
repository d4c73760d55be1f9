//! One builder that wires the layer, the statistics and (as features land) the
//! exporters.

use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt as _;

use crate::handle::Vidperf;
use crate::parts::Wiring;
use vidperf_core::{PerfLayer, PerfLayerBuilder, Sink, Stats, StatsConfig};

/// Configures vidperf. Settings made in code win over environment variables, which win
/// over the defaults (see the crate docs for the table).
#[must_use]
#[derive(Debug, Default)]
pub struct Builder {
    history_limit: Option<usize>,
    max_keys: Option<usize>,
    max_active: Option<usize>,
    stats: Option<StatsConfig>,
    sinks: Sinks,
    read_env: Option<bool>,
    #[cfg(any(feature = "system", feature = "gpu"))]
    pub(crate) monitor: crate::resources::Setting,
    #[cfg(feature = "http-api")]
    pub(crate) http: crate::http::Setting,
    #[cfg(feature = "otlp")]
    pub(crate) otlp: crate::otlp::Setting,
    #[cfg(feature = "watch")]
    pub(crate) watch: crate::watch::Setting,
}

/// Sinks of the user's own, added to the layer after vidperf's.
type AddSink = Box<dyn FnOnce(PerfLayerBuilder) -> PerfLayerBuilder>;

#[derive(Default)]
struct Sinks(Vec<AddSink>);

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} sinks", self.0.len())
    }
}

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

/// What [`Builder::build`] made: the layer to add to a subscriber and the handle
/// whose background parts (resource monitor, HTTP server, OTLP export) already run.
#[derive(Debug)]
#[non_exhaustive]
pub struct Built {
    /// The layer.
    pub layer: PerfLayer,
    /// The handle.
    pub vidperf: Vidperf,
}

/// Why [`Builder::install`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The configuration was rejected.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Another global subscriber is already installed. What was built comes back
    /// (its background parts run): add the layer to your own subscriber, or shut the
    /// handle down.
    #[error(
        "a global tracing subscriber is already installed; add the layer from vidperf::builder().build() to it instead"
    )]
    AlreadyInstalled(Box<Built>),
}

/// `VIDPERF_HISTORY_LIMIT`: records kept for export.
pub const ENV_HISTORY_LIMIT: &str = "VIDPERF_HISTORY_LIMIT";
/// `VIDPERF_MAX_KEYS`: distinct strategies / operation types aggregated.
pub const ENV_MAX_KEYS: &str = "VIDPERF_MAX_KEYS";
/// `VIDPERF_MAX_ACTIVE`: active operations listed.
pub const ENV_MAX_ACTIVE: &str = "VIDPERF_MAX_ACTIVE";

static GLOBAL: OnceLock<Vidperf> = OnceLock::new();

/// The value of `var`, `None` when unset; a build error when it is not UTF-8.
pub(crate) fn env_text(var: &'static str) -> Result<Option<String>, BuildError> {
    match std::env::var(var) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(BuildError::InvalidEnv {
            var,
            value: raw.to_string_lossy().into_owned(),
            expected: "UTF-8 text",
        }),
    }
}

/// An on/off switch in `var`: `on`, `true`, `1` or `off`, `false`, `0` (any case);
/// `None` when unset or empty, a build error for anything else.
pub(crate) fn env_switch(var: &'static str) -> Result<Option<bool>, BuildError> {
    let Some(value) = env_text(var)? else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "on" | "true" | "1" => Ok(Some(true)),
        "off" | "false" | "0" => Ok(Some(false)),
        _ => Err(BuildError::InvalidEnv {
            var,
            value,
            expected: "on, off, true, false, 1 or 0",
        }),
    }
}

/// The whole number in `var`, `None` when unset; a build error when malformed.
pub(crate) fn env_number(var: &'static str) -> Result<Option<usize>, BuildError> {
    match env_text(var)? {
        None => Ok(None),
        Some(value) => match value.trim().parse() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(BuildError::InvalidEnv {
                var,
                value,
                expected: "a non-negative whole number",
            }),
        },
    }
}

/// The handle of the vidperf instance installed with [`Builder::install`] or
/// [`init`](crate::init), if any — the original design's `get_performance_tracker()`.
pub fn global() -> Option<&'static Vidperf> {
    GLOBAL.get()
}

impl Builder {
    /// Records kept for export and `recent` (default 10,000; `VIDPERF_HISTORY_LIMIT`).
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = Some(limit);
        self
    }

    /// Distinct strategies, and operation types, aggregated separately before the
    /// rest count under `__overflow__` (default 64; `VIDPERF_MAX_KEYS`).
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = Some(max);
        self
    }

    /// Active operations listed (default 10,000; `VIDPERF_MAX_ACTIVE`).
    pub fn max_active(mut self, max: usize) -> Self {
        self.max_active = Some(max);
        self
    }

    /// The rest of the statistics configuration (trend windows and points). The
    /// limits set with the methods above or the environment take precedence.
    pub fn stats_config(mut self, config: StatsConfig) -> Self {
        self.stats = Some(config);
        self
    }

    /// Adds a sink of your own; it receives every finished span after the statistics.
    pub fn sink<T: Sink>(mut self, sink: T) -> Self {
        self.sinks.0.push(Box::new(move |b| b.sink(sink)));
        self
    }

    /// Ignores `VIDPERF_*` environment variables (useful in tests).
    pub fn without_env(mut self) -> Self {
        self.read_env = Some(false);
        self
    }

    /// Whether environment variables are read (yes unless [`Builder::without_env`]).
    fn reads_env(&self) -> bool {
        self.read_env.unwrap_or(true)
    }

    fn resolve(
        &self,
        code: Option<usize>,
        var: &'static str,
        default: usize,
    ) -> Result<usize, BuildError> {
        if let Some(v) = code {
            return Ok(v);
        }
        if !self.reads_env() {
            return Ok(default);
        }
        Ok(env_number(var)?.unwrap_or(default))
    }

    /// The layer to add to your own subscriber, and the handle to query it.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// let (layer, vidperf) = vidperf::builder().history_limit(1_000).build()?;
    /// let subscriber = tracing_subscriber::registry().with(layer);
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::info_span!("upscale", strategy = "vsrm").in_scope(|| {});
    /// });
    /// assert_eq!(vidperf.snapshot().summary.total_operations, 1);
    /// # Ok::<(), vidperf::BuildError>(())
    /// ```
    pub fn build(self) -> Result<(PerfLayer, Vidperf), BuildError> {
        let defaults = StatsConfig::default();
        let config = self
            .stats
            .clone()
            .unwrap_or_default()
            .with_history_limit(self.resolve(
                self.history_limit,
                ENV_HISTORY_LIMIT,
                defaults.history_limit,
            )?)
            .with_max_keys(self.resolve(self.max_keys, ENV_MAX_KEYS, defaults.max_keys)?)
            .with_max_active(self.resolve(self.max_active, ENV_MAX_ACTIVE, defaults.max_active)?);
        crate::parts::check_not_built(self.reads_env())?;
        // The statistics are the one source every reader uses (the handle, the HTTP
        // routes, the exports, the OTLP metrics): each part registers its health with
        // them, and their sink comes first.
        let stats = Arc::new(Stats::new(config));
        let mut wiring = Wiring {
            read_env: self.reads_env(),
            stats: stats.clone(),
            layer: PerfLayer::builder().sink(stats.clone()),
            signals: vidperf_core::signals::Signals::default(),
            #[cfg(feature = "http-api")]
            watch: None,
            warnings: Vec::new(),
            parts: Vec::new(),
        };
        for start in crate::parts::PARTS {
            start(&self, &mut wiring)?;
        }
        let mut layer = wiring.layer;
        for add in self.sinks.0 {
            layer = add(layer);
        }
        let layer = layer.build();
        stats.add_health_source(layer.clone());
        Ok((layer, Vidperf::new(stats, wiring.parts, wiring.warnings)))
    }

    /// Builds and installs vidperf as the global default subscriber (a
    /// [`Registry`](tracing_subscriber::Registry) with the layer), and returns the
    /// handle, also reachable later through [`global`]. With the `nvtx` feature, when an
    /// NVTX tool is attached (Nsight Systems sets `NVTX_INJECTION64_PATH`), the subscriber
    /// also turns every span into an NVTX range.
    pub fn install(self) -> Result<Vidperf, InstallError> {
        let (layer, handle) = self.build()?;
        let subscriber = tracing_subscriber::registry().with(layer.clone());
        // Under Nsight Systems (an NVTX tool attached), every span is also a range.
        #[cfg(feature = "nvtx")]
        let subscriber = subscriber.with(vidperf_nvtx::NvtxLayer::if_attached());
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            return Err(InstallError::AlreadyInstalled(Box::new(Built {
                layer,
                vidperf: handle,
            })));
        }
        let _ = GLOBAL.set(handle.clone());
        Ok(handle)
    }
}
