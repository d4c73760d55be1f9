//! One builder that wires the layer, the statistics and (as features land) the
//! exporters.

use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt as _;

use crate::env::env_number;
use crate::error::BuildError;
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
        // reason: a build with no part (every feature off) starts none.
        #[cfg_attr(
            not(any(
                feature = "system",
                feature = "gpu",
                feature = "otlp",
                feature = "watch",
                feature = "http-api"
            )),
            allow(unused_mut)
        )]
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
        // The parts in the order they start: the watcher reads the monitor's and the
        // export's signals, and the server shows the watcher. They stop in the reverse
        // order.
        #[cfg(any(feature = "system", feature = "gpu"))]
        crate::resources::start(&self.monitor, &mut wiring)?;
        #[cfg(feature = "otlp")]
        crate::otlp::start(&self.otlp, &mut wiring)?;
        #[cfg(feature = "watch")]
        crate::watch::start(&self.watch, &mut wiring)?;
        #[cfg(feature = "http-api")]
        crate::http::start(&self.http, &mut wiring)?;
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

#[cfg(any(feature = "system", feature = "gpu"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "system", feature = "gpu"))))]
impl Builder {
    /// Samples resources with this configuration instead of the defaults (and instead
    /// of the `VIDPERF_SAMPLE_INTERVAL_MS` / `VIDPERF_NVML_LIBRARY` /
    /// `VIDPERF_BOUNDARY_READS` variables).
    pub fn resource_monitor(mut self, config: crate::resources::MonitorConfig) -> Self {
        self.monitor = crate::resources::Setting::Config(config);
        self
    }

    /// No resource monitor: the resource columns stay empty.
    pub fn without_resource_monitor(mut self) -> Self {
        self.monitor = crate::resources::Setting::Off;
        self
    }
}

#[cfg(feature = "http-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-api")))]
impl Builder {
    /// Serves the HTTP API on `addr` from a background thread once built. Bind
    /// `127.0.0.1` unless the API must be reachable from elsewhere (then set a token).
    pub fn http_api(mut self, addr: std::net::SocketAddr) -> Self {
        self.http.addr = Some(addr);
        self
    }

    /// Limits and token of the HTTP API (instead of the defaults and `VIDPERF_HTTP_TOKEN`).
    pub fn http_api_config(mut self, config: crate::http::ApiConfig) -> Self {
        self.http.config = Some(config);
        self
    }
}

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
impl Builder {
    /// Exports traces and metrics over OTLP with this configuration (start from
    /// [`OtelConfig::from_env`](crate::otlp::OtelConfig::from_env) to keep the standard variables).
    pub fn otlp(mut self, config: crate::otlp::OtelConfig) -> Self {
        self.otlp.export = crate::otlp::Export::On(Box::new(config));
        self
    }

    /// No OTLP export, whatever the environment says.
    pub fn without_otlp(mut self) -> Self {
        self.otlp.export = crate::otlp::Export::Off;
        self
    }

    /// Decides with `config` which local traces are exported, when they end (instead
    /// of `VIDPERF_TAIL_SAMPLING=on`, which uses the defaults): every failed trace,
    /// every operation slower than its pair's live p95, operations near the GPU's
    /// memory, and a background fraction. Statistics and metrics still count every
    /// operation; exemplars point only at exported traces.
    pub fn tail_sampling(mut self, config: crate::otlp::TailConfig) -> Self {
        self.otlp.tail = Some(config);
        self
    }
}

#[cfg(feature = "watch")]
impl Builder {
    /// Evaluates the alert rules in this TOML file (instead of `VIDPERF_ALERT_RULES`).
    /// A mistake in it is a build error naming the file, the line and the field.
    pub fn alert_rules_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.watch.rules = Some(crate::watch::Rules::File(path.into()));
        self
    }

    /// Evaluates these alert rules.
    pub fn alert_rules(mut self, rules: crate::watch::RuleSet) -> Self {
        self.watch.rules = Some(crate::watch::Rules::Set(rules));
        self
    }

    /// Delivers alerts to the Alertmanager at `url` (instead of
    /// `VIDPERF_ALERTMANAGER_URL`).
    pub fn alertmanager(mut self, url: impl Into<String>) -> Self {
        self.watch.alertmanager = Some(url.into());
        self
    }

    /// Compares the live window with the JSON export at `path` every 30 seconds
    /// (instead of `VIDPERF_BASELINE`). A file that cannot be read is a build error
    /// naming it.
    pub fn baseline(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.watch.baseline = Some(path.into());
        self
    }

    /// The live window compared with the baseline (instead of
    /// `VIDPERF_BASELINE_WINDOW`; default 10 minutes, at most what the statistics keep).
    pub fn baseline_window(mut self, window: std::time::Duration) -> Self {
        self.watch.baseline_window = Some(window);
        self
    }

    /// How often the live window is compared with the baseline (default 30 s; at
    /// least 100 ms).
    pub fn baseline_interval(mut self, interval: std::time::Duration) -> Self {
        self.watch.baseline_interval = Some(interval);
        self
    }
}
