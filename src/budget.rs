//! What each caller may spend: a token bucket per GraphQL caller (tenant and
//! subject of the principal) and per monitoring integration, holding one
//! window's worth (`budget.graphql_points`, `budget.ingest_alerts`) and
//! refilling steadily over `budget.window`. A GraphQL request is charged its
//! estimated cost (`graphql::cost`) before it runs, an ingest delivery its
//! number of alerts; a request the bucket cannot pay is refused whole (429,
//! `RATE_LIMITED`), nothing executed. Every answer carries the standing in
//! `X-RateLimit-*` headers.
//!
//! The buckets live in this process's memory: N processes behind a load
//! balancer allow up to N times the budget. A bucket that has refilled is
//! forgotten (swept once a window), so memory follows the callers active in
//! the last window or two.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_graphql::{
    BatchRequest, ErrorExtensionValues, Request, ServerError, ServerResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
};
use axum::{
    http::{HeaderName, HeaderValue, header},
    response::Response,
};

use crate::{auth::Principal, config::BudgetConfig, graphql::cost::CostModel};

pub const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub const COST: HeaderName = HeaderName::from_static("x-ratelimit-cost");

/// The budgets of this process; disabled, every charge is admitted unmetered.
pub struct Budget {
    graphql: Option<Limiter<(i64, String)>>,
    ingest: Option<Limiter<i64>>,
    cost: CostModel,
    max_directives: usize,
}

impl Budget {
    /// `max_directives`: documents above it are refused by the engine unparsed,
    /// so they are not parsed here either (and cost 1).
    pub fn new(config: &BudgetConfig, cost: CostModel, max_directives: usize) -> Self {
        let on = config.enabled;
        Self {
            graphql: on.then(|| Limiter::new(config.graphql_points, config.window)),
            ingest: on.then(|| Limiter::new(config.ingest_alerts, config.window)),
            cost,
            max_directives,
        }
    }

    /// Charges a GraphQL request (a batch: the sum of its operations) to its
    /// caller. Leaves each operation's parsed document in the request.
    pub fn admit_graphql(
        &self,
        caller: &Principal,
        batch: &mut BatchRequest,
    ) -> Result<Receipt, Refusal> {
        self.charge_caller(
            caller,
            || {
                batch
                    .iter_mut()
                    .map(|r| self.cost.of_request(r, self.max_directives))
                    .fold(0, u64::saturating_add)
            },
            "request over budget refused",
        )
    }

    /// Charges one operation (a WebSocket's subscribe) to its caller.
    pub fn admit_operation(
        &self,
        caller: &Principal,
        request: &mut Request,
    ) -> Result<Receipt, Refusal> {
        self.charge_caller(
            caller,
            || self.cost.of_request(request, self.max_directives),
            "operation over budget refused",
        )
    }

    /// Charges the request's cost to the caller's bucket, estimated only
    /// when a budget is kept; a refusal is logged as `refused`.
    fn charge_caller(
        &self,
        caller: &Principal,
        cost: impl FnOnce() -> u64,
        refused: &'static str,
    ) -> Result<Receipt, Refusal> {
        let Some(limiter) = &self.graphql else {
            return Ok(Receipt(None));
        };
        let cost = cost();
        let charged = limiter.charge(
            (caller.organization_id, caller.subject.clone()),
            cost,
            Instant::now(),
        );
        if charged.is_err() {
            tracing::info!(organization = caller.organization_id, cost, "{refused}");
        }
        charged
    }

    /// Charges an ingest delivery of `alerts` alerts (at least 1) to its integration.
    pub fn admit_ingest(&self, integration_id: i64, alerts: usize) -> Result<Receipt, Refusal> {
        let Some(limiter) = &self.ingest else {
            return Ok(Receipt(None));
        };
        let charged = limiter.charge(integration_id, alerts.max(1) as u64, Instant::now());
        if charged.is_err() {
            tracing::info!(
                integration = integration_id,
                alerts,
                "delivery over budget refused"
            );
        }
        charged
    }
}

/// A caller's bucket after a charge.
#[derive(Debug, Clone, Copy)]
struct Standing {
    limit: u64,
    remaining: u64,
    /// Seconds until the bucket is full again.
    reset: u64,
    cost: u64,
}

impl Standing {
    fn stamp(&self, response: &mut Response) {
        let headers = response.headers_mut();
        for (name, value) in [
            (LIMIT, self.limit),
            (REMAINING, self.remaining),
            (RESET, self.reset),
            (COST, self.cost),
        ] {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}

/// An admitted charge: its headers go on the answer.
#[must_use]
#[derive(Debug)]
pub struct Receipt(Option<Standing>);

impl Receipt {
    pub fn stamp(&self, mut response: Response) -> Response {
        if let Some(standing) = &self.0 {
            standing.stamp(&mut response);
        }
        response
    }
}

/// A charge the bucket could not pay: nothing may run.
#[derive(Debug)]
pub struct Refusal {
    standing: Standing,
    /// Whole seconds until the bucket holds the cost.
    retry_after: u64,
}

impl Refusal {
    pub fn message(&self) -> String {
        let s = &self.standing;
        format!(
            "rate limit exceeded: this request costs {} of a budget of {}, {} remain; retry in {} s",
            s.cost, s.limit, s.remaining, self.retry_after
        )
    }

    /// The headers of a refusal: the standing and `Retry-After`.
    pub fn stamp(&self, mut response: Response) -> Response {
        self.standing.stamp(&mut response);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
        response
    }

    /// The refusal as a GraphQL error, where there are no headers (WebSocket).
    fn into_server_error(self) -> ServerError {
        let mut err = ServerError::new(self.message(), None);
        let mut extensions = ErrorExtensionValues::default();
        extensions.set("code", "RATE_LIMITED");
        extensions.set("retryAfter", self.retry_after);
        err.extensions = Some(extensions);
        err
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key: `capacity` tokens, refilled at `capacity` per `window`.
struct Limiter<K> {
    capacity: f64,
    per_second: f64,
    window: Duration,
    state: Mutex<(HashMap<K, Bucket>, Instant)>,
}

impl<K: Hash + Eq> Limiter<K> {
    fn new(capacity: u64, window: Duration) -> Self {
        Self {
            capacity: capacity as f64,
            per_second: capacity as f64 / window.as_secs_f64(),
            window,
            state: Mutex::new((HashMap::new(), Instant::now())),
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.capacity)
    }

    /// Takes `cost` from `key`'s bucket, or refuses when it holds less. A cost
    /// above the whole budget takes a full bucket: it waits for one, rather
    /// than never passing.
    fn charge(&self, key: K, cost: u64, now: Instant) -> Result<Receipt, Refusal> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (buckets, swept) = &mut *state;
        if now.saturating_duration_since(*swept) >= self.window {
            buckets.retain(|_, b| self.refilled(b, now) < self.capacity);
            *swept = now;
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        let need = (cost as f64).min(self.capacity);
        let admitted = bucket.tokens >= need;
        if admitted {
            bucket.tokens -= need;
        }
        let standing = Standing {
            limit: self.capacity as u64,
            remaining: bucket.tokens.floor() as u64,
            reset: ((self.capacity - bucket.tokens) / self.per_second).ceil() as u64,
            cost,
        };
        if admitted {
            return Ok(Receipt(Some(standing)));
        }
        let wait = ((need - bucket.tokens) / self.per_second).ceil() as u64;
        Err(Refusal {
            standing,
            retry_after: wait.max(1),
        })
    }
}

/// The caller of a WebSocket, in its session data: each operation it starts
/// is charged by [`ChargeSessionOperations`]. (HTTP requests are charged
/// whole, batch and all, in `app::http`.)
pub struct SessionCaller {
    pub principal: Principal,
    pub budget: Arc<Budget>,
}

/// Charges operations started in a session that holds a [`SessionCaller`].
pub struct ChargeSessionOperations;

impl ExtensionFactory for ChargeSessionOperations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ChargeSessionOperations)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ChargeSessionOperations {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(caller) = ctx.data_opt::<SessionCaller>()
            && let Err(refused) = caller
                .budget
                .admit_operation(&caller.principal, &mut request)
        {
            return Err(refused.into_server_error());
        }
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Limiter;

    #[test]
    fn a_bucket_pays_until_empty_then_refills_over_the_window() {
        let limiter = Limiter::new(100, Duration::from_secs(10));
        let t0 = Instant::now();
        let first = limiter.charge(1, 60, t0).unwrap().0.unwrap();
        assert_eq!((first.limit, first.remaining, first.cost), (100, 40, 60));
        assert_eq!(first.reset, 6, "60 tokens at 10 a second");
        let refused = limiter.charge(1, 60, t0).unwrap_err();
        assert_eq!(refused.standing.remaining, 40);
        assert_eq!(refused.retry_after, 2, "20 tokens missing at 10 a second");
        // Another key has its own bucket.
        assert!(limiter.charge(2, 100, t0).is_ok());
        // Two seconds later the 60 are there.
        assert!(limiter.charge(1, 60, t0 + Duration::from_secs(2)).is_ok());
        // More than the whole budget waits for a full bucket and takes it.
        let t1 = t0 + Duration::from_secs(12);
        assert!(limiter.charge(1, 1000, t1).is_ok());
        assert_eq!(limiter.charge(1, 1000, t1).unwrap_err().retry_after, 10);
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limiter = Limiter::new(100, Duration::from_secs(1));
        let t0 = Instant::now();
        for key in 0..1000 {
            assert!(limiter.charge(key, 1, t0).is_ok());
        }
        assert_eq!(limiter.state.lock().unwrap().0.len(), 1000);
        let later = t0 + Duration::from_secs(5);
        assert!(limiter.charge(0, 100, later).is_ok());
        let buckets = &limiter.state.lock().unwrap().0;
        assert_eq!(buckets.len(), 1, "only the caller just charged is left");
    }
}
