//! The application: its state, the builder that binds a ready-to-run
//! server, and the router (GraphQL over HTTP and WebSocket, ingestion, health
//! checks). Start-up and shutdown are in `startup`, the transports in
//! `http` and `websocket`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};
use tower_http::{
    compression::{CompressionLayer, predicate::SizeAbove},
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    auth::{Authenticator, Principal, TenantDirectory},
    budget::{self, Budget},
    config::Config,
    db,
    error::AppError,
    events::EventBus,
    graphql::{
        AppSchema, Observe, build_schema, context::SchemaData, cost::CostModel, loaders::Loaders,
        pagination::DEFAULT_PAGE_SIZE,
    },
};

mod graphiql;
mod http;
mod idempotency;
mod media;
pub(crate) mod metrics;
mod startup;
mod websocket;

pub(crate) use http::{RETRY_AFTER_SECONDS, detached};

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    pub auth: Arc<Authenticator>,
    pub tenants: Arc<TenantDirectory>,
    pub events: EventBus,
    /// What each caller may still spend, in this process.
    pub budget: Arc<Budget>,
    /// This process's id in relayed events; set on PostgreSQL only.
    pub relay_origin: Option<String>,
    /// The provider organization (the actor of the server's own changes).
    pub provider_id: i64,
    /// `/metrics`, when metrics are on.
    pub metrics: Option<Arc<metrics::Exporter>>,
    /// Set at shutdown once subscriptions have delivered their last events:
    /// each WebSocket (holding a receiver) then closes with 1001.
    ws_closing: Arc<watch::Sender<bool>>,
    /// The admin token of development mode, for the GraphiQL page.
    dev_admin_token: Option<String>,
}

impl AppState {
    /// Verifies a bearer token and resolves its tenant and served organizations.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AppError> {
        crate::auth::authenticate(&self.db, &self.auth, &self.tenants, token).await
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// `metrics.listen`, serving only `/metrics`.
    metrics_listener: Option<TcpListener>,
    router: Router,
    pub state: AppState,
    /// The admin token printed in development mode.
    pub dev_admin_token: Option<String>,
}

impl Application {
    /// Connects and migrates the database, prepares auth and the schema, and binds the port.
    pub async fn build(config: Config) -> Result<Self, String> {
        let prepared = startup::prepare(&config).await?;
        let exporter = metrics::Exporter::from_config(&config.metrics);
        let schema = build_schema(
            &config.graphql,
            SchemaData {
                loaders: Loaders::new(&prepared.database),
                store: prepared.store,
                max_page_size: config.graphql.max_page_size,
                sla: config.sla.clone(),
                ingest: config.ingest.clone(),
            },
            Observe {
                metrics: exporter.is_some(),
                traces: config.traces.endpoint.is_some(),
            },
        );
        let budget = Budget::new(
            &config.budget,
            CostModel::new(
                &schema.sdl(),
                DEFAULT_PAGE_SIZE,
                config.graphql.max_page_size,
            ),
            config.graphql.max_directives,
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let metrics_listener = match config.metrics.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} (metrics.listen): {e}"))?,
            ),
            None => None,
        };
        let state = AppState {
            config: Arc::new(config),
            db: prepared.database,
            schema,
            auth: Arc::new(prepared.auth),
            tenants: TenantDirectory::following(&prepared.events),
            events: prepared.events,
            budget: Arc::new(budget),
            relay_origin: prepared.relay_origin,
            provider_id: prepared.provider_id,
            metrics: exporter,
            ws_closing: Arc::new(watch::Sender::new(false)),
            dev_admin_token: prepared.dev_admin_token.clone(),
        };
        Ok(Self {
            listener,
            metrics_listener,
            router: router(state.clone()),
            state,
            dev_admin_token: prepared.dev_admin_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The `metrics.listen` address, when set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }
}

fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let request_span = |req: &axum::http::Request<_>| {
        let request_id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %request_id,
            operation = tracing::field::Empty,
        )
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/graphql", get(http::graphql_get).post(http::graphql_post))
        .route(graphiql::ASSETS_ROUTE, get(graphiql::asset))
        .route("/metrics", get(metrics::scrape))
        .layer(compression(&config))
        .route("/graphql/ws", get(websocket::graphql_ws))
        .layer(DefaultBodyLimit::max(config.http.max_body_bytes))
        .merge(crate::ingest::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.http.request_timeout,
        ))
        .layer(cors(&config.cors.allowed_origins))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
        .with_state(state)
}

/// gzip or br as the client's Accept-Encoding asks, for bodies of at least
/// `http.compression_min_bytes`; none at all when `http.compression` is off.
fn compression(config: &Config) -> CompressionLayer<SizeAbove> {
    let on = config.http.compression;
    CompressionLayer::new()
        .gzip(on)
        .br(on)
        .compress_when(SizeAbove::new(config.http.compression_min_bytes))
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            REQUEST_ID_HEADER,
            idempotency::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            REQUEST_ID_HEADER,
            header::RETRY_AFTER,
            idempotency::IDEMPOTENT_REPLAYED,
            budget::LIMIT,
            budget::REMAINING,
            budget::RESET,
            budget::COST,
        ])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    // A connection whose peer went silent would otherwise hold the probe.
    let timeout = state.config.database.connect_timeout;
    let ready = tokio::time::timeout(timeout, db::is_ready(&state.db)).await;
    if ready.unwrap_or(false) {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "database unavailable" })),
        )
            .into_response()
    }
}
