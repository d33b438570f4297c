//! GraphiQL on GET /graphql: the page and every asset it loads come from the
//! server (offline, no outside URL), and the development token is in the
//! page only in development mode on a loopback address.

use regex::Regex;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Hosts whose URLs appear in the vendored bundles as text only: XML
/// namespaces and documentation links in messages, never fetched (the
/// browser check in tests/clients aborts any request outside the server).
/// A bundle update that brings a new host fails here until it is checked.
const TEXT_ONLY_HOSTS: [&str; 7] = [
    "www.w3.org",
    "reactjs.org",
    "github.com",
    "radix-ui.com",
    "codemirror.net",
    "commonmark.org",
    "en.wikipedia.org",
];

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("request sent")
}

async fn page(app: &TestApp) -> String {
    let resp = get(app, "/graphql").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/html; charset=utf-8",
        "the page is HTML"
    );
    resp.text().await.unwrap()
}

/// The `src` and `href` of the page's elements.
fn references(html: &str) -> Vec<String> {
    Regex::new(r#"\b(?:src|href)="([^"]*)""#)
        .unwrap()
        .captures_iter(html)
        .map(|c| c[1].to_owned())
        .collect()
}

fn absolute_urls(text: &str) -> Vec<String> {
    Regex::new(r#"(?i)(?:https?:)?//([a-z0-9-]+(?:\.[a-z0-9-]+)+)"#)
        .unwrap()
        .captures_iter(text)
        .map(|c| c[0].to_owned())
        .collect()
}

#[tokio::test]
async fn the_page_and_every_asset_it_loads_are_served_by_the_server_with_their_types() {
    let app = TestApp::spawn().await;
    let html = page(&app).await;
    let refs = references(&html);
    let scripts: Vec<&String> = refs.iter().filter(|r| r.ends_with(".js")).collect();
    let styles: Vec<&String> = refs.iter().filter(|r| r.ends_with(".css")).collect();
    assert!(
        scripts.len() >= 4 && styles.len() >= 2,
        "React, ReactDOM, GraphiQL and the bootstrap, with their styles: {refs:?}"
    );
    for reference in &refs {
        if reference.starts_with("data:") {
            continue;
        }
        assert!(
            reference.starts_with("/graphql/assets/"),
            "every asset comes from the server: {reference}"
        );
        let resp = get(&app, reference).await;
        assert_eq!(resp.status(), StatusCode::OK, "{reference}");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if reference.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(content_type, expected, "{reference}");
        let cache = resp.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(
            cache.contains("max-age=31536000") && cache.contains("immutable"),
            "{reference}: {cache}"
        );
        assert!(resp.bytes().await.unwrap().len() > 100, "{reference}");
    }
    let missing = get(&app, "/graphql/assets/graphiql-4.1.2/nothing.js").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_and_its_assets_name_no_outside_url_and_the_page_runs_no_inline_script() {
    let app = TestApp::spawn().await;
    let resp = get(&app, "/graphql").await;
    let policy = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("default-src 'self'"), "{policy}");
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    assert_eq!(absolute_urls(&html), Vec::<String>::new(), "the page");
    assert!(
        !Regex::new(r"<script(\s[^>]*)?>\s*[^<\s]")
            .unwrap()
            .is_match(&html),
        "no inline script: the policy would block it"
    );
    let allowed = |url: &str| {
        let host = url.split("//").nth(1).unwrap_or("").to_lowercase();
        TEXT_ONLY_HOSTS.contains(&host.as_str())
    };
    // What a style sheet names is fetched.
    let loads = Regex::new(r#"(?:url\(\s*['"]?|@import\s+['"])([^'")\s]*)"#).unwrap();
    for reference in references(&html) {
        if reference.starts_with("data:") {
            continue;
        }
        let text = get(&app, &reference).await.text().await.unwrap();
        if reference.ends_with(".css") {
            // GraphiQL's fonts and icons are data: URLs.
            for found in loads.captures_iter(&text) {
                assert!(
                    found[1].starts_with("data:"),
                    "{reference} loads {}",
                    &found[1]
                );
            }
        } else if reference.contains("/servicegraph/") {
            assert_eq!(absolute_urls(&text), Vec::<String>::new(), "{reference}");
        } else {
            let outside: Vec<String> = absolute_urls(&text)
                .into_iter()
                .filter(|u| !allowed(u))
                .collect();
            assert_eq!(outside, Vec::<String>::new(), "{reference}");
        }
    }
}

#[tokio::test]
async fn in_development_mode_on_loopback_the_page_prefills_the_admin_token() {
    let app = TestApp::spawn_with(|c| c.auth.hs256_secret = None).await;
    let token = app.dev_token.clone().expect("development mode");
    let html = page(&app).await;
    assert!(
        html.contains(&format!("data-dev-token=\"{token}\"")),
        "the page hands the printed token to GraphiQL: {html}"
    );
    let data = app.ok(&token, "{ me { subject roles } }", json!({})).await;
    assert_eq!(data["me"]["roles"], json!(["admin"]), "{data}");
}

#[tokio::test]
async fn a_development_server_on_a_network_address_never_puts_the_token_in_the_page() {
    let app = TestApp::spawn_with(|c| {
        c.auth.hs256_secret = None;
        c.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let token = app.dev_token.clone().expect("development mode");
    let html = page(&app).await;
    assert!(!html.contains(&token), "the admin token leaked: {html}");
    assert!(!html.contains("data-dev-token"), "{html}");
    assert!(
        html.contains("Connect to ServiceGraph"),
        "the prompt instead"
    );
}

#[tokio::test]
async fn with_a_configured_key_the_page_asks_for_a_token_and_holds_none() {
    let app = TestApp::spawn().await;
    assert!(app.dev_token.is_none());
    let html = page(&app).await;
    assert!(!html.contains("data-dev-token"), "{html}");
    assert!(
        !Regex::new(r"eyJ[\w-]+\.").unwrap().is_match(&html),
        "{html}"
    );
    assert!(html.contains("Connect to ServiceGraph"), "{html}");
    assert!(html.contains(r#"<label for="sg-token">Bearer token</label>"#));
}
