//! Where OTLP requests go and how: the endpoint and headers from the configuration and
//! the `OTEL_EXPORTER_OTLP_*` variables, over HTTP/protobuf with a blocking client, or
//! over gRPC on the tokio runtime the pipeline was started in.

use std::time::Duration;

use crate::config::{OtelConfig, OtelError, Protocol};

/// Where one signal's requests go.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    /// For HTTP the whole URL (`…/v1/metrics`); for gRPC the server's base URL.
    endpoint: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Http(ureq::Agent),
    #[cfg(feature = "grpc")]
    Grpc(tokio::runtime::Handle),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(_) => f.write_str("http/protobuf"),
            #[cfg(feature = "grpc")]
            Self::Grpc(_) => f.write_str("grpc"),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Why an OTLP request was not delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The collector could not be reached (connection refused, DNS, TLS, reset).
    #[error("{endpoint}: {source}")]
    Unreachable {
        /// Where the request went.
        endpoint: String,
        /// What the client said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The collector answered with an error status.
    #[error("{endpoint}: HTTP {status}")]
    Status {
        /// Where the request went.
        endpoint: String,
        /// The status.
        status: u16,
        /// The delay the collector asked for (`Retry-After`), if any.
        retry_after: Option<Duration>,
    },
    /// The collector answered a gRPC call with an error.
    #[error("{endpoint}: gRPC status {code}: {message}")]
    Grpc {
        /// Where the request went.
        endpoint: String,
        /// The gRPC status code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// No answer within the export timeout.
    #[error("{endpoint}: no answer within {timeout:?}")]
    Timeout {
        /// Where the request went.
        endpoint: String,
        /// The timeout.
        timeout: Duration,
    },
}

impl ExportError {
    /// Whether sending again may succeed (OTLP's retryable answers: HTTP 429, 502, 503,
    /// 504; gRPC `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and kin; no answer at all).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE,
            // UNAVAILABLE, DATA_LOSS.
            Self::Grpc { code, .. } => matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15),
        }
    }

    /// The delay the collector asked for before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Which OTLP service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Transport {
    /// The transport of `signal` (`traces`, `metrics`): the configured endpoint (base URL,
    /// `/v1/<signal>` appended for HTTP), else `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` (as
    /// is), else `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/<signal>` appended for HTTP), else
    /// the local collector; headers from `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS` or
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub(crate) fn for_signal(config: &OtelConfig, signal: &str) -> Result<Self, OtelError> {
        let upper = signal.to_ascii_uppercase();
        let http = config.protocol == Protocol::HttpProtobuf;
        let append = |base: &str| {
            if http {
                format!("{}/v1/{signal}", base.trim_end_matches('/'))
            } else {
                base.to_owned()
            }
        };
        let endpoint = match &config.endpoint {
            Some(base) => append(base),
            None => match var(&format!("OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")) {
                Some(full) => full,
                None => match var("OTEL_EXPORTER_OTLP_ENDPOINT") {
                    Some(base) => append(&base),
                    None if http => format!("http://localhost:4318/v1/{signal}"),
                    None => "http://localhost:4317".to_owned(),
                },
            },
        };
        let headers = var(&format!("OTEL_EXPORTER_OTLP_{upper}_HEADERS"))
            .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| crate::resource::parse_pairs(&h))
            .unwrap_or_default();
        let kind = match config.protocol {
            Protocol::HttpProtobuf => Kind::Http(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(config.export_timeout))
                    .build()
                    .into(),
            ),
            #[cfg(feature = "grpc")]
            Protocol::Grpc => {
                Kind::Grpc(tokio::runtime::Handle::try_current().map_err(|_| OtelError::NoRuntime)?)
            }
            #[cfg(not(feature = "grpc"))]
            Protocol::Grpc => return Err(OtelError::GrpcNotBuilt),
        };
        Ok(Self {
            endpoint,
            headers,
            timeout: config.export_timeout,
            kind,
        })
    }

    /// Sends one encoded `Export{Trace,Metrics}ServiceRequest`.
    pub(crate) fn send(&self, signal: Signal, body: &[u8]) -> Result<(), ExportError> {
        #[cfg(not(feature = "grpc"))]
        let _ = signal;
        match &self.kind {
            Kind::Http(agent) => self.post(agent, body),
            #[cfg(feature = "grpc")]
            Kind::Grpc(runtime) => self.grpc(runtime, signal, body),
        }
    }

    fn post(&self, agent: &ureq::Agent, body: &[u8]) -> Result<(), ExportError> {
        let mut request = agent
            .post(&self.endpoint)
            .header("content-type", "application/x-protobuf");
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request.send(body).map_err(|e| match e {
            ureq::Error::Timeout(_) => ExportError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            },
            other => ExportError::Unreachable {
                endpoint: self.endpoint.clone(),
                source: Box::new(other),
            },
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(ExportError::Status {
            endpoint: self.endpoint.clone(),
            status: status.as_u16(),
            retry_after,
        })
    }

    #[cfg(feature = "grpc")]
    fn grpc(
        &self,
        runtime: &tokio::runtime::Handle,
        signal: Signal,
        body: &[u8],
    ) -> Result<(), ExportError> {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        use prost::Message as _;
        let endpoint = self.endpoint.clone();
        let headers = self.headers.clone();
        let timeout = self.timeout;
        let unreachable = |e: Box<dyn std::error::Error + Send + Sync>| ExportError::Unreachable {
            endpoint: endpoint.clone(),
            source: e,
        };
        let status = |s: tonic::Status| ExportError::Grpc {
            endpoint: endpoint.clone(),
            code: s.code() as i32,
            message: s.message().to_owned(),
        };
        fn request<T>(message: T, headers: &[(String, String)]) -> tonic::Request<T> {
            let mut request = tonic::Request::new(message);
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                    v.parse(),
                ) {
                    request.metadata_mut().insert(k, v);
                }
            }
            request
        }
        // tonic sends messages, not bytes: the request is decoded once more here (gRPC
        // only; HTTP sends the bytes as they are).
        let call = async {
            match signal {
                Signal::Traces => {
                    let message = ExportTraceServiceRequest::decode(body)
                        .map_err(|e| unreachable(Box::new(e)))?;
                    let mut client = TraceServiceClient::connect(endpoint.clone())
                        .await
                        .map_err(|e| unreachable(Box::new(e)))?;
                    client
                        .export(request(message, &headers))
                        .await
                        .map(drop)
                        .map_err(status)
                }
                Signal::Metrics => {
                    let message = ExportMetricsServiceRequest::decode(body)
                        .map_err(|e| unreachable(Box::new(e)))?;
                    let mut client = MetricsServiceClient::connect(endpoint.clone())
                        .await
                        .map_err(|e| unreachable(Box::new(e)))?;
                    client
                        .export(request(message, &headers))
                        .await
                        .map(drop)
                        .map_err(status)
                }
            }
        };
        runtime.block_on(async {
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| {
                    Err(ExportError::Timeout {
                        endpoint: endpoint.clone(),
                        timeout,
                    })
                })
        })
    }
}
