//! GraphQL over HTTP's media types (the GraphQL-over-HTTP specification):
//! which one a response is written in, from the request's `Accept`; which
//! request bodies POST takes, from its `Content-Type`; and how a request
//! error (a document that does not parse or validate, variables that do not
//! coerce) is answered in each.

use async_graphql::BatchResponse;
use axum::http::{HeaderMap, StatusCode, header};

pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
pub const JSON: &str = "application/json";

/// The media type of a GraphQL response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: a request error is a 400.
    GraphqlResponse,
    /// `application/json`, the legacy type: every answer to a well-formed
    /// request is a 200, its errors in the body.
    Json,
}

impl Media {
    pub fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => GRAPHQL_RESPONSE,
            Media::Json => JSON,
        }
    }

    /// `application/graphql-response+json` when the client names it and
    /// prefers it at least as much as `application/json`; otherwise
    /// `application/json`, as the specification asks for a request with no
    /// `Accept`, with `*/*`, or naming neither.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let (mut graphql, mut json) = (Weight::NONE, Weight::NONE);
        for value in headers.get_all(header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for range in value.split(',') {
                let mut parts = range.split(';');
                let kind = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let specificity = match kind.as_str() {
                    GRAPHQL_RESPONSE | JSON => 2,
                    "application/*" => 1,
                    "*/*" => 0,
                    _ => continue,
                };
                let weight = Weight { specificity, q };
                if kind == GRAPHQL_RESPONSE || specificity < 2 {
                    graphql = graphql.more_specific(weight);
                }
                if kind == JSON || specificity < 2 {
                    json = json.more_specific(weight);
                }
            }
        }
        let named = graphql.specificity == 2;
        if graphql.q > 0.0 && (graphql.q > json.q || (graphql.q == json.q && named)) {
            Media::GraphqlResponse
        } else {
            Media::Json
        }
    }

    /// The status of a single response: 400 for a request error in
    /// `application/graphql-response+json`, else 200. A batch is a 200.
    pub fn status(self, response: &BatchResponse) -> StatusCode {
        match response {
            BatchResponse::Single(r) if self == Media::GraphqlResponse && is_request_error(r) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::OK,
        }
    }
}

/// How strongly a media range of `Accept` names a type: the most specific
/// range naming it counts.
#[derive(Clone, Copy)]
struct Weight {
    specificity: u8,
    q: f32,
}

impl Weight {
    const NONE: Weight = Weight {
        specificity: 0,
        q: -1.0,
    };

    fn more_specific(self, other: Weight) -> Weight {
        if self.q < 0.0 || other.specificity > self.specificity {
            other
        } else {
            self
        }
    }
}

/// A request error: it failed before execution (parsing, validation,
/// variables), so it has no data, and no error has a path.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// The JSON of a response. A request error carries no `data` entry at all
/// (the GraphQL specification: the request never executed).
pub fn to_json(response: &BatchResponse) -> serde_json::Result<String> {
    let request_errors = match response {
        BatchResponse::Single(r) => is_request_error(r),
        BatchResponse::Batch(rs) => rs.iter().any(is_request_error),
    };
    if !request_errors {
        return serde_json::to_string(response);
    }
    let without_data = |r: &async_graphql::Response| -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(r)?;
        if is_request_error(r)
            && let Some(fields) = value.as_object_mut()
        {
            fields.remove("data");
        }
        Ok(value)
    };
    match response {
        BatchResponse::Single(r) => serde_json::to_string(&without_data(r)?),
        BatchResponse::Batch(rs) => {
            let items = rs.iter().map(without_data).collect::<Result<Vec<_>, _>>()?;
            serde_json::to_string(&items)
        }
    }
}

/// `Err` with the reason when a POST body is not declared as JSON in UTF-8.
pub fn check_request_type(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err("a POST needs the header Content-Type: application/json".into());
    };
    let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut parts = value.split(';');
    let kind = parts.next().unwrap_or_default().trim();
    if kind != JSON {
        return Err(format!(
            "Content-Type {kind:?} is not supported: send application/json"
        ));
    }
    for param in parts {
        if let Some(charset) = param.trim().strip_prefix("charset=")
            && !matches!(charset.trim_matches('"'), "utf-8" | "utf8")
        {
            return Err(format!(
                "charset {charset} is not supported: send application/json in UTF-8"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: Option<&str>) -> Media {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        Media::negotiate(&headers)
    }

    #[test]
    fn accept_chooses_the_media_type() {
        use Media::*;
        for (value, expected) in [
            (None, Json),
            (Some("*/*"), Json),
            (Some("application/json"), Json),
            (Some("application/*"), Json),
            (Some("text/html"), Json),
            (Some(GRAPHQL_RESPONSE), GraphqlResponse),
            (
                Some("application/graphql-response+json, application/json"),
                GraphqlResponse,
            ),
            (
                Some("application/json, application/graphql-response+json"),
                GraphqlResponse,
            ),
            (
                Some("application/graphql-response+json;charset=utf-8, application/json;q=0.9"),
                GraphqlResponse,
            ),
            (
                Some("application/graphql-response+json;q=0.5, application/json"),
                Json,
            ),
            (Some("application/graphql-response+json;q=0, */*"), Json),
            (Some("APPLICATION/GRAPHQL-RESPONSE+JSON"), GraphqlResponse),
            (
                Some("*/*;q=0.1, application/graphql-response+json"),
                GraphqlResponse,
            ),
        ] {
            assert_eq!(accept(value), expected, "{value:?}");
        }
    }

    #[test]
    fn post_bodies_must_be_declared_utf8_json() {
        let check = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            }
            check_request_type(&headers)
        };
        assert!(check(Some("application/json")).is_ok());
        assert!(check(Some("Application/JSON; charset=UTF-8")).is_ok());
        assert!(check(None).is_err());
        assert!(check(Some("text/plain")).is_err());
        assert!(check(Some("application/json; charset=utf-16")).is_err());
        assert!(check(Some("application/graphql")).is_err());
    }
}
