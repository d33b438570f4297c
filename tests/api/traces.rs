//! OpenTelemetry traces: the real binary exports over OTLP/HTTP (protobuf) to
//! a receiver in this test; a named operation sent with an x-request-id
//! makes one trace: the request span with the id, the GraphQL steps and
//! resolved fields below it, and the database statements below those. The
//! spans still buffered at SIGTERM are flushed before the process exits.
//! (The tracing subscriber is global, so the exporter never runs in this
//! test process.)

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::header, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::Span,
};
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Every span received, with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

async fn receive(
    State(received): State<Received>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let mut all = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| text(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                all.push((service.clone(), span));
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| match &v.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

async fn start_receiver() -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

#[tokio::test]
async fn an_operation_is_one_trace_with_its_resolvers_and_statements() {
    let (collector, received) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicegraph"));
    cmd.arg("serve")
        .env_clear()
        .env("SERVICEGRAPH_LISTEN", addr.to_string())
        .env("SERVICEGRAPH_DATA_DIR", dir.path())
        .env("SERVICEGRAPH_AUTH__HS256_SECRET", SECRET)
        .env("SERVICEGRAPH_SLA__WORKER_ENABLED", "false")
        .env("SERVICEGRAPH_LOG__FILTER", "error")
        // No path: the server adds OTLP's /v1/traces.
        .env(
            "SERVICEGRAPH_TRACES__ENDPOINT",
            format!("http://{collector}"),
        )
        .env(
            "SERVICEGRAPH_TRACES__SERVICE_NAME",
            "servicegraph-trace-test",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = fresh_database().await {
        cmd.env("DATABASE_URL", url);
    }
    let mut child = cmd.spawn().expect("the server binary starts");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "the server is not ready in time");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Probes are not traced (nor the statement /readyz runs).
    for probe in ["healthz", "readyz"] {
        let resp = client
            .get(format!("http://{addr}/{probe}"))
            .header("x-request-id", format!("probe-{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    let request_id = "trace-probe-4f1c2a";
    let admin = token_with("admin@provider", "provider", &["admin"], &[]);
    let resp = client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&admin)
        .header("x-request-id", request_id)
        .json(&json!({
            "query": "query TraceProbe { services { totalCount nodes { name } } }",
            "operationName": "TraceProbe"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");

    // SIGTERM: the buffered spans are sent before the process exits.
    let pid = child.id().expect("running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server exits in time")
        .unwrap();
    assert!(status.success(), "{status}");

    let spans = received.lock().unwrap().clone();
    // Statements outside any request (start-up's migrations and checks) are
    // not traces of their own.
    let orphans = spans
        .iter()
        .filter(|(_, s)| s.name.starts_with("sea_orm.") && s.parent_span_id.is_empty())
        .count();
    assert_eq!(orphans, 0, "statements traced outside a request");
    let probes = spans
        .iter()
        .filter(|(_, s)| {
            text(&s.attributes, "request_id").is_some_and(|id| id.starts_with("probe-"))
        })
        .count();
    assert_eq!(probes, 0, "health probes were traced");
    let roots = spans
        .iter()
        .filter(|(_, s)| s.parent_span_id.is_empty())
        .count();
    assert_eq!(roots, 1, "one trace: the operation's");
    let root = spans
        .iter()
        .find(|(_, s)| text(&s.attributes, "request_id").as_deref() == Some(request_id))
        .unwrap_or_else(|| panic!("no span carries the request id; got {} spans", spans.len()));
    assert_eq!(root.0, "servicegraph-trace-test");
    let root = &root.1;
    assert!(
        root.parent_span_id.is_empty(),
        "the request span is the root"
    );
    assert_eq!(
        text(&root.attributes, "operation").as_deref(),
        Some("TraceProbe")
    );

    // The trace: every span below the root.
    let in_trace: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.trace_id == root.trace_id)
        .collect();
    let by_id: HashMap<&[u8], &Span> = in_trace
        .iter()
        .map(|s| (s.span_id.as_slice(), *s))
        .collect();
    let below_root = |s: &Span| {
        let mut parent = s.parent_span_id.as_slice();
        while !parent.is_empty() {
            if parent == root.span_id.as_slice() {
                return true;
            }
            parent = by_id
                .get(parent)
                .map_or(&[][..], |p| p.parent_span_id.as_slice());
        }
        false
    };
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    for step in ["parse", "validation", "execute"] {
        assert!(names.contains(&step), "no {step} span in {names:?}");
    }
    let services_field = in_trace
        .iter()
        .find(|s| s.name == "field" && text(&s.attributes, "path").as_deref() == Some("services"))
        .unwrap_or_else(|| panic!("no resolver span for services in {names:?}"));
    assert!(below_root(services_field));
    let statements: Vec<&&Span> = in_trace
        .iter()
        .filter(|s| s.name.starts_with("sea_orm."))
        .collect();
    assert!(!statements.is_empty(), "no statement span in {names:?}");
    for s in &statements {
        assert!(below_root(s), "a statement outside the request: {}", s.name);
        assert!(text(&s.attributes, "db.system").is_some(), "{s:?}");
    }
    // The statements of the services resolver are its children (or deeper).
    let under_field = statements.iter().any(|s| {
        let mut parent = s.parent_span_id.as_slice();
        while let Some(p) = by_id.get(parent) {
            if p.span_id == services_field.span_id {
                return true;
            }
            parent = p.parent_span_id.as_slice();
        }
        false
    });
    assert!(under_field, "no statement below the services resolver");
}
