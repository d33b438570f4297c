//! GraphQL over HTTP as its specification asks (and graphql-http's audit,
//! run by tests/clients/run.sh, checks): media types from Accept, request
//! errors as 400 without `data` in application/graphql-response+json, POST
//! bodies declared as JSON, queries over GET (never mutations) with cache
//! validators, and compressed responses.

use std::io::Read;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const ORGANIZATIONS: &str = "{ organizations { totalCount } }";

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn post_accepting(app: &TestApp, accept: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(app.admin())
        .json(&json!({ "query": query }));
    if let Some(accept) = accept {
        req = req.header(header::ACCEPT, accept);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_response_media_type_follows_accept_and_request_errors_have_no_data() {
    let app = TestApp::spawn().await;
    for (accept, expected) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (Some(GRAPHQL_RESPONSE), GRAPHQL_RESPONSE),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL_RESPONSE,
        ),
    ] {
        let resp = post_accepting(&app, accept, "{ services { totalCount } }").await;
        assert_eq!(resp.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(content_type(&resp), expected, "{accept:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["data"]["services"]["totalCount"], 0, "{accept:?}");
    }
    // A document that does not parse, or does not validate: never executed.
    for query in ["{ services { totalCount }", "{ noSuchField }"] {
        let resp = post_accepting(&app, Some(GRAPHQL_RESPONSE), query).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(content_type(&resp), GRAPHQL_RESPONSE);
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("data").is_none(), "{query}: {body}");
        assert_eq!(code(&body), "VALIDATION", "{body}");
        // The legacy type answers a well-formed request 200, still without data.
        let resp = post_accepting(&app, Some("application/json"), query).await;
        assert_eq!(resp.status(), StatusCode::OK, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("data").is_none(), "{query}: {body}");
        assert_eq!(code(&body), "VALIDATION", "{body}");
    }
    // An error while executing keeps its data and its 200.
    let resp = post_accepting(
        &app,
        Some(GRAPHQL_RESPONSE),
        &format!(
            "{{ services {{ totalCount }} node(id: \"{}\") {{ id }} }}",
            unknown_id("Service")
        ),
    )
    .await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["services"]["totalCount"], 0, "{body}");
}

#[tokio::test]
async fn a_post_body_must_be_declared_as_json() {
    let app = TestApp::spawn().await;
    let body =
        r#"{"query":"mutation { createOrganization(input: {code: \"x\", name: \"X\"}) { id } }"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ] {
        let mut req = app
            .client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(app.admin())
            .body(body);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
        assert!(message(&answer).contains("application/json"), "{answer}");
    }
    let data = app.ok(&app.admin(), ORGANIZATIONS, json!({})).await;
    assert_eq!(
        data["organizations"]["totalCount"], 1,
        "only the provider: nothing written"
    );
}

#[tokio::test]
async fn queries_can_be_sent_over_get_and_revalidated_but_mutations_cannot() {
    let app = TestApp::spawn().await;
    app.service(json!({ "name": "Mail" })).await;
    let url = format!("{}/graphql", app.base);
    let get = |params: Vec<(&'static str, String)>| {
        app.client.get(&url).bearer_auth(app.admin()).query(&params)
    };
    let query = "query Names($first: Int) { services(first: $first) { edges { node { name } } } }";
    let resp = get(vec![
        ("query", query.into()),
        ("variables", json!({ "first": 5 }).to_string()),
        ("operationName", "Names".into()),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_owned();
    assert!(
        resp.headers()[header::VARY]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(
        resp.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("private")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["data"]["services"]["edges"][0]["node"]["name"], "Mail",
        "{body}"
    );

    // The same answer again: 304 with the validator, no body.
    let again = get(vec![("query", query.into())])
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
    // Changed data: a new answer.
    app.service(json!({ "name": "Web" })).await;
    let changed = get(vec![("query", query.into())])
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);

    // A mutation over GET: 405, Allow: POST, nothing written.
    let resp = get(vec![(
        "query",
        "mutation { createOrganization(input: {code: \"g\", name: \"G\"}) { id } }".into(),
    )])
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()[header::ALLOW], "POST");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "VALIDATION", "{body}");
    let data = app.ok(&app.admin(), ORGANIZATIONS, json!({})).await;
    assert_eq!(
        data["organizations"]["totalCount"], 1,
        "only the provider: nothing written"
    );

    // The same rules as POST: the directive limit, counted before anything
    // is parsed, a token, and bad variables are the caller's error.
    let max = servicegraph::config::Config::default()
        .graphql
        .max_directives;
    let over = format!(
        "{{ services {{ totalCount {} }} }}",
        "@skip(if: false) ".repeat(max + 1)
    );
    let resp = get(vec![("query", over)]).send().await.unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(message(&body).contains("directives"), "{body}");

    let resp = app
        .client
        .get(&url)
        .query(&[("query", "{ services { totalCount } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = get(vec![
        ("query", query.into()),
        ("variables", "{not json".into()),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "VALIDATION", "{body}");
}

/// Large answers are compressed as Accept-Encoding asks; small ones are not,
/// and `http.compression = false` turns it off.
#[tokio::test]
async fn large_responses_are_compressed() {
    let app = TestApp::spawn().await;
    let query = "{ __schema { types { name description fields { name description } } } }";
    let send = |app: &TestApp, encoding: &'static str, query: &'static str| {
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(app.admin())
            .header(header::ACCEPT_ENCODING, encoding)
            .json(&json!({ "query": query }))
            .send()
    };
    let plain = send(&app, "identity", query).await.unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.unwrap();

    let gzip = send(&app, "gzip", query).await.unwrap();
    assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    let compressed = gzip.bytes().await.unwrap();
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text, plain);

    let br = send(&app, "br", query).await.unwrap();
    assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");

    let small = send(&app, "gzip", "{ __typename }").await.unwrap();
    assert!(small.headers().get(header::CONTENT_ENCODING).is_none());

    let off = TestApp::spawn_with(|c| c.http.compression = false).await;
    let resp = send(&off, "gzip, br", query).await.unwrap();
    assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
}
