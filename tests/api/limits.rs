//! Request limits: depth, complexity, directives, batch size, body size, suggestions,
//! introspection, malformed requests. Each answered with a stable code.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn queries_deeper_than_the_limit_are_refused() {
    let app = TestApp::spawn_with(|c| c.graphql.max_depth = 5).await;
    let deep = "{ services { edges { node { offerings { service { offerings { name } } } } } } }";
    let body = app.gql(&app.admin(), deep, json!({})).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{body}"
    );
    let shallow = app
        .gql(&app.admin(), "{ services { totalCount } }", json!({}))
        .await;
    assert!(shallow.get("errors").is_none(), "{shallow}");
}

/// The introspection queries of graphql-js (`getIntrospectionQuery()`, and
/// with every option) and of GraphiQL 4 nest 15 fields deep: they pass with
/// the default limits and give the whole schema, while an ordinary query one
/// level over `max_depth` is still refused.
#[tokio::test]
async fn the_standard_introspection_queries_pass_the_default_limits() {
    let app = TestApp::spawn().await;
    let defaults = servicegraph::config::Config::default().graphql;
    for (name, text) in [
        (
            "graphql-js",
            include_str!("../fixtures/introspection/graphql-js.graphql"),
        ),
        (
            "graphql-js-all-options",
            include_str!("../fixtures/introspection/graphql-js-all-options.graphql"),
        ),
        (
            "graphiql-4",
            include_str!("../fixtures/introspection/graphiql-4.graphql"),
        ),
    ] {
        let (status, body) = app
            .post(
                Some(&app.admin()),
                &json!({ "query": text, "operationName": "IntrospectionQuery" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert!(body.get("errors").is_none(), "{name}: {body}");
        let schema = &body["data"]["__schema"];
        assert_eq!(schema["queryType"]["name"], "Query", "{name}");
        assert_eq!(schema["subscriptionType"]["name"], "Subscription", "{name}");
        let types = schema["types"].as_array().unwrap();
        let incident = types.iter().find(|t| t["name"] == "Incident").expect(name);
        assert!(
            incident["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "number"),
            "{name}"
        );
    }
    // One level over the limit, in ordinary fields: refused. The root
    // `incidents { edges { node {` is three levels, `number` the last one.
    let mut inner = String::from("number");
    for level in 0..defaults.max_depth - 3 {
        let field = if level % 2 == 0 {
            "problems"
        } else {
            "incidents"
        };
        inner = format!("{field} {{ {inner} }}");
    }
    let over = format!("{{ incidents(first: 1) {{ edges {{ node {{ {inner} }} }} }} }}");
    let at_limit = over.replacen("problems { number }", "number", 1);
    let body = app.gql(&app.admin(), &at_limit, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = app.gql(&app.admin(), &over, json!({})).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(message(&body).contains("too deep"), "{body}");
}

#[tokio::test]
async fn queries_more_complex_than_the_limit_are_refused() {
    let app = TestApp::spawn_with(|c| c.graphql.max_complexity = 10).await;
    let complex = "{ services { edges { cursor node { id name description status criticality version createdAt updatedAt } } } }";
    let body = app.gql(&app.admin(), complex, json!({})).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{body}"
    );
}

#[tokio::test]
async fn batches_are_limited_to_ten_operations() {
    let app = TestApp::spawn().await;
    let op = json!({ "query": "{ me { subject } }" });
    let (status, body) = app
        .post(Some(&app.admin()), &Value::Array(vec![op.clone(); 2]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.as_array().unwrap().len(),
        2,
        "a batch answers with one result per operation"
    );
    let (status, body) = app
        .post(Some(&app.admin()), &Value::Array(vec![op.clone(); 10]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(Some(&app.admin()), &Value::Array(vec![op; 11]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "VALIDATION");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_and_nothing_is_written() {
    let app = TestApp::spawn_with(|c| c.http.max_body_bytes = 2048).await;
    let big = "x".repeat(4096);
    let mutation = json!({
        "query": "mutation($i: CreateServiceInput!) { createService(input: $i) { id } }",
        "variables": { "i": { "name": "Big", "description": big } }
    });
    let (status, body) = app.post(Some(&app.admin()), &mutation).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "VALIDATION");
    let data = app
        .ok(&app.admin(), "{ services { totalCount } }", json!({}))
        .await;
    assert_eq!(data["services"]["totalCount"], 0);
}

#[tokio::test]
async fn malformed_requests_get_a_validation_code() {
    let app = TestApp::spawn().await;
    let send = |body: &'static str| {
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(app.admin())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for raw in ["{not json", "[]", "{\"variables\": {}}", "42"] {
        let resp = send(raw).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{raw}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "VALIDATION", "{raw}: {body}");
    }
    // Syntax errors and wrong argument types come back as GraphQL errors with a code.
    for (query, variables) in [
        ("{ services(first: ) { totalCount } }", json!({})),
        ("{ services(first: \"ten\") { totalCount } }", json!({})),
        (
            "query($n: Int) { services(first: $n) { totalCount } }",
            json!({ "n": "many" }),
        ),
    ] {
        let body = app.gql(&app.admin(), query, variables).await;
        assert_eq!(code(&body), "VALIDATION", "{query}: {body}");
    }
}

#[tokio::test]
async fn no_field_suggestions_are_offered() {
    let app = TestApp::spawn().await;
    let body = app
        .gql(&app.admin(), "{ servces { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&body), "VALIDATION");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains("Did you mean"),
        "suggestions leak the schema: {message}"
    );
}

#[tokio::test]
async fn introspection_is_on_by_default_and_can_be_disabled() {
    let query = "{ __schema { queryType { name } } }";
    let app = TestApp::spawn().await;
    let data = app.ok(&app.admin(), query, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");

    // Disabled, the engine answers as if the schema had no introspection fields: null.
    let app = TestApp::spawn_with(|c| c.graphql.introspection = false).await;
    let body = app.gql(&app.admin(), query, json!({})).await;
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection should be hidden: {body}"
    );
    let data = app.ok(&app.admin(), "{ me { subject } }", json!({})).await;
    assert_eq!(
        data["me"]["subject"], "admin@provider",
        "ordinary queries still work"
    );
}

#[tokio::test]
async fn directives_are_limited_per_field_and_per_document() {
    let app = TestApp::spawn().await;
    let few = "{ me { subject @skip(if: false) @include(if: true) } }";
    let data = app.ok(&app.admin(), few, json!({})).await;
    assert_eq!(data["me"]["subject"], "admin@provider");

    // Six on one field: async-graphql's own limit (5 by default).
    let six = format!("{{ me {{ subject {} }} }}", "@skip(if: false) ".repeat(6));
    let body = app.gql(&app.admin(), &six, json!({})).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(message(&body).contains("directives"), "{body}");

    // Within the per-field limit, but too many in the document (100 by default).
    let fields: String = (0..101)
        .map(|i| format!("f{i}: subject @skip(if: false) "))
        .collect();
    let body = app
        .gql(&app.admin(), &format!("{{ me {{ {fields} }} }}"), json!({}))
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(
        message(&body).contains("101 directives, at most 100"),
        "{body}"
    );

    // 50,000 on one field (850 kB): refused before parsing, quickly.
    let flood = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(50_000));
    let started = std::time::Instant::now();
    let body = app.gql(&app.admin(), &flood, json!({})).await;
    let took = started.elapsed();
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(message(&body).contains("50000 directives"), "{body}");
    assert!(
        took < std::time::Duration::from_millis(500),
        "refusing took {took:?}"
    );
}

#[tokio::test]
async fn directive_limits_are_configurable() {
    let app = TestApp::spawn_with(|c| {
        c.graphql.max_directives_per_field = 1;
        c.graphql.max_directives = 2;
    })
    .await;
    let body = app
        .gql(
            &app.admin(),
            "{ me { subject @skip(if: false) @include(if: true) } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    let body = app
        .gql(
            &app.admin(),
            "{ me { a: subject @skip(if: false) b: subject @skip(if: false) c: subject @skip(if: false) } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert!(message(&body).contains("at most 2"), "{body}");
}
