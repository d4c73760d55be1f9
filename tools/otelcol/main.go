// Code generated in the style of "go.opentelemetry.io/collector/cmd/builder" (ocb),
// written by hand: the builder itself is not run here.

// Program otelcol-vidperf is a small OpenTelemetry Collector distribution used as a
// real test peer for vidperf (OTLP in; tail sampling, transform, spanmetrics; OTLP,
// file, debug and Prometheus out). Every collector module is pinned to one release:
// contrib v0.161.0 / core v0.161.0 (stable modules v1.67.0).
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	envprovider "go.opentelemetry.io/collector/confmap/provider/envprovider"
	fileprovider "go.opentelemetry.io/collector/confmap/provider/fileprovider"
	httpprovider "go.opentelemetry.io/collector/confmap/provider/httpprovider"
	httpsprovider "go.opentelemetry.io/collector/confmap/provider/httpsprovider"
	yamlprovider "go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	info := component.BuildInfo{
		Command:     "otelcol-vidperf",
		Description: "OpenTelemetry Collector built for vidperf's integration tests",
		Version:     "0.161.0-vidperf",
	}

	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					httpprovider.NewFactory(),
					httpsprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
			},
		},
	}

	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatalf("collector server run finished with error: %v", err)
	}
}
