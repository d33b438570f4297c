//! GraphQL over HTTP: POST /graphql (authentication, body and batch limits,
//! the budget, idempotency, execution in a task of its own), GET /graphql
//! (a query in the URL, cacheable; GraphiQL without one), and the answers of
//! requests that fail before they execute. Media types are in `media`.

use std::{future::Future, sync::Arc};

use async_graphql::{BatchRequest, BatchResponse, parser::types::OperationType};
use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::{
    AppState, REQUEST_ID_HEADER,
    idempotency::{self, Answer, Begin},
    media::{self, Media},
};
use crate::{
    error::{AppError, REQUEST_ID},
    graphql::{limits, loaders::Loaders},
};

/// Seconds a client is asked to wait before retrying when the database is unavailable.
pub(crate) const RETRY_AFTER_SECONDS: &str = "5";

/// The answer to a request that failed before it could execute (its
/// principal could not be resolved, its task failed): 503 with Retry-After
/// when the database is unavailable, else 500; logged, with the request id.
pub(super) fn failure_response(err: AppError) -> Response {
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
pub(super) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What a request to /graphql brought.
enum Incoming {
    /// A POST body: one operation or a batch, in JSON.
    Post(Result<Bytes, BytesRejection>),
    /// A GET's query string: one query (never a mutation).
    Get(String),
}

pub(super) async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    with_request_id(state, headers, Incoming::Post(body)).await
}

/// GET /graphql: a query in the URL (`query`, `variables`, `operationName`,
/// `extensions`), cacheable; without a `query` parameter, GraphiQL.
pub(super) async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match query {
        Some(query) if has_query_parameter(&query) => {
            with_request_id(state, headers, Incoming::Get(query)).await
        }
        _ => super::graphiql::page(&state, &headers),
    }
}

fn has_query_parameter(query_string: &str) -> bool {
    query_string
        .split('&')
        .any(|pair| pair == "query" || pair.starts_with("query="))
}

async fn with_request_id(state: AppState, headers: HeaderMap, incoming: Incoming) -> Response {
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID
        .scope(request_id, execute(state, headers, incoming))
        .await
}

/// The operations of a POST body, with the body itself (for idempotency).
fn read_post(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(BatchRequest, Bytes), Box<Response>> {
    if let Err(message) = media::check_request_type(headers) {
        return Err(Box::new(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "VALIDATION",
            &message,
        )));
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.config.http.max_body_bytes;
            return Err(Box::new(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION",
                &format!("request body is larger than {limit} bytes"),
            )));
        }
        Err(_) => {
            return Err(Box::new(error_response(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                "could not read the request body",
            )));
        }
    };
    match parse_request(&body) {
        Ok(batch) => Ok((batch, body)),
        Err(message) => Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            "VALIDATION",
            &message,
        ))),
    }
}

/// The query of a GET: 405 for a mutation or subscription, which must be
/// POSTed. Its document is parsed once, here, within the directive limit.
fn read_get(state: &AppState, query_string: &str) -> Result<BatchRequest, Box<Response>> {
    let mut request = async_graphql::http::parse_query_string(query_string).map_err(|e| {
        Box::new(error_response(
            StatusCode::BAD_REQUEST,
            "VALIDATION",
            &format!("the query string is not a GraphQL request: {e}"),
        ))
    })?;
    let operation_name = request.operation_name.clone();
    let max_directives = state.config.graphql.max_directives;
    if let Some(document) = limits::parse_within(&mut request, max_directives)
        && let Some((_, operation)) =
            limits::selected_operation(document, operation_name.as_deref())
        && operation.node.ty != OperationType::Query
    {
        let mut answer = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "VALIDATION",
            &format!("a {} must be sent with POST", operation.node.ty),
        );
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(Box::new(answer));
    }
    // Any other document, unparsable or over a limit included, is answered
    // by the engine, as for POST.
    Ok(BatchRequest::Single(request))
}

async fn execute(state: AppState, headers: HeaderMap, incoming: Incoming) -> Response {
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
    let is_get = matches!(incoming, Incoming::Get(_));
    let read = match incoming {
        Incoming::Post(body) => read_post(&state, &headers, body).map(|(b, body)| (b, Some(body))),
        Incoming::Get(query) => read_get(&state, &query).map(|b| (b, None)),
    };
    let (mut batch, body) = match read {
        Ok(read) => read,
        Err(answer) => return *answer,
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
    // A POST with an Idempotency-Key runs once per caller and key.
    let claim = match body {
        Some(body) => match idempotency::begin(&state, &principal, &headers, &body).await {
            Begin::Execute(claim) => claim,
            Begin::Respond(response) => return receipt.stamp(response),
        },
        None => None,
    };
    let operations: Vec<&str> = batch
        .iter()
        .filter_map(|r| r.operation_name.as_deref())
        .collect();
    if !operations.is_empty() {
        tracing::Span::current().record("operation", operations.join(",").as_str());
    }
    let media = Media::negotiate(&headers);
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
        let answer = Answer::graphql(&with_codes(response), media);
        idempotency::finish(claim, &answer).await;
        answer
    };
    receipt.stamp(match detached(execution).await {
        Ok(answer) if is_get => cacheable(answer, &headers),
        Ok(answer) => answer.into_response(),
        // A panic: the claim, dropped with the task, released the key.
        Err(failed) => failure_response(failed),
    })
}

/// A GET's answer, for HTTP caches: it varies with the caller and the media
/// type, may be kept by the caller's own cache only and revalidated, with an
/// ETag of its body; `If-None-Match` with that tag is answered 304.
fn cacheable(answer: Answer, headers: &HeaderMap) -> Response {
    let digest = Sha256::digest(answer.body().as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        answer.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("accept, authorization"),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
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
