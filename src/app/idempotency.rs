//! Idempotent POST /graphql: the `Idempotency-Key` request header
//! (draft-ietf-httpapi-idempotency-key-header) with Stripe's semantics.
//!
//! A key is the caller's own: it is scoped to the principal's organization and
//! subject. The first request with a key claims it (a row in
//! `idempotency_keys`, made atomic by a unique index), runs, and stores its
//! answer; the same key with the same body is answered from the store with
//! `Idempotent-Replayed: true`, nothing executed. The same key with another
//! body is refused (422 `IDEMPOTENCY_KEY_REUSED`), and so is the same key
//! while its first request still runs (409 `IDEMPOTENCY_KEY_IN_FLIGHT`). A
//! claim carries a lease, so one left by a process that died is taken over
//! once the lease is over. A server fault before anything succeeded releases
//! the claim, so a retry runs again; other answers are kept, those with
//! errors of the caller's own making included.

use std::time::Duration;

use async_graphql::BatchResponse;
use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use entity::idempotency_key::{ActiveModel, Column, Entity, Model};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TryInsertResult,
};
use sha2::{Digest, Sha256};

use super::{
    AppState,
    http::{RETRY_AFTER_SECONDS, error_response, failure_response},
    media::{self, Media},
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult, current_request_id, error_code},
    records::now,
};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Added to `http.request_timeout` for a claim's lease: a request outlives
/// its HTTP timeout a little (its execution runs to the end regardless).
const LEASE_MARGIN: Duration = Duration::from_secs(30);

const MAX_KEY_LEN: usize = 255;

/// The answer of POST /graphql, as it is sent and as it is stored for replay.
pub struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
    /// A fault of the server's (INTERNAL, UNAVAILABLE) before anything
    /// succeeded: worth retrying, never stored.
    server_fault: bool,
    /// The database was unavailable to part of the request: a Retry-After header.
    retry_after: bool,
}

impl Answer {
    /// The executed request's answer in the negotiated media type (the
    /// schema sets no response headers).
    pub fn graphql(response: &BatchResponse, media: Media) -> Self {
        let responses: Vec<&async_graphql::Response> = match response {
            BatchResponse::Single(r) => vec![r],
            BatchResponse::Batch(rs) => rs.iter().collect(),
        };
        let codes = || {
            responses
                .iter()
                .flat_map(|r| &r.errors)
                .filter_map(error_code)
        };
        let faulted = codes().any(|c| c == "INTERNAL" || c == "UNAVAILABLE");
        // Executed, so answered 200 as GraphQL over HTTP asks; Retry-After
        // still tells clients and proxies when to retry. (A request error,
        // which never executed, is a 400 in graphql-response+json.)
        let retry_after = codes().any(|c| c == "UNAVAILABLE");
        // Released for a retry only when nothing succeeded: a request whose
        // first mutation committed before a later one failed is kept, so a
        // retry cannot run the first one twice.
        let nothing_done = responses.iter().all(|r| match &r.data {
            async_graphql::Value::Object(fields) => {
                fields.values().all(|v| *v == async_graphql::Value::Null)
            }
            other => *other == async_graphql::Value::Null,
        });
        let server_fault = faulted && nothing_done;
        match media::to_json(response) {
            Ok(body) => Self {
                status: media.status(response),
                content_type: media.content_type().into(),
                body,
                server_fault,
                retry_after,
            },
            Err(e) => {
                let err: async_graphql::Error = AppError::internal(e).into();
                let body = serde_json::json!({ "errors": [{ "message": err.message, "extensions": { "code": "INTERNAL" } }] });
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    content_type: "application/json".into(),
                    body: body.to_string(),
                    server_fault: true,
                    retry_after: false,
                }
            }
        }
    }

    pub fn body(&self) -> &str {
        &self.body
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let content_type = HeaderValue::from_str(&self.content_type)
            .unwrap_or(HeaderValue::from_static(media::JSON));
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, content_type)],
            self.body,
        )
            .into_response();
        if self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// What [`begin`] decided.
pub enum Begin {
    /// Execute the request; with a claim when it carried a key.
    Execute(Option<Claim>),
    /// Answer with this, executing nothing: a replay or a refusal.
    Respond(Response),
}

/// The caller's hold on a key while its request runs. Dropped without
/// [`Claim::settle`] (the execution panicked), it releases the key.
pub struct Claim {
    db: DatabaseConnection,
    scope: Scope,
    token: String,
    ttl: Duration,
    settled: bool,
}

/// A key as the caller's own.
#[derive(Clone)]
struct Scope {
    organization_id: i64,
    subject: String,
    key: String,
}

enum Outcome {
    Claimed(String),
    Replay(Model),
    Reused,
    InFlight,
}

/// Before execution: no key (or the feature off), a claim to run under, or
/// the answer to give instead (a replay, a refusal, a malformed key).
pub async fn begin(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    body: &[u8],
) -> Begin {
    let config = &state.config.idempotency;
    if !config.enabled {
        return Begin::Execute(None);
    }
    let key = match key_of(headers) {
        Ok(None) => return Begin::Execute(None),
        Ok(Some(key)) => key,
        Err(message) => {
            return Begin::Respond(error_response(
                StatusCode::BAD_REQUEST,
                "VALIDATION",
                message,
            ));
        }
    };
    let scope = Scope {
        organization_id: principal.organization_id,
        subject: principal.subject.clone(),
        key,
    };
    let hash = hex::encode(Sha256::digest(body));
    let lease = state.config.http.request_timeout + LEASE_MARGIN;
    match claim(&state.db, &scope, &hash, lease).await {
        Ok(Outcome::Claimed(token)) => Begin::Execute(Some(Claim {
            db: state.db.clone(),
            scope,
            token,
            ttl: config.ttl,
            settled: false,
        })),
        Ok(Outcome::Replay(row)) => Begin::Respond(replay(row)),
        Ok(Outcome::Reused) => Begin::Respond(error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used for a different request body; use a new key for a new request",
        )),
        Ok(Outcome::InFlight) => {
            let mut response = error_response(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_IN_FLIGHT",
                "a request with this Idempotency-Key is still being processed; retry once it has finished",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Begin::Respond(response)
        }
        Err(e) => Begin::Respond(failure_response(e)),
    }
}

/// After execution: stores the answer under the claim, or releases the claim
/// when the answer is a server fault (so the client's retry runs again).
pub async fn finish(claim: Option<Claim>, answer: &Answer) {
    if let Some(claim) = claim {
        claim.settle(answer).await;
    }
}

impl Claim {
    async fn settle(mut self, answer: &Answer) {
        self.settled = true;
        if answer.server_fault {
            release(&self.db, &self.scope, &self.token).await;
            return;
        }
        let stored = Entity::update_many()
            .set(ActiveModel {
                response_status: Set(Some(i32::from(answer.status.as_u16()))),
                response_content_type: Set(Some(answer.content_type.clone())),
                response_body: Set(Some(answer.body.clone())),
                request_id: Set(current_request_id()),
                expires_at: Set(now() + self.ttl),
                ..Default::default()
            })
            .filter(held(&self.scope, &self.token))
            .exec(&self.db)
            .await;
        match stored {
            Ok(r) if r.rows_affected == 1 => {}
            // Its lease ran out and another request took the key over.
            Ok(_) => tracing::warn!("idempotency key lost before its answer was stored"),
            // The request's effects may be committed: keep the claim until its
            // lease ends rather than let a retry run it again at once.
            Err(e) => tracing::error!(error = ?e, "storing an idempotent answer failed"),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, scope, token) = (self.db.clone(), self.scope.clone(), self.token.clone());
            runtime.spawn(async move { release(&db, &scope, &token).await });
        }
    }
}

/// The row of `scope` while `token` holds it.
fn held(scope: &Scope, token: &str) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Column::OrganizationId.eq(scope.organization_id))
        .add(Column::Subject.eq(scope.subject.as_str()))
        .add(Column::Key.eq(scope.key.as_str()))
        .add(Column::ClaimToken.eq(token))
}

async fn release(db: &DatabaseConnection, scope: &Scope, token: &str) {
    if let Err(e) = Entity::delete_many()
        .filter(held(scope, token))
        .exec(db)
        .await
    {
        // The lease frees the key in the end.
        tracing::warn!(error = ?e, "releasing an idempotency key failed");
    }
}

/// Claims `scope` for a request whose body hashes to `hash`, or says why not.
async fn claim(
    db: &DatabaseConnection,
    scope: &Scope,
    hash: &str,
    lease: Duration,
) -> AppResult<Outcome> {
    // A row can vanish or change between the insert and the read (released,
    // pruned, taken over): look again, a few times.
    for _ in 0..3 {
        let now = now();
        let token = uuid::Uuid::new_v4().to_string();
        // A fresh claim: this request's hash and token, no answer yet, the lease.
        let fresh = ActiveModel {
            request_hash: Set(hash.to_owned()),
            claim_token: Set(token.clone()),
            response_status: Set(None),
            response_content_type: Set(None),
            response_body: Set(None),
            request_id: Set(None),
            created_at: Set(now),
            expires_at: Set(now + lease),
            ..Default::default()
        };
        let inserted = Entity::insert(ActiveModel {
            organization_id: Set(scope.organization_id),
            subject: Set(scope.subject.clone()),
            key: Set(scope.key.clone()),
            ..fresh.clone()
        })
        .on_conflict_do_nothing_on([Column::OrganizationId, Column::Subject, Column::Key])
        .exec_without_returning(db)
        .await?;
        if matches!(inserted, TryInsertResult::Inserted(1)) {
            return Ok(Outcome::Claimed(token));
        }
        let existing = Entity::find()
            .filter(Column::OrganizationId.eq(scope.organization_id))
            .filter(Column::Subject.eq(scope.subject.as_str()))
            .filter(Column::Key.eq(scope.key.as_str()))
            .one(db)
            .await?;
        let Some(existing) = existing else {
            continue;
        };
        if existing.expires_at <= now {
            // An answer past its retention, or the claim of a process that
            // died: the key is free. Taken over only if nobody else did.
            let taken = Entity::update_many()
                .set(fresh)
                .filter(Column::Id.eq(existing.id))
                .filter(Column::ClaimToken.eq(existing.claim_token))
                .exec(db)
                .await?;
            if taken.rows_affected == 1 {
                return Ok(Outcome::Claimed(token));
            }
            continue;
        }
        if existing.request_hash != hash {
            return Ok(Outcome::Reused);
        }
        return Ok(match existing.response_status {
            Some(_) => Outcome::Replay(existing),
            None => Outcome::InFlight,
        });
    }
    Ok(Outcome::InFlight)
}

fn replay(row: Model) -> Response {
    tracing::info!(
        original_request_id = row.request_id.as_deref().unwrap_or(""),
        "replaying the stored answer of an idempotency key"
    );
    let status = row
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let answer = Answer {
        status,
        content_type: row
            .response_content_type
            .unwrap_or_else(|| media::GRAPHQL_RESPONSE.into()),
        body: row.response_body.unwrap_or_default(),
        server_fault: false,
        retry_after: false,
    };
    let mut response = answer.into_response();
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The request's key: absent, or 1-255 visible ASCII characters. The draft's
/// structured-field form (`"..."`, with `\"` and `\\` escapes) is unquoted
/// first, so `"abc"` and `abc` are one key.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    const MALFORMED: &str =
        "Idempotency-Key must be 1 to 255 visible ASCII characters, such as a UUID";
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("send one Idempotency-Key header, not several");
    }
    let raw = value.as_bytes();
    let key = match raw {
        [b'"', inner @ .., b'"'] => unquote(inner).ok_or(MALFORMED)?,
        _ => raw.to_vec(),
    };
    let visible = key.iter().all(|b| (0x21..=0x7e).contains(b));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !visible {
        return Err(MALFORMED);
    }
    String::from_utf8(key).map(Some).map_err(|_| MALFORMED)
}

/// The inside of a structured-field string: `\"` and `\\` are the only
/// escapes, and a bare `"` cannot occur.
fn unquote(inner: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(&e @ (b'"' | b'\\')) => out.push(e),
                _ => return None,
            },
            b'"' => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// Deletes the keys past their expiry (answers past `idempotency.ttl`,
/// leases of requests that never finished); answers how many.
pub async fn prune(db: &DatabaseConnection) -> AppResult<u64> {
    let res = Entity::delete_many()
        .filter(Column::ExpiresAt.lt(now()))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Prunes expired keys every `ttl` (at most hourly, at least a minute apart),
/// and once at start. Expired keys count as absent before that already.
pub async fn run_pruner(db: DatabaseConnection, ttl: Duration) {
    let every = ttl.clamp(Duration::from_secs(60), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match prune(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned expired idempotency keys"),
            Err(e) => tracing::warn!(error = ?e, "pruning idempotency keys failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &str) -> Result<Option<String>, &'static str> {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(value).unwrap());
        key_of(&headers)
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        assert_eq!(
            key("8e03978e-40d5").unwrap().as_deref(),
            Some("8e03978e-40d5")
        );
        assert_eq!(key(&"k".repeat(255)).unwrap().map(|k| k.len()), Some(255));
        assert!(key(&"k".repeat(256)).is_err());
        assert!(key("").is_err());
        assert!(key("two words").is_err());
        assert!(key("tab\there").is_err());
        assert_eq!(key_of(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn the_drafts_quoted_form_names_the_same_key() {
        assert_eq!(key("\"abc\"").unwrap().as_deref(), Some("abc"));
        assert_eq!(key(r#""a\"b\\c""#).unwrap().as_deref(), Some(r#"a"b\c"#));
        assert!(key("\"\"").is_err(), "an empty string is no key");
        assert!(key(r#""a\nb""#).is_err(), "only \\\" and \\\\ are escapes");
        assert!(key(r#""a"b""#).is_err());
    }

    #[test]
    fn one_key_header_only() {
        let mut headers = HeaderMap::new();
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(key_of(&headers).is_err());
    }
}
