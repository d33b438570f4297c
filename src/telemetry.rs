//! Tracing setup: human-readable or JSON logs, filtered by the configured
//! directive, and, when `traces.endpoint` is set, OpenTelemetry traces
//! exported over OTLP/HTTP (protobuf): the HTTP request span (with the
//! request id), the GraphQL steps and resolved fields below it, and the
//! database statements below those.

use opentelemetry::{
    Context, KeyValue,
    trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample},
};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    filter::{FilterExt, Targets, dynamic_filter_fn},
    fmt,
    prelude::*,
};

use crate::config::{LogConfig, LogFormat, TracesConfig};

/// Spans made only for traces: the database statements (sea-orm's
/// `tracing-spans`) and async-graphql's per-field spans. Kept out of the log
/// unless the filter names them, so they cost nothing when traces are off.
const TRACE_ONLY: [&str; 2] = ["sea_orm::database=warn", "async_graphql::graphql=warn"];

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// Calling it twice is harmless (the second call does nothing), which tests rely on.
pub fn init(config: &LogConfig) {
    let _ = tracing_subscriber::registry()
        .with(log_layer(config))
        .try_init();
}

/// What [`init_serving`] started; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter. Call it outside
    /// the async runtime: the exporter's HTTP client is a blocking one.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("servicegraph: could not flush the last traces: {e}");
        }
    }
}

/// The subscriber of `serve`: the log, and the OTLP exporter when
/// `traces.endpoint` is set. Call it before the async runtime starts (the
/// exporter's blocking HTTP client must not be made inside it).
pub fn init_serving(log: &LogConfig, traces: &TracesConfig) -> Result<Telemetry, String> {
    let Some(endpoint) = &traces.endpoint else {
        init(log);
        return Ok(Telemetry { provider: None });
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| format!("traces.endpoint: cannot build the OTLP exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(SkipProbes(Sampler::ParentBased(Box::new(
            Sampler::AlwaysOn,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(traces.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("servicegraph");
    // The server's own spans, async-graphql's and the statements; a
    // statement outside any span (the workers') would be a trace of its own.
    let targets = Targets::new()
        .with_target("servicegraph", Level::INFO)
        .with_target("async_graphql", Level::INFO)
        .with_target("sea_orm", Level::INFO);
    let in_a_request = dynamic_filter_fn(|meta, cx| {
        !meta.target().starts_with("sea_orm") || cx.lookup_current().is_some()
    });
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(targets.and(in_a_request));
    let _ = tracing_subscriber::registry()
        .with(log_layer(log))
        .with(otel)
        .try_init();
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Every request is traced except the probes and scrapes (`/healthz`,
/// `/readyz`, `/metrics`): they come every few seconds and would drown the
/// traces worth reading. What runs below a dropped span is dropped too.
#[derive(Debug, Clone)]
struct SkipProbes(Sampler);

const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

impl ShouldSample for SkipProbes {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let probe = name == "request"
            && attributes.iter().any(|kv| {
                kv.key.as_str() == "path" && PROBES.contains(&kv.value.as_str().as_ref())
            });
        if probe {
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: parent
                    .map(|cx| cx.span().span_context().trace_state().clone())
                    .unwrap_or_default(),
            };
        }
        self.0
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}

/// The collector's traces URL: an endpoint without a path gets OTLP's `/v1/traces`.
fn traces_url(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url) if url.path() == "/" || url.path().is_empty() => {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_owned(),
    }
}

fn log_layer(config: &LogConfig) -> Box<dyn Layer<Registry> + Send + Sync> {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok());
    let directives = from_env.unwrap_or_else(|| config.filter.clone());
    let mut filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in TRACE_ONLY {
        let target = directive.split('=').next().unwrap_or_default();
        if !directives.contains(target)
            && let Ok(d) = directive.parse()
        {
            filter = filter.add_directive(d);
        }
    }
    match config.format {
        LogFormat::Human => fmt::layer().with_target(false).with_filter(filter).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    }
}

/// For tests: silent unless `TEST_LOG` is set.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(&LogConfig {
            format: LogFormat::Human,
            filter: "info,servicegraph=debug".into(),
        });
    }
}
