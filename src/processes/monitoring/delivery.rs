//! A delivery of alerts from one integration, handled in one transaction:
//! the keys locked, a retry recognized, each key's state read, the alerts
//! handled round by round, the delivery logged, and the events published
//! after commit.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use entity::{incident, incident_alert, ingest_delivery, integration};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Statement,
    sea_query::{Expr, Func, Query},
};
use sha2::{Digest, Sha256};

use super::alerts::{Counts, IncomingAlert, IngestOutcome, KeyState, alert_key, already_holds};
use super::log::{DeliveryLine, log_delivery};
use super::round::{RoundAlert, Rounds};
use super::routing::{Routing, dedup_labels_of};
use crate::processes::incident::{self as incidents, Raised};
use crate::records::{Store, now};
use crate::{
    config::IngestConfig,
    db::begin_write,
    error::AppResult,
    events::DomainEvent,
    processes::incident::{IncidentChangeKind, IncidentChanged},
};

/// Work done by one delivery, published after commit.
pub(super) enum Announce {
    Raised(Raised),
    Changed(IncidentChangeKind, Box<(incident::Model, incident::Model)>),
    Met(incident::Model, Vec<entity::sla_clock::Model>),
    Repeat(incident::Model),
}

/// Handles a delivery of alerts from `integration` in one transaction:
/// answers after commit, so an acknowledged delivery is stored. A retry of a
/// recently accepted body changes nothing. A unique-index refusal (another
/// process raised the same key first) is retried with fresh state.
pub async fn ingest(
    store: &Store,
    settings: &IngestConfig,
    integration: &integration::Model,
    endpoint: &str,
    body_hash: Option<String>,
    alerts: Vec<IncomingAlert>,
    started: Instant,
) -> AppResult<IngestOutcome> {
    let delivery = Delivery {
        integration,
        routing: Routing::new(integration)?,
        endpoint,
        body_hash,
        alerts,
        started,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match delivery.handle(store, settings).await {
            Err(e) if e.is_unique_violation() && attempt < 3 => {
                tracing::debug!(
                    attempt,
                    "alert key taken concurrently; retrying the delivery"
                );
            }
            other => return other,
        }
    }
}

/// What a sender delivered, with the integration's rules compiled.
struct Delivery<'a> {
    integration: &'a integration::Model,
    routing: Routing,
    endpoint: &'a str,
    body_hash: Option<String>,
    alerts: Vec<IncomingAlert>,
    started: Instant,
}

impl Delivery<'_> {
    /// One attempt at the whole delivery.
    async fn handle(&self, store: &Store, settings: &IngestConfig) -> AppResult<IngestOutcome> {
        let customer = self.integration.organization_id;
        let dedup = dedup_labels_of(self.integration);
        let keyed: Vec<(String, &IncomingAlert)> = self
            .alerts
            .iter()
            .map(|a| (alert_key(&dedup, a), a))
            .collect();
        let at = now();

        let txn = begin_write(&store.db).await?;
        self.lock(&txn, &keyed).await?;
        let earlier = self.earlier(&txn, settings, at).await?;
        let states = load_states(&txn, customer, &keyed).await?;
        // The same body accepted within the retry window is a retry when it
        // would change nothing: every alert already holds in the current
        // state. A body equal to an earlier one after the state moved on
        // (firing, resolved, firing again) is a new notification.
        if let Some(earlier) = earlier
            && keyed
                .iter()
                .all(|(k, a)| already_holds(a.status, states.get(k)))
        {
            let counts = Counts {
                ignored: keyed.len() as i32,
                ..Counts::default()
            };
            let note = format!(
                "a retry of delivery {} (same body): nothing changed",
                earlier.id
            );
            let line = self.line(at, None, counts.clone(), vec![note]);
            let log = log_delivery(&txn, line).await?;
            txn.commit().await?;
            return Ok(IngestOutcome {
                delivery_id: log.id,
                duplicate: true,
                counts,
                alerts: Vec::new(),
            });
        }

        let thresholds = &store.sla_thresholds;
        let mut rounds = Rounds::new(
            &txn,
            self.integration,
            &self.routing,
            at,
            thresholds,
            states,
            keyed.len(),
        );
        for round in split_rounds(&keyed) {
            rounds.run(&round).await?;
        }
        let (outcomes, announce) = rounds.finish();
        let mut counts = Counts::default();
        for o in &outcomes {
            counts.add(o.action);
        }
        let line = self.line(at, self.body_hash.clone(), counts.clone(), Vec::new());
        let log = log_delivery(&txn, line).await?;
        txn.commit().await?;
        publish(store, announce, at);
        Ok(IngestOutcome {
            delivery_id: log.id,
            duplicate: false,
            counts,
            alerts: outcomes,
        })
    }

    /// Locks the delivery's alert keys, and its body to recognize a retry.
    async fn lock<C: ConnectionTrait>(
        &self,
        db: &C,
        keyed: &[(String, &IncomingAlert)],
    ) -> AppResult<()> {
        let customer = self.integration.organization_id;
        let mut locks: Vec<i64> = keyed.iter().map(|(k, _)| lock_key(customer, k)).collect();
        if let Some(h) = &self.body_hash {
            let delivery = format!("delivery:{}:{h}", self.integration.id);
            locks.push(lock_key(customer, &delivery));
        }
        lock_keys(db, locks).await
    }

    /// The latest delivery accepted with the same body within the retry window.
    async fn earlier<C: ConnectionTrait>(
        &self,
        db: &C,
        settings: &IngestConfig,
        at: DateTime<Utc>,
    ) -> AppResult<Option<ingest_delivery::Model>> {
        let Some(h) = &self.body_hash else {
            return Ok(None);
        };
        let since = at - Duration::seconds(settings.retry_window.as_secs() as i64);
        Ok(ingest_delivery::Entity::find()
            .filter(ingest_delivery::Column::IntegrationId.eq(self.integration.id))
            .filter(ingest_delivery::Column::BodyHash.eq(h.as_str()))
            .filter(ingest_delivery::Column::ReceivedAt.gte(since))
            .filter(ingest_delivery::Column::HttpStatus.lt(300))
            .order_by_desc(ingest_delivery::Column::Id)
            .one(db)
            .await?)
    }

    /// The delivery's log line, answered as accepted.
    fn line(
        &self,
        at: DateTime<Utc>,
        body_hash: Option<String>,
        counts: Counts,
        errors: Vec<String>,
    ) -> DeliveryLine<'_> {
        DeliveryLine {
            integration: Some(self.integration),
            endpoint: self.endpoint,
            received_at: at,
            http_status: if self.endpoint == "events" { 202 } else { 200 },
            body_hash,
            alerts: self.alerts.len(),
            counts,
            errors,
            started: self.started,
        }
    }
}

/// A key twice in one delivery is handled in order: each round takes at
/// most one alert per key, so the bulk writes of a round never race with
/// themselves.
fn split_rounds<'k>(keyed: &'k [(String, &'k IncomingAlert)]) -> Vec<Vec<RoundAlert<'k>>> {
    let mut rounds: Vec<Vec<RoundAlert<'k>>> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, (k, a)) in keyed.iter().enumerate() {
        let n = seen.entry(k.as_str()).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push((i, k.as_str(), *a));
        *n += 1;
    }
    rounds
}

/// Publishes a committed delivery's work.
fn publish(store: &Store, announce: Vec<Announce>, at: DateTime<Utc>) {
    for a in announce {
        match a {
            Announce::Raised(r) => incidents::publish_raised(store, &r, at),
            Announce::Changed(kind, pair) => incidents::publish(store, kind, &pair.0, &pair.1),
            Announce::Met(inc, clocks) => incidents::publish_met(store, &inc, clocks, at),
            Announce::Repeat(inc) => {
                store
                    .events
                    .publish(DomainEvent::IncidentChanged(Box::new(IncidentChanged {
                        kind: IncidentChangeKind::Updated,
                        changed_fields: vec!["alert".into()],
                        incident: inc,
                        note: None,
                    })))
            }
        }
    }
}

/// A 64-bit lock key for (tenant, alert key).
fn lock_key(customer_id: i64, key: &str) -> i64 {
    let digest = Sha256::digest(format!("{customer_id}\u{1f}{key}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// On PostgreSQL, takes transaction-scoped advisory locks on the keys in one
/// statement, in a fixed order (no deadlock between deliveries). A
/// concurrent delivery with one of the keys waits until this one commits,
/// then sees its incidents. (SQLite's write transaction already serializes.)
async fn lock_keys<C: ConnectionTrait>(db: &C, mut keys: Vec<i64>) -> AppResult<()> {
    if db.get_database_backend() != DbBackend::Postgres || keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    let list: Vec<String> = keys.iter().map(i64::to_string).collect();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(k) FROM \
         (SELECT unnest(string_to_array($1, ',')::bigint[]) AS k ORDER BY 1) AS keys",
        [list.join(",").into()],
    ))
    .await?;
    Ok(())
}

/// The latest incident of each key and its alert row, in two statements.
async fn load_states<C: ConnectionTrait>(
    db: &C,
    customer: i64,
    keyed: &[(String, &IncomingAlert)],
) -> AppResult<HashMap<String, KeyState>> {
    let mut keys: Vec<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let found = if db.get_database_backend() == DbBackend::Postgres {
        // One backward probe of (customer_id, dedup_key, id) per key, whatever
        // the statistics say: an `IN` list of parameters let the planner
        // filter every incident of the customer against the list instead,
        // so each delivery cost more as incidents accumulated.
        incident::Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT i.* FROM unnest($2::text[]) AS k(key) \
                 CROSS JOIN LATERAL (SELECT * FROM incidents \
                 WHERE customer_id = $1 AND dedup_key = k.key ORDER BY id DESC LIMIT 1) AS i",
                [
                    customer.into(),
                    keys.iter()
                        .map(|k| (*k).to_owned())
                        .collect::<Vec<String>>()
                        .into(),
                ],
            ))
            .all(db)
            .await?
    } else {
        let latest = Query::select()
            .expr(Func::max(Expr::col(incident::Column::Id)))
            .from(incident::Entity)
            .and_where(incident::Column::CustomerId.eq(customer))
            .and_where(incident::Column::DedupKey.is_in(keys.iter().copied()))
            .group_by_col(incident::Column::DedupKey)
            .to_owned();
        incident::Entity::find()
            .filter(incident::Column::Id.in_subquery(latest))
            .all(db)
            .await?
    };
    let alerts = if found.is_empty() {
        Vec::new()
    } else {
        incident_alert::Entity::find()
            .filter(incident_alert::Column::IncidentId.is_in(found.iter().map(|i| i.id)))
            .all(db)
            .await?
    };
    let mut out = HashMap::new();
    for inc in found {
        let alert = alerts.iter().find(|a| a.incident_id == inc.id).cloned();
        if let Some(k) = inc.dedup_key.clone() {
            out.insert(
                k,
                KeyState {
                    incident: inc,
                    alert,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use entity::enums::AlertStatus;

    use super::*;

    fn alert() -> IncomingAlert {
        IncomingAlert {
            status: AlertStatus::Firing,
            key: None,
            summary: None,
            description: None,
            severity: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            starts_at: None,
            ends_at: None,
            source_url: None,
        }
    }

    #[test]
    fn a_key_repeated_in_a_delivery_goes_to_the_next_round_in_order() {
        let a = alert();
        let keyed: Vec<(String, &IncomingAlert)> = ["a", "b", "a", "a", "c", "b"]
            .iter()
            .map(|k| ((*k).to_owned(), &a))
            .collect();
        let rounds: Vec<Vec<(usize, &str)>> = split_rounds(&keyed)
            .into_iter()
            .map(|r| r.into_iter().map(|(i, k, _)| (i, k)).collect())
            .collect();
        assert_eq!(
            rounds,
            vec![
                vec![(0, "a"), (1, "b"), (4, "c")],
                vec![(2, "a"), (5, "b")],
                vec![(3, "a")],
            ]
        );
        assert!(split_rounds(&[]).is_empty());
    }

    #[test]
    fn lock_keys_differ_by_tenant_and_key() {
        assert_eq!(lock_key(1, "k"), lock_key(1, "k"));
        assert_ne!(lock_key(1, "k"), lock_key(2, "k"));
        assert_ne!(lock_key(1, "k"), lock_key(1, "l"));
    }
}
