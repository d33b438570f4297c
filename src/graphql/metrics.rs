//! GraphQL operations counted by name and outcome, with their latency, for
//! `/metrics` (see `app::metrics`). An extension, so operations over HTTP and
//! over the WebSocket are counted alike; registered only when metrics are on.
//!
//! Label cardinality stays bounded: the `operation` label is the name the
//! executed document gives the operation (never free text from the request),
//! `anonymous` for an unnamed one, `unknown` when the document could not be
//! parsed or the operation not selected, at most [`MAX_NAME_LEN`] bytes, and
//! only the first [`MAX_OPERATION_NAMES`] distinct names get their own label;
//! later ones are counted as `other`.

use std::{
    collections::HashSet,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
        NextPrepareRequest, NextRequest, NextSubscribe, NextValidation,
    },
    futures_util::stream::{BoxStream, Stream},
    parser::types::{ExecutableDocument, OperationType},
};

/// Operations run, by `operation` and `outcome` (`ok` or the first error's `extensions.code`).
pub const OPERATIONS: &str = "servicegraph_graphql_operations_total";
/// Seconds from receipt to answer, by `operation` (for a subscription: until it started).
pub const DURATION: &str = "servicegraph_graphql_operation_duration_seconds";
/// Subscriptions running now.
pub const SUBSCRIPTIONS: &str = "servicegraph_graphql_subscriptions_active";

/// Distinct operation names with a label of their own; the rest are `other`.
pub const MAX_OPERATION_NAMES: usize = 500;
/// Longer names are cut to this many bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The extension factory for the schema builder.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Recorder(Arc::new(Operation {
            started: Instant::now(),
            state: Mutex::new(State::default()),
        })))
    }
}

struct Recorder(Arc<Operation>);

/// One request's operation, as far as it is known.
struct Operation {
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The operation name the client asked for (checked against the document).
    requested: Option<String>,
    /// The label, once the document is parsed and the operation selected.
    label: Option<String>,
    subscription: bool,
    /// Counted already (each operation is counted once).
    recorded: bool,
    /// A running subscription, counted in [`SUBSCRIPTIONS`] until its stream ends.
    running: bool,
}

impl Operation {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the operation once, with the outcome of `errors`.
    fn record(&self, errors: &[ServerError]) {
        let label = {
            let mut state = self.state();
            if state.recorded {
                return;
            }
            state.recorded = true;
            state.label.clone().unwrap_or_else(|| "unknown".into())
        };
        let outcome = outcome(errors);
        metrics::counter!(OPERATIONS, "operation" => label.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(DURATION, "operation" => label)
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if self.state().running {
            metrics::gauge!(SUBSCRIPTIONS).decrement(1.0);
        }
    }
}

/// `ok`, or the first error's code (errors of the engine itself carry none:
/// they are the caller's input, `VALIDATION`, as the HTTP answer says).
fn outcome(errors: &[ServerError]) -> String {
    let Some(first) = errors.first() else {
        return "ok".into();
    };
    let code = crate::error::error_code(first).unwrap_or("VALIDATION");
    let plain = !code.is_empty()
        && code.len() <= 32
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if plain { code } else { "OTHER" }.to_owned()
}

/// The label of an operation name from a parsed document (a GraphQL name,
/// so already plain ASCII), within the length and count limits.
fn name_label(name: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let name = &name[..name.len().min(MAX_NAME_LEN)];
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if seen.contains(name) {
        return name.to_owned();
    }
    if seen.len() >= MAX_OPERATION_NAMES {
        return "other".into();
    }
    seen.insert(name.to_owned());
    name.to_owned()
}

#[async_graphql::async_trait::async_trait]
impl Extension for Recorder {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        self.0.record(&response.errors);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        Box::pin(Counted {
            inner: next.run(ctx, stream),
            operation: self.0.clone(),
        })
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        self.0.state().requested = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut state = self.0.state();
        let selected = super::limits::selected_operation(&document, state.requested.as_deref());
        if let Some((name, op)) = selected {
            state.label = Some(name.map_or_else(|| "anonymous".into(), name_label));
            state.subscription = op.node.ty == OperationType::Subscription;
        }
        drop(state);
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await;
        // A valid subscription counts once it starts; its events are not operations.
        let started = result.is_ok() && {
            let mut state = self.0.state();
            let start = state.subscription && !state.running;
            state.running |= start;
            start
        };
        if started {
            metrics::gauge!(SUBSCRIPTIONS).increment(1.0);
            self.0.record(&[]);
        }
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        self.0.record(&response.errors);
        response
    }
}

/// A WebSocket operation's answers: a failure before it ran (its first and
/// only answer) is counted here; the stream keeps the operation, so a
/// subscription stops counting as running when its stream is dropped.
struct Counted<'s> {
    inner: BoxStream<'s, Response>,
    operation: Arc<Operation>,
}

impl Stream for Counted<'_> {
    type Item = Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Response>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(response)) = &polled {
            self.operation.record(&response.errors);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{ErrorExtensionValues, Pos, ServerError};

    use super::*;

    fn error(code: Option<&str>) -> ServerError {
        let mut e = ServerError::new("refused", Some(Pos::default()));
        if let Some(code) = code {
            let mut ext = ErrorExtensionValues::default();
            ext.set("code", code);
            e.extensions = Some(ext);
        }
        e
    }

    #[test]
    fn the_outcome_is_ok_or_a_plain_error_code() {
        assert_eq!(outcome(&[]), "ok");
        assert_eq!(outcome(&[error(Some("NOT_FOUND"))]), "NOT_FOUND");
        assert_eq!(outcome(&[error(None)]), "VALIDATION");
        assert_eq!(outcome(&[error(Some("free text from somewhere"))]), "OTHER");
    }

    #[test]
    fn operation_names_are_cut_and_capped() {
        let long = "A".repeat(200);
        assert_eq!(name_label(&long).len(), MAX_NAME_LEN);
        for i in 0..MAX_OPERATION_NAMES {
            name_label(&format!("Op{i}"));
        }
        assert_eq!(name_label("OneTooMany"), "other");
        // Names seen before the cap keep their label.
        assert_eq!(name_label("Op1"), "Op1");
    }
}
