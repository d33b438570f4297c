//! Authentication: every bad token kind is a 401 with `UNAUTHENTICATED`; the
//! algorithms are pinned by configuration; RS256/ES256 from PEM, JWKS file and URL.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use servicegraph::config::JwtAlgorithm;

use crate::helpers::*;

const ME: &str = "{ me { subject roles organization { code } } }";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn claims(exp_offset: i64) -> Value {
    let now = servicegraph::dev::unix_now() as i64;
    json!({ "sub": "someone", "tenant": "provider", "roles": ["admin"], "exp": now + exp_offset, "iat": now })
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn hs(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
        claims,
    )
}

/// A token with good claims, signed by the fixture key `file` (RSA or EC by `alg`).
fn signed(alg: Algorithm, file: &str, kid: Option<&str>) -> String {
    let key = match alg {
        Algorithm::ES256 => ec(&format!("{file}.pem")),
        _ => rsa(&format!("{file}.pem")),
    };
    sign(alg, &key, kid, &claims(3600))
}

fn rsa(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture(file)).unwrap()).unwrap()
}

fn ec(file: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(&std::fs::read(fixture(file)).unwrap()).unwrap()
}

async fn assert_unauthenticated(app: &TestApp, token: Option<&str>, why: &str) {
    let (status, body) = app.post(token, &json!({ "query": ME })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_eq!(code(&body), "UNAUTHENTICATED", "{why}: {body}");
    assert!(
        body.get("data").is_none_or(Value::is_null),
        "{why}: no data with a bad token"
    );
}

async fn assert_accepted(app: &TestApp, token: &str, why: &str) -> Value {
    let (status, body) = app.post(Some(token), &json!({ "query": ME })).await;
    assert_eq!(status, StatusCode::OK, "{why}: {body}");
    assert!(body.get("errors").is_none(), "{why}: {body}");
    body["data"]["me"].clone()
}

#[tokio::test]
async fn every_bad_token_kind_is_401_unauthenticated() {
    let app = TestApp::spawn().await;
    assert_unauthenticated(&app, None, "missing token").await;
    assert_unauthenticated(&app, Some("not-a-jwt"), "malformed token").await;
    assert_unauthenticated(&app, Some("a.b.c"), "malformed segments").await;
    assert_unauthenticated(&app, Some(&hs(SECRET, &claims(-3600))), "expired").await;
    assert_unauthenticated(
        &app,
        Some(&hs(
            "another-secret-that-is-long-enough-for-hs256-xx",
            &claims(3600),
        )),
        "wrong signature",
    )
    .await;
    let hs384 = sign(
        Algorithm::HS384,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        &claims(3600),
    );
    assert_unauthenticated(&app, Some(&hs384), "algorithm not configured").await;
    let rs = signed(Algorithm::RS256, "rsa_private", None);
    assert_unauthenticated(&app, Some(&rs), "RS256 when only HS256 is configured").await;

    // alg "none": an unsigned token must never pass.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(3600))
    );
    assert_unauthenticated(&app, Some(&unsigned), "alg none").await;

    let mut no_exp = claims(3600);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_unauthenticated(&app, Some(&hs(SECRET, &no_exp)), "no exp claim").await;

    let mut unknown_tenant = claims(3600);
    unknown_tenant["tenant"] = json!("nobody");
    assert_unauthenticated(&app, Some(&hs(SECRET, &unknown_tenant)), "unknown tenant").await;

    let mut no_role = claims(3600);
    no_role["roles"] = json!(["superuser"]);
    assert_unauthenticated(&app, Some(&hs(SECRET, &no_role)), "no known role").await;

    // The same request with a good token works, and the scheme is case-insensitive.
    let resp = app
        .client
        .post(format!("{}/graphql", app.base))
        .header(
            "authorization",
            format!("bearer {}", hs(SECRET, &claims(3600))),
        )
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let me = assert_accepted(&app, &app.admin(), "good token").await;
    assert_eq!(me["organization"]["code"], "provider");
    assert_eq!(me["roles"], json!(["admin"]));
}

#[tokio::test]
async fn unauthenticated_answers_carry_www_authenticate() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.base))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let app = TestApp::spawn_with(|c| {
        c.auth.issuer = Some("https://idp.example.com".into());
        c.auth.audience = Some("servicegraph".into());
    })
    .await;
    let mut good = claims(3600);
    good["iss"] = json!("https://idp.example.com");
    good["aud"] = json!("servicegraph");
    assert_accepted(&app, &hs(SECRET, &good), "right iss and aud").await;

    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.com");
    assert_unauthenticated(&app, Some(&hs(SECRET, &wrong_iss)), "wrong issuer").await;
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-api");
    assert_unauthenticated(&app, Some(&hs(SECRET, &wrong_aud)), "wrong audience").await;
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_unauthenticated(&app, Some(&hs(SECRET, &no_iss)), "missing issuer").await;
    let mut no_aud = good;
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_unauthenticated(&app, Some(&hs(SECRET, &no_aud)), "missing audience").await;
}

#[tokio::test]
async fn rs256_and_es256_public_keys_from_pem_files() {
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.auth.public_key_pem_file = Some(fixture("rsa_public.pem"));
    })
    .await;
    assert_accepted(
        &app,
        &signed(Algorithm::RS256, "rsa_private", None),
        "RS256",
    )
    .await;
    let other = signed(Algorithm::RS256, "rsa2_private", None);
    assert_unauthenticated(&app, Some(&other), "RS256 signed by another key").await;
    assert_unauthenticated(
        &app,
        Some(&hs(SECRET, &claims(3600))),
        "HS256 is not configured",
    )
    .await;

    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.auth.public_key_pem_file = Some(fixture("ec_public.pem"));
    })
    .await;
    assert_accepted(&app, &signed(Algorithm::ES256, "ec_private", None), "ES256").await;
}

#[tokio::test]
async fn algorithms_are_pinned_by_configuration() {
    // HS256 secret present, but only RS256 accepted: an HS256 token is refused.
    let app = TestApp::spawn_with(|c| {
        c.auth.public_key_pem_file = Some(fixture("rsa_public.pem"));
        c.auth.algorithms = vec![JwtAlgorithm::RS256];
    })
    .await;
    assert_unauthenticated(
        &app,
        Some(&hs(SECRET, &claims(3600))),
        "HS256 not in the pinned list",
    )
    .await;
    assert_accepted(
        &app,
        &signed(Algorithm::RS256, "rsa_private", None),
        "RS256",
    )
    .await;
}

#[tokio::test]
async fn jwks_file_keys_are_looked_up_by_kid() {
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.auth.jwks_file = Some(fixture("jwks.json"));
    })
    .await;
    assert_accepted(
        &app,
        &signed(Algorithm::RS256, "rsa_private", Some("rsa-1")),
        "RS256 kid",
    )
    .await;
    assert_accepted(
        &app,
        &signed(Algorithm::ES256, "ec_private", Some("ec-1")),
        "ES256 kid",
    )
    .await;
    let unknown = signed(Algorithm::RS256, "rsa_private", Some("nope"));
    assert_unauthenticated(&app, Some(&unknown), "unknown kid").await;
    // A key id naming an EC key cannot verify an RSA signature.
    let mismatched = signed(Algorithm::RS256, "rsa_private", Some("ec-1"));
    assert_unauthenticated(&app, Some(&mismatched), "kid of another key type").await;
}

/// A JWKS endpoint on loopback that counts its fetches and can rotate its keys.
async fn jwks_server(initial: &str) -> (String, Arc<AtomicUsize>, Arc<Mutex<String>>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let doc = Arc::new(Mutex::new(
        std::fs::read_to_string(fixture(initial)).unwrap(),
    ));
    let (f, d) = (fetches.clone(), doc.clone());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (f, d) = (f.clone(), d.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                ([("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, fetches, doc)
}

#[tokio::test]
async fn jwks_url_refreshes_on_unknown_kid_at_most_once_per_interval() {
    let (url, fetches, doc) = jwks_server("jwks.json").await;
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.auth.jwks_url = Some(url);
        c.auth.jwks_refresh_interval = Duration::from_millis(1500);
    })
    .await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start-up"
    );
    assert_accepted(
        &app,
        &signed(Algorithm::RS256, "rsa_private", Some("rsa-1")),
        "known kid",
    )
    .await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known kid needs no fetch"
    );

    // The identity provider rotates to a new key.
    *doc.lock().unwrap() = std::fs::read_to_string(fixture("jwks_rotated.json")).unwrap();
    let rotated = signed(Algorithm::RS256, "rsa2_private", Some("rsa-2"));
    // Within the interval since start-up, unknown kids do not trigger fetches.
    for _ in 0..5 {
        assert_unauthenticated(
            &app,
            Some(&rotated),
            "unknown kid inside the refresh interval",
        )
        .await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "no fetch storm on unknown kids"
    );

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_accepted(&app, &rotated, "rotated key after the interval").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "exactly one refetch");
    let garbage = signed(Algorithm::RS256, "rsa2_private", Some("garbage"));
    for _ in 0..5 {
        assert_unauthenticated(&app, Some(&garbage), "unknown kid").await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "still at most one fetch per interval"
    );
}

#[tokio::test]
async fn websocket_with_a_bad_token_closes_4403_and_a_silent_one_4408() {
    let app = TestApp::spawn_with(|c| c.http.ws_init_timeout = Duration::from_secs(1)).await;
    let mut ws = app.ws("graphql-transport-ws").await;
    ws.send(
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer not-a-token" } }),
    )
    .await;
    assert_eq!(ws.close_code(5).await, Some(4403));

    let mut ws = app.ws("graphql-transport-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(ws.close_code(5).await, Some(4403), "no token at all");

    let mut ws = app.ws("graphql-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": hs("wrong-secret-wrong-secret-wrong-secret-xx", &claims(60)) } }))
        .await;
    match ws.next(5).await {
        WsEvent::Json(msg) => {
            assert_eq!(msg["type"], "connection_error", "{msg}");
            assert_eq!(ws.close_code(5).await, Some(4403));
        }
        WsEvent::Closed(code) => assert_eq!(code, Some(4403)),
    }

    let started = std::time::Instant::now();
    let mut ws = app.ws("graphql-transport-ws").await;
    assert_eq!(ws.close_code(5).await, Some(4408));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed only after the init timeout"
    );

    let mut ws = app.ws("graphql-transport-ws").await;
    ws.init(&app.admin()).await;
}

#[tokio::test]
async fn a_deactivated_organizations_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let requester = app.token("jane", "acme", &["requester"]);
    assert_accepted(&app, &requester, "active organization").await;
    app.ok(
        &app.admin(),
        "mutation($i: UpdateOrganizationInput!) { updateOrganization(input: $i) { active } }",
        json!({ "i": { "id": acme, "version": 1, "active": false } }),
    )
    .await;
    // The server that made the change forgets its cached tenant at once.
    assert_unauthenticated(&app, Some(&requester), "deactivated organization").await;
}
