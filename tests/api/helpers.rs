//! Spawns the real server on port 0 against a fresh database per test, and talks
//! to it over HTTP and WebSocket. SQLite by default; PostgreSQL when
//! `SERVICEGRAPH_TEST_POSTGRES` names a server (e.g. `postgres://postgres:pw@127.0.0.1:5432`).

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use servicegraph::{
    app::Application,
    auth::{Claims, mint_hs256},
    config::Config,
};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub database_url: String,
    /// The admin token of development mode (no key configured).
    pub dev_token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh database URL: a new PostgreSQL database, or `None` for a SQLite file in the data dir.
pub async fn fresh_database() -> Option<String> {
    let base = std::env::var("SERVICEGRAPH_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())?;
    let base = base.trim_end_matches('/').to_owned();
    let name = format!("sg_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("SERVICEGRAPH_TEST_POSTGRES is set but PostgreSQL is unreachable: {e}")
        });
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    Some(format!("{base}/{name}"))
}

pub fn is_postgres() -> bool {
    std::env::var("SERVICEGRAPH_TEST_POSTGRES").is_ok_and(|s| !s.is_empty())
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a configuration adjusted by `adjust` (HS256 with [`SECRET`] by default).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(fresh_database().await, adjust).await
    }

    /// [`spawn_with`](Self::spawn_with) on the database `url` (`None`: SQLite in a temp dir).
    pub async fn spawn_on(url: Option<String>, adjust: impl FnOnce(&mut Config)) -> Self {
        servicegraph::telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.database.url = url;
        config.database.max_connections = 5;
        config.auth.hs256_secret = Some(SECRET.into());
        config.dev.seed_demo = false;
        config.http.shutdown_grace = Duration::from_secs(2);
        adjust(&mut config);
        let database_url = config.database_url();
        let app = Application::build(config)
            .await
            .expect("application starts");
        let mut addr = app.local_addr();
        if addr.ip().is_unspecified() {
            // A server on every interface (0.0.0.0) is reached over loopback.
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let dev_token = app.dev_admin_token.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            database_url,
            dev_token,
            shutdown: Some(tx),
            server: Some(server),
            _dir: Some(dir),
        }
    }

    /// A client of a server running elsewhere (a child process) at `addr`.
    pub fn attach(addr: SocketAddr, database_url: String) -> Self {
        Self {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            database_url,
            dev_token: None,
            shutdown: None,
            server: None,
            _dir: None,
        }
    }

    /// Starts a graceful shutdown; the returned handle ends when the server has stopped.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server running")
    }

    /// An HS256 token for `subject` in organization `tenant` with `roles`.
    pub fn token(&self, subject: &str, tenant: &str, roles: &[&str]) -> String {
        token_with(subject, tenant, roles, &[])
    }

    pub fn admin(&self) -> String {
        self.token("admin@provider", "provider", &["admin"])
    }

    pub fn agent(&self) -> String {
        token_with("agent@provider", "provider", &["agent"], &["*"])
    }

    /// POSTs a GraphQL operation; returns the HTTP status and the JSON body.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(format!("{}/graphql", self.base))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, json)
    }

    /// Runs a GraphQL operation with variables; returns the JSON body (status must be 200).
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self
            .post(
                Some(token),
                &json!({ "query": query, "variables": variables }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "unexpected status, body: {body}");
        body
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Creates a customer organization; returns its global ID.
    pub async fn customer(&self, code: &str) -> String {
        let data = self
            .ok(
                &self.admin(),
                "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }",
                json!({ "i": { "code": code, "name": format!("Customer {code}") } }),
            )
            .await;
        data["createOrganization"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a service as admin; returns the whole created object (id, version, name, status).
    pub async fn service(&self, input: Value) -> Value {
        let data = self
            .ok(
                &self.admin(),
                "mutation($i: CreateServiceInput!) { createService(input: $i) { id version name status } }",
                json!({ "i": input }),
            )
            .await;
        data["createService"].clone()
    }

    pub async fn subscribe(&self, service_id: &str, customer_id: &str) {
        self.ok(
            &self.admin(),
            "mutation($s: ID!, $c: ID!) { subscribeCustomer(serviceId: $s, customerId: $c) { createdAt } }",
            json!({ "s": service_id, "c": customer_id }),
        )
        .await;
    }

    /// Opens a WebSocket to /graphql/ws speaking `protocol`.
    pub async fn ws(&self, protocol: &str) -> Ws {
        let mut req = format!("ws://{}/graphql/ws", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).unwrap(),
        );
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connects");
        Ws { stream }
    }
}

pub fn token_with(subject: &str, tenant: &str, roles: &[&str], orgs: &[&str]) -> String {
    let now = servicegraph::dev::unix_now();
    mint_hs256(
        SECRET,
        &Claims {
            sub: subject.into(),
            tenant: tenant.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            exp: now + 3600,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )
    .unwrap()
}

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub enum WsEvent {
    Json(Value),
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send(&mut self, msg: Value) {
        self.stream
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The next JSON message or the close, within `secs` seconds.
    pub async fn next(&mut self, secs: u64) -> WsEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("ws message in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return WsEvent::Json(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return WsEvent::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return WsEvent::Closed(None),
            }
        }
    }

    pub async fn json(&mut self, secs: u64) -> Value {
        match self.next(secs).await {
            WsEvent::Json(v) => v,
            WsEvent::Closed(code) => {
                panic!("websocket closed ({code:?}) while a message was expected")
            }
        }
    }

    pub async fn close_code(&mut self, secs: u64) -> Option<u16> {
        loop {
            match self.next(secs).await {
                WsEvent::Closed(code) => return code,
                WsEvent::Json(_) => continue,
            }
        }
    }

    /// Sends `connection_init` with a bearer token and expects the ack.
    pub async fn init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })).await;
        let ack = self.json(5).await;
        assert_eq!(ack["type"], "connection_ack", "got {ack}");
    }
}

/// A well-formed global ID of type `kind` that names no record.
pub fn unknown_id(kind: &str) -> String {
    servicegraph::graphql::ids::encode(kind, 999_999_999).0
}

/// The `extensions.field` of the first error.
pub fn field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field in {body}"))
}

/// The `message` of the first error.
pub fn message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}
