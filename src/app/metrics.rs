//! `GET /metrics` in the Prometheus text format: the process-wide recorder
//! of the `metrics` crate rendered by `metrics-exporter-prometheus`, plus the
//! gauges read at scrape time (the database pool, and open incidents and SLA
//! clocks counted in the database, at most once per `metrics.gauge_interval`
//! and within a timeout, so a scrape storm cannot load the database).
//!
//! Off unless `metrics.token` or `metrics.listen` is set. With a token only,
//! it is served on the API's address and needs `Authorization: Bearer
//! <token>`; with `metrics.listen`, only on that address (with the token too
//! when one is set).

use std::{
    collections::HashSet,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::AppState;
use crate::{config::MetricsConfig, graphql::metrics as gql};

pub const POOL_CONNECTIONS: &str = "servicegraph_db_pool_connections";
pub const POOL_MAX: &str = "servicegraph_db_pool_max_connections";
pub const WS_CONNECTIONS: &str = "servicegraph_websocket_connections";
pub const INGEST_DELIVERIES: &str = "servicegraph_ingest_deliveries_total";
pub use crate::processes::sla::worker::{
    LAG_METRIC as SLA_WORKER_LAG, LAST_PASS_METRIC as SLA_WORKER_LAST_PASS,
};
pub const OPEN_INCIDENTS: &str = "servicegraph_incidents_open";
pub const CLOCKS_RUNNING: &str = "servicegraph_sla_clocks_running";
pub const CLOCKS_BREACHED: &str = "servicegraph_sla_clocks_breached";
pub const GAUGES_AGE: &str = "servicegraph_metrics_database_gauges_age_seconds";

/// Latency buckets (seconds) of GraphQL operations.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The longest a scrape waits for the database gauges; past it the scrape
/// answers with the previous values (see [`GAUGES_AGE`]).
const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

/// The process-wide recorder (installed once; later servers in the same
/// process, as in the tests, share it) and the handle that renders it.
pub fn install_recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(gql::DURATION.into()), &BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        gql::OPERATIONS,
        "GraphQL operations by operation name and outcome (ok or the error code)"
    );
    describe_histogram!(
        gql::DURATION,
        metrics::Unit::Seconds,
        "GraphQL operation latency by operation name"
    );
    describe_gauge!(gql::SUBSCRIPTIONS, "GraphQL subscriptions running");
    describe_gauge!(WS_CONNECTIONS, "open GraphQL WebSocket connections");
    describe_gauge!(
        POOL_CONNECTIONS,
        "database pool connections by state (in_use, idle)"
    );
    describe_gauge!(POOL_MAX, "database pool size limit");
    describe_counter!(
        INGEST_DELIVERIES,
        "monitoring deliveries by sender (alertmanager, grafana, events) and outcome"
    );
    describe_gauge!(
        SLA_WORKER_LAG,
        metrics::Unit::Seconds,
        "how long the oldest clock due was waiting when the SLA worker's last pass began"
    );
    describe_gauge!(
        SLA_WORKER_LAST_PASS,
        metrics::Unit::Seconds,
        "when the SLA worker last finished a pass (Unix time)"
    );
    describe_gauge!(
        OPEN_INCIDENTS,
        "incidents not resolved or closed, by priority"
    );
    describe_gauge!(
        CLOCKS_RUNNING,
        "SLA clocks neither stopped nor paused, by SLA and customer"
    );
    describe_gauge!(
        CLOCKS_BREACHED,
        "SLA clocks not stopped that the SLA worker marked breached, by SLA and customer"
    );
    describe_gauge!(
        GAUGES_AGE,
        metrics::Unit::Seconds,
        "age of the database gauges served (they are recomputed at most once per metrics.gauge_interval)"
    );
}

/// What the endpoint needs besides the application state.
pub struct Exporter {
    handle: PrometheusHandle,
    /// SHA-256 of the token: compared in constant time.
    token: Option<[u8; 32]>,
    /// Served on the API's address (no `metrics.listen`).
    on_api_address: bool,
    interval: Duration,
    gauges: Mutex<DatabaseGauges>,
}

#[derive(Default)]
struct DatabaseGauges {
    computed: Option<Instant>,
    /// The (sla, customer) labels set last time: zeroed once they are gone.
    clock_labels: HashSet<(String, String)>,
}

impl Exporter {
    /// `None` when metrics are off.
    pub fn from_config(config: &MetricsConfig) -> Option<Arc<Self>> {
        config.enabled().then(|| {
            Arc::new(Self {
                handle: install_recorder(),
                token: config
                    .token
                    .as_deref()
                    .map(|t| Sha256::digest(t.trim()).into()),
                on_api_address: config.listen.is_none(),
                interval: config.gauge_interval,
                gauges: Mutex::new(DatabaseGauges::default()),
            })
        })
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(presented) = super::http::bearer(headers) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The router of a separate `metrics.listen` address.
pub(super) fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape_separate))
        .with_state(state)
}

/// `GET /metrics` on the API's address.
pub(super) async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.metrics.clone() {
        Some(exporter) if exporter.on_api_address => serve(state, exporter, headers).await,
        Some(_) => (
            StatusCode::NOT_FOUND,
            "/metrics is served on the metrics.listen address\n",
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are off: set metrics.token or metrics.listen\n",
        )
            .into_response(),
    }
}

async fn scrape_separate(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.metrics.clone() {
        Some(exporter) => serve(state, exporter, headers).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(state: AppState, exporter: Arc<Exporter>, headers: HeaderMap) -> Response {
    if !exporter.authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "/metrics needs the metrics token: Authorization: Bearer <metrics.token>\n",
        )
            .into_response();
    }
    pool_gauges(&state.db);
    refresh_database_gauges(&exporter, &state.db).await;
    exporter.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        exporter.handle.render(),
    )
        .into_response()
}

/// In use and idle connections of sqlx's pool. sqlx does not expose how many
/// tasks wait for a connection, so there is no waiting gauge.
fn pool_gauges(db: &DatabaseConnection) {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => return,
    };
    let idle = idle as f64;
    metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use").set((f64::from(size) - idle).max(0.0));
    metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle);
    metrics::gauge!(POOL_MAX).set(f64::from(max));
}

/// Recomputes the database gauges when the last values are older than the
/// interval. Concurrent scrapes wait for one computation and share it.
async fn refresh_database_gauges(exporter: &Exporter, db: &DatabaseConnection) {
    let mut gauges = exporter.gauges.lock().await;
    let fresh = gauges
        .computed
        .is_some_and(|at| at.elapsed() < exporter.interval);
    if !fresh {
        match tokio::time::timeout(GAUGE_TIMEOUT, count_in_database(db)).await {
            Ok(Ok(counts)) => {
                counts.publish(&mut gauges.clock_labels);
                gauges.computed = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot count in the database"),
            Err(_) => tracing::warn!("metrics: counting in the database timed out"),
        }
    }
    let age = gauges
        .computed
        .map_or(-1.0, |at| at.elapsed().as_secs_f64());
    metrics::gauge!(GAUGES_AGE).set(age);
}

struct Counts {
    open_by_priority: Vec<(String, i64)>,
    /// (sla, customer, running, breached)
    clocks: Vec<(String, String, i64, i64)>,
}

impl Counts {
    fn publish(self, last_labels: &mut HashSet<(String, String)>) {
        for priority in ["p1", "p2", "p3", "p4"] {
            let n = self
                .open_by_priority
                .iter()
                .find(|(p, _)| p == priority)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(OPEN_INCIDENTS, "priority" => priority.to_uppercase()).set(n as f64);
        }
        let mut labels = HashSet::new();
        for (sla, customer, running, breached) in self.clocks {
            metrics::gauge!(CLOCKS_RUNNING, "sla" => sla.clone(), "customer" => customer.clone())
                .set(running as f64);
            metrics::gauge!(CLOCKS_BREACHED, "sla" => sla.clone(), "customer" => customer.clone())
                .set(breached as f64);
            labels.insert((sla, customer));
        }
        for (sla, customer) in last_labels.difference(&labels) {
            metrics::gauge!(CLOCKS_RUNNING, "sla" => sla.clone(), "customer" => customer.clone())
                .set(0.0);
            metrics::gauge!(CLOCKS_BREACHED, "sla" => sla.clone(), "customer" => customer.clone())
                .set(0.0);
        }
        *last_labels = labels;
    }
}

/// Two aggregate statements over all tenants.
async fn count_in_database(db: &DatabaseConnection) -> Result<Counts, sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let open = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT priority, COUNT(*) AS n FROM incidents \
             WHERE state NOT IN ('resolved', 'closed') GROUP BY priority",
        ))
        .await?;
    let mut open_by_priority = Vec::new();
    for row in open {
        open_by_priority.push((
            row.try_get::<String>("", "priority")?,
            row.try_get("", "n")?,
        ));
    }
    let clocks = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT s.name AS sla, o.code AS customer, \
               SUM(CASE WHEN c.paused_since IS NULL THEN 1 ELSE 0 END) AS running, \
               SUM(CASE WHEN c.breach_fired_at IS NOT NULL THEN 1 ELSE 0 END) AS breached \
             FROM sla_clocks c JOIN slas s ON s.id = c.sla_id \
             JOIN organizations o ON o.id = s.customer_id \
             WHERE c.stopped_at IS NULL GROUP BY s.id, s.name, o.code",
        ))
        .await?;
    let mut list = Vec::new();
    for row in clocks {
        list.push((
            row.try_get::<String>("", "sla")?,
            row.try_get::<String>("", "customer")?,
            row.try_get::<i64>("", "running")?,
            row.try_get::<i64>("", "breached")?,
        ));
    }
    Ok(Counts {
        open_by_priority,
        clocks: list,
    })
}
