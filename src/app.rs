//! The application: state, router, the GraphQL endpoints, health checks, and
//! serving with graceful shutdown.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{
    BatchRequest, BatchResponse, Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource, WebSocketProtocols, WsMessage},
};
use async_graphql_axum::GraphQLProtocol;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, State, WebSocketUpgrade,
        rejection::BytesRejection,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::{RwLock, watch},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::Instrument;

use crate::{
    auth::{Authenticator, Principal, principal_from_claims},
    budget::{self, Budget, SessionCaller},
    config::Config,
    db,
    error::{AppError, REQUEST_ID},
    events::{DomainEvent, EventBus},
    graphql::{
        AppSchema, build_schema, context::SchemaData, cost::CostModel, loaders::Loaders,
        pagination::DEFAULT_PAGE_SIZE,
    },
    processes::directory,
    records::Store,
};

mod idempotency;

use idempotency::{Answer, Begin};

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Organization codes to ids, cached: tokens name tenants by code on every
/// request. Only active organizations resolve; an entry is trusted for
/// [`TENANT_CACHE_TTL`], so a deactivation takes effect within that time.
#[derive(Default)]
pub struct TenantDirectory {
    cache: RwLock<HashMap<String, (Option<i64>, Instant)>>,
}

pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(30);

impl TenantDirectory {
    async fn resolve_many(
        &self,
        db: &DatabaseConnection,
        codes: &[String],
    ) -> Result<HashMap<String, i64>, AppError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.cache.read().await;
            for code in codes {
                match cache.get(code) {
                    Some((id, at)) if at.elapsed() < TENANT_CACHE_TTL => {
                        if let Some(id) = id {
                            found.insert(code.clone(), *id);
                        }
                    }
                    _ => missing.push(code.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let rows = entity::organization::Entity::find()
                .filter(entity::organization::Column::Code.is_in(missing.clone()))
                .all(db)
                .await?;
            let now = Instant::now();
            let mut cache = self.cache.write().await;
            // Unknown codes are not cached: any string would otherwise grow the map.
            for org in rows {
                let id = org.active.then_some(org.id);
                cache.insert(org.code.clone(), (id, now));
                if let Some(id) = id {
                    found.insert(org.code, id);
                }
            }
        }
        Ok(found)
    }

    /// Drops an organization's entry, so its next token is checked against the database.
    async fn forget(&self, code: &str) {
        self.cache.write().await.remove(code);
    }

    /// Keeps the cache in step with organization changes made through this process.
    fn follow(self: &Arc<Self>, events: &EventBus) {
        let (directory, mut rx) = (Arc::downgrade(self), events.subscribe());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        let Some(directory) = directory.upgrade() else {
                            return;
                        };
                        if let DomainEvent::OrganizationChanged(org) = &*event {
                            directory.forget(&org.code).await;
                        }
                    }
                    // Missed events: forget everything rather than trust stale entries.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match directory.upgrade() {
                            Some(d) => d.cache.write().await.clear(),
                            None => return,
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

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
    /// Set at shutdown once subscriptions have delivered their last events:
    /// each WebSocket (holding a receiver) then closes with 1001.
    ws_closing: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// Verifies a bearer token and resolves its tenant and served organizations.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AppError> {
        if token.starts_with(crate::processes::monitoring::SECRET_PREFIX) {
            // A monitoring integration's secret: it may raise alerts, nothing else.
            return match crate::processes::monitoring::integration_by_secret(&self.db, token)
                .await?
            {
                Some(i) => Ok(crate::processes::monitoring::integration_principal(&i)),
                None => Err(AppError::Unauthenticated(
                    "unknown integration secret".into(),
                )),
            };
        }
        let claims = self.auth.verify(token).await?;
        let mut codes = vec![claims.tenant.clone()];
        codes.extend(claims.orgs.iter().filter(|c| *c != "*").cloned());
        let ids = self.tenants.resolve_many(&self.db, &codes).await?;
        principal_from_claims(&claims, |code| ids.get(code).copied())
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pub state: AppState,
    /// The admin token printed in development mode.
    pub dev_admin_token: Option<String>,
}

impl Application {
    /// Connects and migrates the database, prepares auth and the schema, and binds the port.
    pub async fn build(config: Config) -> Result<Self, String> {
        let database = db::connect(&config).await?;
        if config.database.migrate_on_start {
            db::migrate_up(&database)
                .await
                .map_err(|e| format!("database migration failed: {e}"))?;
        }
        let provider_id =
            directory::ensure_provider(&database, &config.provider.code, &config.provider.name)
                .await
                .map_err(|e| format!("cannot create the provider organization: {}", e.message()))?;
        crate::processes::cmdb::ensure_standard_classes(&database, provider_id)
            .await
            .map_err(|e| format!("cannot create the standard CI classes: {}", e.message()))?;
        let origin = uuid::Uuid::new_v4().to_string();
        let on_postgres = database.get_database_backend() == sea_orm::DbBackend::Postgres;
        let mut events = EventBus::default();
        if on_postgres {
            events =
                events.with_relay(crate::relay::start_sender(database.clone(), origin.clone()));
        }
        let store = Store {
            db: database.clone(),
            events: events.clone(),
            sla_thresholds: config.sla.warning_thresholds.as_slice().into(),
        };

        let dev_secret = if config.auth.is_unconfigured() {
            Some(crate::dev::secret(&config.data_dir)?)
        } else {
            None
        };
        let auth = Authenticator::from_config(&config.auth, dev_secret.as_deref()).await?;
        let mut dev_admin_token = None;
        if let Some(secret) = &dev_secret {
            tracing::warn!(
                "DEVELOPMENT MODE: no JWT key is configured, tokens are signed with a generated secret kept in {}. \
                 Configure auth.hs256_secret, auth.public_key_pem_file or auth.jwks_url for production.",
                config.data_dir.display()
            );
            if config.dev.seed_demo {
                crate::seed::seed_demo_if_empty(&store, provider_id)
                    .await
                    .map_err(|e| e.message())?;
            }
            dev_admin_token = Some(crate::dev::admin_token(secret, &config.provider.code)?);
        }

        let schema = build_schema(
            &config.graphql,
            SchemaData {
                loaders: Loaders::new(&database),
                store,
                max_page_size: config.graphql.max_page_size,
                sla: config.sla.clone(),
                ingest: config.ingest.clone(),
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
        let tenants = Arc::new(TenantDirectory::default());
        tenants.follow(&events);
        let state = AppState {
            config: Arc::new(config),
            db: database,
            schema,
            auth: Arc::new(auth),
            tenants,
            events,
            budget: Arc::new(budget),
            relay_origin: on_postgres.then_some(origin),
            provider_id,
            ws_closing: Arc::new(watch::Sender::new(false)),
        };
        Ok(Self {
            listener,
            router: router(state.clone()),
            state,
            dev_admin_token,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then, within `http.shutdown_grace`:
    /// lets in-flight requests finish, lets the SLA worker finish the clock
    /// it is at, sends the last events to other processes, delivers them to
    /// this process's subscribers and closes their sockets (1001, so clients
    /// reconnect and subscribe again elsewhere).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state;
        let grace = state.config.http.shutdown_grace;
        let sla = &state.config.sla;
        let store = || Store {
            db: state.db.clone(),
            events: state.events.clone(),
            sla_thresholds: sla.warning_thresholds.as_slice().into(),
        };
        let (stop_worker, stopping) = watch::channel(false);
        let mut worker = sla.worker_enabled.then(|| {
            AbortOnDrop(tokio::spawn(crate::processes::sla::worker::run(
                store(),
                sla.worker_interval,
                directory::system_principal(state.provider_id),
                stopping,
            )))
        });
        let _pruner = AbortOnDrop(tokio::spawn(crate::processes::monitoring::run_pruner(
            store(),
            state.config.ingest.log_retention,
        )));
        let _idempotency_pruner = AbortOnDrop(tokio::spawn(idempotency::run_pruner(
            state.db.clone(),
            state.config.idempotency.ttl,
        )));
        // Other processes' events, on PostgreSQL.
        let _listener = state.relay_origin.clone().map(|origin| {
            AbortOnDrop(tokio::spawn(crate::relay::listen(
                state.config.database_url(),
                state.db.clone(),
                state.events.clone(),
                origin,
            )))
        });
        let (begun, mut shutdown_begun) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = begun.send(());
        });
        let mut server = std::pin::pin!(server.into_future());
        let ended = tokio::select! {
            biased;
            res = &mut server => Some(res),
            _ = &mut shutdown_begun => None,
        };
        let deadline = tokio::time::Instant::now() + grace;
        let _ = stop_worker.send(true);
        let result = match ended {
            Some(res) => res,
            None => tokio::time::timeout_at(deadline, &mut server)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        "shutdown grace period over; stopping with requests still in flight"
                    );
                    Ok(())
                }),
        };
        if let Some(AbortOnDrop(task)) = &mut worker
            && tokio::time::timeout_at(deadline, task).await.is_err()
        {
            tracing::warn!("shutdown grace period over; stopping the SLA worker mid-clock");
        }
        let delivered = async {
            state.events.flush().await;
            state.events.close().await;
            state.ws_closing.send_replace(true);
            state.ws_closing.closed().await;
        };
        if tokio::time::timeout_at(deadline, delivered).await.is_err() {
            tracing::warn!("shutdown grace period over; subscribers may miss the last events");
        }
        result
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
        .route("/graphql", get(graphiql).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
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

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("ServiceGraph")
            .finish(),
    )
}

/// Seconds a client is asked to wait before retrying when the database is unavailable.
pub(crate) const RETRY_AFTER_SECONDS: &str = "5";

/// The answer to a request that failed before it could execute (its
/// principal could not be resolved, its task failed): 503 with Retry-After
/// when the database is unavailable, else 500; logged, with the request id.
fn failure_response(err: AppError) -> Response {
    let unavailable = err.is_unavailable();
    let err = async_graphql::Error::from(err);
    let mut error = async_graphql::ServerError::new(err.message, None);
    error.extensions = err.extensions;
    let status = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut response = (status, Json(json!({ "errors": [error] }))).into_response();
    if unavailable {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// A response carrying GraphQL errors outside of execution (auth, parsing, limits).
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID
        .scope(request_id, execute(state, headers, body))
        .await
}

async fn execute(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "a bearer token is required",
        );
    };
    let principal = match state.authenticate(token).await {
        Ok(p) => p,
        Err(AppError::Unauthenticated(m)) => {
            return error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &m);
        }
        Err(other) => return failure_response(other),
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.config.http.max_body_bytes;
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION",
                &format!("request body is larger than {limit} bytes"),
            );
        }
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "could not read the request body",
            );
        }
    };
    let mut batch = match parse_request(&body) {
        Ok(b) => b,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "VALIDATION", &message),
    };
    let max_batch = state.config.graphql.max_batch;
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > max_batch
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "VALIDATION",
            &format!(
                "a batch may hold at most {max_batch} operations, this one has {}",
                requests.len()
            ),
        );
    }
    let receipt = match state.budget.admit_graphql(&principal, &mut batch) {
        Ok(receipt) => receipt,
        Err(refused) => {
            let answer = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                &refused.message(),
            );
            return refused.stamp(answer);
        }
    };
    // A request with an Idempotency-Key runs once per caller and key.
    let claim = match idempotency::begin(&state, &principal, &headers, &body).await {
        Begin::Execute(claim) => claim,
        Begin::Respond(response) => return receipt.stamp(response),
    };
    let operations: Vec<&str> = batch
        .iter()
        .filter_map(|r| r.operation_name.as_deref())
        .collect();
    if !operations.is_empty() {
        tracing::Span::current().record("operation", operations.join(",").as_str());
    }
    // The request's own loaders, their fetches run level by level in its task.
    // The execution is a task of its own, so a client that hangs up does not
    // cancel it half way: a mutation still completes, and no statement or
    // pool checkout is abandoned mid-flight (sqlx's pool can then leave other
    // waiters asleep until their acquire timeout). The answer is stored
    // under the idempotency claim in that task too, for the same reason.
    let loaders = Arc::new(Loaders::for_request(&state.db));
    let schema = state.schema.clone();
    let execution = async move {
        let response = crate::graphql::loaders::batched(
            schema.execute_batch(batch.data(principal).data(loaders)),
        )
        .await;
        let answer = Answer::graphql(&with_codes(response));
        idempotency::finish(claim, &answer).await;
        answer
    };
    receipt.stamp(match detached(execution).await {
        Ok(answer) => answer.into_response(),
        // A panic: the claim, dropped with the task, released the key.
        Err(failed) => failure_response(failed),
    })
}

/// Runs `fut` as a task of its own, with this request's id and span, and
/// waits for it: a client that hangs up does not cancel it half way.
pub(crate) async fn detached<F>(fut: F) -> Result<F::Output, AppError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let fut = fut.instrument(tracing::Span::current());
    let task = match crate::error::current_request_id() {
        Some(id) => tokio::spawn(REQUEST_ID.scope(id, fut)),
        None => tokio::spawn(fut),
    };
    task.await.map_err(AppError::internal)
}

/// A JSON object with a string `query`, or a non-empty array of them.
fn parse_request(body: &[u8]) -> Result<BatchRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let is_operation = |v: &Value| v.get("query").is_some_and(Value::is_string);
    let shape_ok = match &value {
        Value::Object(_) => is_operation(&value),
        Value::Array(items) => !items.is_empty() && items.iter().all(is_operation),
        _ => false,
    };
    if !shape_ok {
        return Err(
            "request body must be a GraphQL request {\"query\": ...} or a non-empty array of them"
                .into(),
        );
    }
    serde_json::from_value(value).map_err(|e| format!("request body is not a GraphQL request: {e}"))
}

fn error_code(err: &async_graphql::ServerError) -> Option<&str> {
    match err.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

/// Errors raised by the GraphQL engine itself (syntax, unknown fields, wrong
/// argument types, limits) carry no code; they are all the caller's input.
fn with_codes(mut response: BatchResponse) -> BatchResponse {
    let fix = |r: &mut async_graphql::Response| {
        for err in &mut r.errors {
            let has_code = err
                .extensions
                .as_ref()
                .is_some_and(|e| e.get("code").is_some());
            if !has_code {
                err.extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "VALIDATION");
            }
        }
    };
    match &mut response {
        BatchResponse::Single(r) => fix(r),
        BatchResponse::Batch(rs) => rs.iter_mut().for_each(fix),
    }
    response
}

async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    // Refuses a handshake that offers no protocol we speak.
    _offered: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The same choice GraphQLProtocol made: the first protocol offered that we speak.
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    let span = tracing::Span::current();
    // Subscription traffic is small messages: tungstenite's default 128 KiB
    // read and write buffers per connection would cost ~150 KB of memory per
    // subscriber (1.5 GB for 10,000). The read buffer is allocated up front
    // for every connection (heaptrack: the largest item per subscriber at
    // 4 KiB); 1 KiB holds a subscribe message, and a larger message is read
    // in several calls into a buffer that grows to fit it.
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve_ws(state, socket, protocol).instrument(span))
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    let _ = sink.close().await;
}

/// The token of a `connection_init` payload: `Authorization`/`authorization`
/// (with or without `Bearer `), or `token`/`authToken`.
fn init_token(payload: &Value) -> Option<String> {
    let raw = ["Authorization", "authorization", "token", "authToken"]
        .iter()
        .find_map(|k| payload.get(k).and_then(Value::as_str))
        .or_else(|| {
            payload
                .get("headers")
                .and_then(|h| h.get("Authorization").or_else(|| h.get("authorization")))
                .and_then(Value::as_str)
        })?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Authenticates a WebSocket from its `connection_init` message (4408 when none
/// comes in time, 4403 for a bad token, 1013 when the database is
/// unavailable), then serves it with async-graphql until either side closes
/// or the server shuts down.
async fn serve_ws(state: AppState, socket: WebSocket, protocol: WebSocketProtocols) {
    let legacy = protocol == WebSocketProtocols::SubscriptionsTransportWS;
    let (mut sink, mut stream) = socket.split();
    let wait = state.config.http.ws_init_timeout;
    let first = tokio::time::timeout(wait, async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(_) | Message::Binary(_) => return Some(msg),
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    })
    .await;
    let first = match first {
        Err(_) => return close(&mut sink, 4408, "Connection initialisation timeout").await,
        Ok(None) => return,
        Ok(Some(msg)) => msg,
    };
    let parsed: Option<Value> = match &first {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        Message::Binary(b) => serde_json::from_slice(b).ok(),
        _ => None,
    };
    let Some(parsed) = parsed else {
        return close(&mut sink, 4400, "Invalid message").await;
    };
    if parsed.get("type").and_then(Value::as_str) != Some("connection_init") {
        return close(&mut sink, 4401, "Unauthorized").await;
    }
    let payload = parsed.get("payload").cloned().unwrap_or(Value::Null);
    let principal = match init_token(&payload) {
        None => Err(AppError::Unauthenticated(
            "connection_init carries no token".into(),
        )),
        Some(token) => state.authenticate(&token).await,
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) if e.is_unavailable() => {
            let _ = async_graphql::Error::from(e); // logs it
            if legacy {
                let msg = json!({ "type": "connection_error", "payload": { "message": "Service unavailable; retry later" } });
                let _ = sink.send(Message::Text(msg.to_string().into())).await;
            }
            return close(&mut sink, 1013, "Try again later").await;
        }
        Err(e) => {
            tracing::info!(reason = %e.message(), "WebSocket refused");
            if legacy {
                // The older protocol reports errors in a message before closing.
                let msg =
                    json!({ "type": "connection_error", "payload": { "message": "Forbidden" } });
                let _ = sink.send(Message::Text(msg.to_string().into())).await;
            }
            return close(&mut sink, 4403, "Forbidden").await;
        }
    };
    // Replay the init message so async-graphql acknowledges it as usual.
    let input = futures_util::stream::once(async move { Ok(first) })
        .chain(stream)
        .take_while(|m| futures_util::future::ready(m.is_ok()))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                _ => None,
            })
        });
    let budget = state.budget.clone();
    let outgoing = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(move |_| async move {
            let mut data = Data::default();
            data.insert(SessionCaller {
                principal: principal.clone(),
                budget,
            });
            data.insert(principal);
            Ok(data)
        });
    let mut outgoing = std::pin::pin!(outgoing);
    let mut closing = state.ws_closing.subscribe();
    loop {
        let message = tokio::select! {
            m = outgoing.next() => m,
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // Shutdown: every event published before it has been sent.
                return close(&mut sink, 1001, "Server shutting down").await;
            }
        };
        let message = match message {
            None => return,
            Some(WsMessage::Text(text)) => {
                // At shutdown the subscriptions' streams end; a `complete`
                // would tell the client the subscription is over, when it
                // should subscribe again once reconnected.
                if state.events.is_closing() && is_complete(&text) {
                    continue;
                }
                Message::Text(text.into())
            }
            Some(WsMessage::Close(code, reason)) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

fn is_complete(message: &str) -> bool {
    serde_json::from_str::<Value>(message)
        .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("complete"))
}
