//! Where OTLP requests go and how: the endpoint and headers from the configuration and
//! the `OTEL_EXPORTER_OTLP_*` variables, over HTTP/protobuf with a blocking client, or
//! over gRPC on the tokio runtime the pipeline was started in.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::config::{OtelConfig, OtelError, Protocol};

/// Where one signal's requests go.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    /// For HTTP the whole URL (`…/v1/metrics`); for gRPC the server's base URL.
    endpoint: String,
    headers: Vec<(String, String)>,
    // reason: only the gRPC transport bounds its calls itself (the HTTP agent holds it).
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
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

/// `key=value,…` with `%XX` escapes decoded (checked when the configuration was read).
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|item| {
            let (k, v) = item.split_once('=')?;
            Some((k.trim().to_owned(), percent_decode(v.trim())))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
            .map(|h| parse_headers(&h))
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

    /// Sends an encoded metrics request (`body`; gRPC sends `request` itself); the error
    /// says what went wrong.
    pub(crate) fn send_metrics(
        &self,
        body: &[u8],
        request: &ExportMetricsServiceRequest,
    ) -> Result<(), String> {
        match &self.kind {
            Kind::Http(agent) => {
                let _ = request;
                self.post(agent, body)
            }
            #[cfg(feature = "grpc")]
            Kind::Grpc(runtime) => {
                let _ = body;
                self.grpc_metrics(runtime, request.clone())
            }
        }
    }

    fn post(&self, agent: &ureq::Agent, body: &[u8]) -> Result<(), String> {
        let mut request = agent
            .post(&self.endpoint)
            .header("content-type", "application/x-protobuf");
        for (k, v) in &self.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request
            .send(body)
            .map_err(|e| format!("{}: {e}", self.endpoint))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{}: HTTP {status}", self.endpoint))
        }
    }

    #[cfg(feature = "grpc")]
    fn grpc_metrics(
        &self,
        runtime: &tokio::runtime::Handle,
        request: ExportMetricsServiceRequest,
    ) -> Result<(), String> {
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
        let endpoint = self.endpoint.clone();
        let headers = self.headers.clone();
        let timeout = self.timeout;
        runtime.block_on(async move {
            let call = async {
                let mut client = MetricsServiceClient::connect(endpoint.clone())
                    .await
                    .map_err(|e| format!("{endpoint}: {e}"))?;
                let mut request = tonic::Request::new(request);
                for (k, v) in &headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        v.parse(),
                    ) {
                        request.metadata_mut().insert(k, v);
                    }
                }
                client
                    .export(request)
                    .await
                    .map(drop)
                    .map_err(|e| format!("{endpoint}: {e}"))
            };
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_split_and_decoded() {
        assert_eq!(
            parse_headers("api-key=a%2Cb, x = y ,=z"),
            vec![
                ("api-key".to_owned(), "a,b".to_owned()),
                ("x".to_owned(), "y".to_owned())
            ]
        );
    }
}
