//! GraphiQL on GET /graphql, served entirely from the binary: React,
//! ReactDOM and GraphiQL (pinned, vendored in `assets/graphiql/`) and a small
//! bootstrap of ours under /graphql/assets/, so the page works offline and
//! makes no request outside the server.
//!
//! The page carries no inline script, so it is sent with a strict
//! Content-Security-Policy; its settings are `data-` attributes the bootstrap
//! reads. In development mode, on a loopback address only, the printed admin
//! token is prefilled in the headers pane; otherwise the bootstrap asks for a
//! bearer token before it mounts GraphiQL.

use std::{collections::HashMap, sync::LazyLock};

use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::AppState;

/// Where the assets are served; the page at /graphql refers to them here.
pub(super) const ASSETS_ROUTE: &str = "/graphql/assets/{*path}";
const ASSETS_PREFIX: &str = "/graphql/assets/";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The vendored files: their versions are in their paths, so they never change.
const VENDORED: [(&str, &str, &[u8]); 4] = [
    (
        "react-18.3.1/react.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react-18.3.1/react.production.min.js"),
    ),
    (
        "react-dom-18.3.1/react-dom.production.min.js",
        JS,
        include_bytes!("../../assets/graphiql/react-dom-18.3.1/react-dom.production.min.js"),
    ),
    (
        "graphiql-4.1.2/graphiql.min.js",
        JS,
        include_bytes!("../../assets/graphiql/graphiql-4.1.2/graphiql.min.js"),
    ),
    (
        "graphiql-4.1.2/graphiql.min.css",
        CSS,
        include_bytes!("../../assets/graphiql/graphiql-4.1.2/graphiql.min.css"),
    ),
];

/// Our own files change with the server: their paths carry a hash of their content.
const SCRIPT: (&str, &[u8]) = (
    "servicegraph-graphiql.js",
    include_bytes!("../../assets/graphiql/servicegraph-graphiql.js"),
);
const STYLE: (&str, &[u8]) = (
    "servicegraph-graphiql.css",
    include_bytes!("../../assets/graphiql/servicegraph-graphiql.css"),
);

/// Every asset lasts a year in caches: its path changes whenever its content does.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";

/// The page's policy: scripts, styles, fonts and images from the server only
/// (GraphiQL's fonts and icons are `data:` URLs inside its CSS); GraphiQL's
/// components set inline styles; requests to the server and its WebSocket.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

struct Assets {
    by_path: HashMap<String, Asset>,
    /// The served paths of our own script and style sheet.
    script: String,
    style: String,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let mut by_path = HashMap::new();
    for (path, content_type, body) in VENDORED {
        by_path.insert(path.to_owned(), Asset { content_type, body });
    }
    let mut own = |(name, body): (&str, &'static [u8]), content_type| {
        let hash = hex::encode(&Sha256::digest(body)[..6]);
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        let path = format!("servicegraph/{stem}.{hash}.{ext}");
        by_path.insert(path.clone(), Asset { content_type, body });
        path
    };
    let script = own(SCRIPT, JS);
    let style = own(STYLE, CSS);
    Assets {
        by_path,
        script,
        style,
    }
});

/// The GraphiQL page. The admin token of development mode is in it only
/// when the server listens on a loopback address, so a development server
/// bound to a network interface never hands an admin token to the network,
/// and only when the request's `Host` names a loopback host, so a page of
/// another site whose name was rebound to 127.0.0.1 (DNS rebinding) cannot
/// read it.
pub(super) fn page(state: &AppState, headers: &HeaderMap) -> Response {
    let dev_token = state
        .dev_admin_token
        .as_deref()
        .filter(|_| state.config.listen.ip().is_loopback() && host_is_loopback(headers));
    let assets = &*ASSETS;
    let dev_attribute = dev_token
        .map(|t| format!(" data-dev-token=\"{}\"", escape(t)))
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>ServiceGraph · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{prefix}graphiql-4.1.2/graphiql.min.css">
<link rel="stylesheet" href="{prefix}{style}">
</head>
<body>
<div id="servicegraph" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws"{dev_attribute}>
<header class="sg-bar">
<strong>ServiceGraph</strong> <span>GraphiQL</span>
<span id="sg-status" class="sg-status"></span>
<button type="button" id="sg-change-token" class="sg-link" hidden>Change token</button>
</header>
<main id="sg-connect" class="sg-connect" hidden>
<form id="sg-token-form" class="sg-card">
<h1>Connect to ServiceGraph</h1>
<p>Every request needs a bearer token (a JWT). Paste yours; it is kept in this browser tab only (sessionStorage) and sent as <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<p>An administrator mints one with <code>servicegraph token --subject you@example.com --role admin</code>.</p>
<label for="sg-token">Bearer token</label>
<textarea id="sg-token" name="token" rows="4" spellcheck="false" autocomplete="off" required></textarea>
<p id="sg-token-error" class="sg-error" role="alert" hidden></p>
<button type="submit" id="sg-connect-button">Connect</button>
</form>
</main>
<div id="graphiql" class="sg-graphiql"><noscript>GraphiQL needs JavaScript.</noscript></div>
</div>
<script src="{prefix}react-18.3.1/react.production.min.js"></script>
<script src="{prefix}react-dom-18.3.1/react-dom.production.min.js"></script>
<script src="{prefix}graphiql-4.1.2/graphiql.min.js"></script>
<script src="{prefix}{script}"></script>
</body>
</html>
"#,
        prefix = ASSETS_PREFIX,
        style = assets.style,
        script = assets.script,
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page may carry the development token: never stored.
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

/// `localhost` or a loopback address, with or without a port.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// GET /graphql/assets/{path}: an embedded file, or 404.
pub(super) async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.by_path.get(&path) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, CACHE_FOREVER),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such asset\n",
        )
            .into_response(),
    }
}

/// Escapes text for an HTML attribute value in double quotes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_host_is_loopback() {
        let with_host = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, host.parse().unwrap());
            host_is_loopback(&headers)
        };
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "LOCALHOST",
        ] {
            assert!(with_host(host), "{host}");
        }
        for host in [
            "evil.example.com",
            "evil.example.com:8080",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
            "localhost.evil.example.com",
        ] {
            assert!(!with_host(host), "{host}");
        }
        assert!(!host_is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn attribute_values_cannot_break_out_of_their_quotes() {
        assert_eq!(escape(r#"a"b<c>&'d"#), "a&quot;b&lt;c&gt;&amp;&#39;d");
    }

    #[test]
    fn own_assets_are_served_under_a_hash_of_their_content() {
        let assets = &*ASSETS;
        assert!(
            assets
                .script
                .starts_with("servicegraph/servicegraph-graphiql.")
        );
        assert!(assets.script.ends_with(".js"));
        assert!(assets.style.ends_with(".css"));
        assert_eq!(assets.by_path.len(), VENDORED.len() + 2);
    }
}
