//! One typed configuration: built-in defaults, then an optional TOML file, then
//! `SERVICEGRAPH_*` environment variables (`__` separates nested keys), then
//! `DATABASE_URL`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the embedded SQLite database and the development secret live.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub graphql: GraphqlConfig,
    pub http: HttpConfig,
    pub cors: CorsConfig,
    pub provider: ProviderConfig,
    pub sla: SlaConfig,
    pub ingest: IngestConfig,
    pub idempotency: IdempotencyConfig,
    pub budget: BudgetConfig,
    pub dev: DevConfig,
    pub metrics: MetricsConfig,
    pub traces: TracesConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`. Empty: a SQLite
    /// file `servicegraph.db` in `data_dir`.
    pub url: Option<String>,
    pub max_connections: u32,
    pub min_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Apply pending migrations on `serve`.
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `servicegraph=debug,info`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted signing algorithms; a token's own `alg` header never widens this list.
    /// Empty: derived from the keys configured (HS256 for a secret, RS256/ES256 for keys).
    pub algorithms: Vec<JwtAlgorithm>,
    /// Shared secret for HS256 (at least 32 bytes).
    pub hs256_secret: Option<String>,
    /// A PEM file holding an RSA or EC public key (RS256 / ES256).
    pub public_key_pem_file: Option<PathBuf>,
    /// A JWKS document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL; keys are looked up by `kid` and refetched on an unknown `kid`
    /// at most once per `jwks_refresh_interval`.
    pub jwks_url: Option<String>,
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Duration,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    /// Depth limit inside `__schema` and `__type` (introspection), which
    /// `max_depth` does not apply to: graphql-js's standard introspection
    /// query nests 15 fields deep.
    pub max_introspection_depth: usize,
    pub max_complexity: usize,
    /// Operations accepted in one batched request.
    pub max_batch: usize,
    pub introspection: bool,
    /// Largest `first` / `last` a connection accepts.
    pub max_page_size: usize,
    /// Most directives on one field (async-graphql's own check, after parsing).
    pub max_directives_per_field: usize,
    /// Most directives in one document, counted before it is parsed.
    pub max_directives: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a WebSocket may wait before sending `connection_init`.
    #[serde(with = "humantime_serde")]
    pub ws_init_timeout: Duration,
    /// Compress responses (gzip or br, as the client's Accept-Encoding asks).
    pub compression: bool,
    /// Smallest response body compressed, in bytes.
    pub compression_min_bytes: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call the API from a browser, e.g. `https://portal.example.com`.
    /// `*` allows any origin. Empty: no cross-origin access.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Tenant code of the service provider's own organization, created on start.
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// Percentages of a clock's target at which it counts as warned, ascending (1-99).
    pub warning_thresholds: Vec<u32>,
    /// Run the background worker that fires warning and breach events.
    pub worker_enabled: bool,
    /// How often the worker looks at the running clocks.
    #[serde(with = "humantime_serde")]
    pub worker_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest body the ingest endpoints accept (413 above).
    pub max_body_bytes: usize,
    /// Most alerts in one delivery (400 above).
    pub max_alerts: usize,
    /// Most labels (and most annotations) on one alert.
    pub max_labels: usize,
    /// Longest label or annotation value, in bytes.
    pub max_value_bytes: usize,
    /// A delivery with the same body within this time, when every alert it
    /// carries already holds in the current state, is a retry: nothing changes twice.
    #[serde(with = "humantime_serde")]
    pub retry_window: Duration,
    /// How long the delivery log (`ingestLog`) keeps its entries.
    #[serde(with = "humantime_serde")]
    pub log_retention: Duration,
    /// Default reopen window of new integrations.
    #[serde(with = "humantime_serde")]
    pub reopen_window: Duration,
    /// Default flapping threshold of new integrations: more re-fires than this within the window.
    pub flap_threshold: u32,
    /// Default flapping window of new integrations.
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
}

/// What each caller may spend per window, in this process (see `budget`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub enabled: bool,
    /// The time in which a whole budget comes back (a token bucket refilling steadily).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// GraphQL cost points per caller (tenant and subject) and window.
    pub graphql_points: u64,
    /// Alerts per integration and window on the ingest endpoints.
    pub ingest_alerts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// Honour the `Idempotency-Key` header on POST /graphql; off, it is ignored.
    pub enabled: bool,
    /// How long a key's answer is kept for replay after the request ran.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
}

/// `GET /metrics` (Prometheus text format). Off unless a token or a listen
/// address is set: on the API's own address it needs the token; on
/// `listen` it is served there only (with the token too, when one is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Bearer token a scraper must present (at least 16 bytes).
    pub token: Option<String>,
    /// A separate address serving only `/metrics`, e.g. `0.0.0.0:9464`.
    pub listen: Option<SocketAddr>,
    /// How long the database gauges (open incidents, SLA clocks) computed at
    /// a scrape are reused by the following scrapes.
    #[serde(with = "humantime_serde")]
    pub gauge_interval: Duration,
}

/// OpenTelemetry traces over OTLP/HTTP (protobuf). Off unless `endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, e.g. `http://localhost:4318/v1/traces`.
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// In development mode (no key configured), load the demo data into an empty database.
    pub seed_demo: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            graphql: GraphqlConfig::default(),
            http: HttpConfig::default(),
            cors: CorsConfig::default(),
            provider: ProviderConfig::default(),
            sla: SlaConfig::default(),
            ingest: IngestConfig::default(),
            idempotency: IdempotencyConfig::default(),
            budget: BudgetConfig::default(),
            dev: DevConfig::default(),
            metrics: MetricsConfig::default(),
            traces: TracesConfig::default(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            token: None,
            listen: None,
            gauge_interval: Duration::from_secs(15),
        }
    }
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: "servicegraph".into(),
        }
    }
}

impl MetricsConfig {
    /// Metrics are recorded and served once a token or a listen address is set.
    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.listen.is_some()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            min_connections: 1,
            connect_timeout: Duration::from_secs(2),
            migrate_on_start: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".into(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            hs256_secret: None,
            public_key_pem_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_interval: Duration::from_secs(60),
            issuer: None,
            audience: None,
            leeway_seconds: 30,
        }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_introspection_depth: 16,
            max_complexity: 2000,
            max_batch: 10,
            introspection: true,
            max_page_size: 100,
            max_directives_per_field: 5,
            max_directives: 100,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            ws_init_timeout: Duration::from_secs(10),
            compression: true,
            compression_min_bytes: 1024,
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            code: "provider".into(),
            name: "Service Provider".into(),
        }
    }
}

impl Default for SlaConfig {
    fn default() -> Self {
        Self {
            warning_thresholds: vec![75, 90],
            worker_enabled: true,
            worker_interval: Duration::from_secs(15),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 5 * 1024 * 1024,
            max_alerts: 1000,
            max_labels: 64,
            max_value_bytes: 4096,
            retry_window: Duration::from_secs(600),
            log_retention: Duration::from_secs(30 * 86_400),
            reopen_window: Duration::from_secs(1800),
            flap_threshold: 3,
            flap_window: Duration::from_secs(3600),
        }
    }
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs(86_400),
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(60),
            graphql_points: 1_000_000,
            ingest_alerts: 60_000,
        }
    }
}

impl Default for DevConfig {
    fn default() -> Self {
        Self { seed_demo: true }
    }
}

impl AuthConfig {
    /// No key of any kind: the server runs in development mode with a generated secret.
    pub fn is_unconfigured(&self) -> bool {
        self.hs256_secret.is_none()
            && self.public_key_pem_file.is_none()
            && self.jwks_file.is_none()
            && self.jwks_url.is_none()
    }
}

impl Config {
    /// Loads defaults, then `file` (or `SERVICEGRAPH_CONFIG`) when given, then the environment.
    pub fn load(file: Option<PathBuf>) -> Result<Self, String> {
        let file = file.or_else(|| std::env::var_os("SERVICEGRAPH_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(
                Env::prefixed("SERVICEGRAPH_")
                    .split("__")
                    .ignore(&["config", "test_postgres"]),
            )
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            );
        let config: Config = figment.extract().map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(secret) = &self.auth.hs256_secret
            && secret.len() < 32
        {
            return Err("auth.hs256_secret must be at least 32 bytes long".into());
        }
        if let Some(url) = &self.auth.jwks_url {
            url::Url::parse(url).map_err(|e| format!("auth.jwks_url is not a valid URL: {e}"))?;
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(
                "database.url (DATABASE_URL) must start with sqlite: or postgres://".into(),
            );
        }
        if self.graphql.max_page_size == 0 || self.graphql.max_batch == 0 {
            return Err("graphql.max_page_size and graphql.max_batch must be at least 1".into());
        }
        if self.graphql.max_directives_per_field == 0 || self.graphql.max_directives == 0 {
            return Err(
                "graphql.max_directives_per_field and graphql.max_directives must be at least 1"
                    .into(),
            );
        }
        let t = &self.sla.warning_thresholds;
        if t.iter().any(|v| !(1..=99).contains(v)) || t.windows(2).any(|w| w[0] >= w[1]) {
            return Err(
                "sla.warning_thresholds must be ascending percentages between 1 and 99".into(),
            );
        }
        if self.sla.worker_interval.is_zero() {
            return Err("sla.worker_interval must be above zero".into());
        }
        if self.idempotency.ttl.is_zero() {
            return Err("idempotency.ttl must be above zero".into());
        }
        let b = &self.budget;
        if b.window.is_zero() || b.graphql_points == 0 || b.ingest_alerts == 0 {
            return Err(
                "budget.window, budget.graphql_points and budget.ingest_alerts must be above zero"
                    .into(),
            );
        }
        if self.database.max_connections == 0 {
            return Err("database.max_connections must be at least 1".into());
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|t| t.trim().len() < 16)
        {
            return Err("metrics.token must be at least 16 bytes long".into());
        }
        if self.metrics.gauge_interval.is_zero() {
            return Err("metrics.gauge_interval must be above zero".into());
        }
        if let Some(endpoint) = &self.traces.endpoint {
            let url = url::Url::parse(endpoint)
                .map_err(|e| format!("traces.endpoint is not a valid URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err("traces.endpoint must be an http:// or https:// URL".into());
            }
        }
        if self.traces.service_name.trim().is_empty() {
            return Err("traces.service_name must not be empty".into());
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && url::Url::parse(origin).is_err() {
                return Err(format!(
                    "cors.allowed_origins: {origin:?} is not an origin such as https://portal.example.com"
                ));
            }
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("servicegraph.db").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn metrics_and_traces_settings_are_checked() {
        let mut config = Config::default();
        assert!(!config.metrics.enabled(), "metrics are off by default");
        assert!(
            config.traces.endpoint.is_none(),
            "traces are off by default"
        );
        config.metrics.token = Some("short".into());
        assert_eq!(
            config.validate().unwrap_err(),
            "metrics.token must be at least 16 bytes long"
        );
        config.metrics.token = Some("a-token-long-enough-for-metrics".into());
        assert!(config.metrics.enabled());
        assert!(config.validate().is_ok());
        config.traces.endpoint = Some("localhost:4318".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .starts_with("traces.endpoint")
        );
        config.traces.endpoint = Some("http://localhost:4318".into());
        assert!(config.validate().is_ok());
        config.traces.service_name = " ".into();
        assert_eq!(
            config.validate().unwrap_err(),
            "traces.service_name must not be empty"
        );
    }
}
