//! The breach worker: fires a warning event when a running clock crosses each
//! configured threshold and a breach event when it passes its target, exactly
//! once per clock and threshold even with several server processes on one
//! database. Each event is claimed with a conditional UPDATE (`... WHERE
//! warning_fired < threshold` / `WHERE breach_fired_at IS NULL`); only the
//! process whose UPDATE changed the row publishes it. A clock's claims and
//! their audit events commit together, and the events are published right
//! after the commit, with nothing awaited in between; at shutdown the worker
//! stops between two clocks, never between a claim and its event.
//!
//! A pass reads only the clocks that are due: `next_check_at <= now`, through
//! a partial index. Every change of a clock stores the instant of its next
//! event (see [`clock::next_check`]); the worker stores the following one
//! with each claim, or in bulk for clocks it looked at with nothing to fire
//! (their calendar changed). So a pass costs what is due, not what is running.
//!
//! The instants follow `sla.warning_thresholds`: all processes on one
//! database are expected to share them (a worker started with other
//! thresholds recomputes every running clock once, see
//! [`reschedule_for_thresholds`]).

use super::events::{SlaClockEvent, SlaEventKind};
use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{business_calendar, incident, sla, sla_clock, sla_worker_setting};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value, sea_query::Expr,
};
use tokio::sync::watch;

use super::{calendar::Calendar, calendar_cached, clock};
use crate::{
    auth::Principal,
    db::begin_write,
    error::AppResult,
    events::DomainEvent,
    records::{Store, audit, now},
};

/// Clocks looked at per page.
const BATCH: u64 = 1000;

/// The gauges the worker sets (served by `/metrics` when metrics are on; a
/// no-op otherwise): how long the oldest clock due had waited when a pass
/// began, and when the last pass finished.
pub const LAG_METRIC: &str = "servicegraph_sla_worker_lag_seconds";
pub const LAST_PASS_METRIC: &str = "servicegraph_sla_worker_last_pass_timestamp_seconds";

/// Runs passes every `interval` until `stop` turns true (or its sender is
/// dropped); a pass under way stops after the clock it is at. First makes
/// sure the stored instants were computed with this process's thresholds.
pub async fn run(
    store: Store,
    interval: Duration,
    actor: Principal,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settled = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        if !settled {
            match reschedule_for_thresholds(&store, now()).await {
                Ok(_) => settled = true,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "SLA worker could not check its thresholds; retrying next tick");
                    continue;
                }
            }
        }
        match pass(&store, &actor, now(), &stop).await {
            Ok(_) => {
                metrics::gauge!(LAST_PASS_METRIC).set(now().timestamp_millis() as f64 / 1000.0);
            }
            Err(e) => {
                tracing::warn!(error = %e.message(), "SLA worker pass failed; retrying next tick")
            }
        }
    }
}

/// The SLA and calendar of each clock, read once per pass: the version read
/// at the pass's first clock of each calendar; the tabulated calendars
/// themselves come from the shared cache.
#[derive(Default)]
struct Calendars {
    agreements: HashMap<i64, Option<i64>>,
    calendars: HashMap<i64, Option<Arc<Calendar>>>,
}

impl Calendars {
    async fn of<C: ConnectionTrait>(
        &mut self,
        db: &C,
        sla_id: i64,
    ) -> AppResult<Option<Arc<Calendar>>> {
        use std::collections::hash_map::Entry;
        if let Entry::Vacant(slot) = self.agreements.entry(sla_id) {
            let a = sla::Entity::find_by_id(sla_id).one(db).await?;
            slot.insert(a.map(|a| a.calendar_id));
        }
        let Some(calendar_id) = self.agreements[&sla_id] else {
            return Ok(None);
        };
        if let Entry::Vacant(slot) = self.calendars.entry(calendar_id) {
            let row = business_calendar::Entity::find_by_id(calendar_id)
                .one(db)
                .await?;
            slot.insert(row.as_ref().map(calendar_cached).transpose()?);
        }
        Ok(self.calendars[&calendar_id].clone())
    }
}

/// One pass over the clocks due at `at`, claims audited as `actor`'s; returns
/// how many events this process claimed. Returns early once `stop` is true.
pub async fn pass(
    store: &Store,
    actor: &Principal,
    at: DateTime<Utc>,
    stop: &watch::Receiver<bool>,
) -> AppResult<usize> {
    let db = &store.db;
    let thresholds: &[u32] = &store.sla_thresholds;
    let mut fired = 0;
    let mut calendars = Calendars::default();
    // Keyset over (next_check_at, id): a clock left due (its claim lost to a
    // concurrent change) is read again next pass, not again in this one.
    let mut after: Option<(DateTime<Utc>, i64)> = None;
    loop {
        let mut q = sla_clock::Entity::find().filter(sla_clock::Column::NextCheckAt.lte(at));
        if let Some((t, id)) = after {
            q = q.filter(
                Condition::any()
                    .add(sla_clock::Column::NextCheckAt.gt(t))
                    .add(
                        Condition::all()
                            .add(sla_clock::Column::NextCheckAt.eq(t))
                            .add(sla_clock::Column::Id.gt(id)),
                    ),
            );
        }
        let clocks = q
            .order_by_asc(sla_clock::Column::NextCheckAt)
            .order_by_asc(sla_clock::Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        if after.is_none() {
            // The lag: how long the oldest clock due has waited for this pass.
            let oldest = clocks.first().and_then(|c| c.next_check_at);
            let lag = oldest.map_or(0.0, |t| (at - t).num_milliseconds().max(0) as f64 / 1000.0);
            metrics::gauge!(LAG_METRIC).set(lag);
        }
        let Some(last) = clocks.last() else { break };
        after = last.next_check_at.map(|t| (t, last.id));
        let done = (clocks.len() as u64) < BATCH;
        let mut moves: Vec<Move> = Vec::new();
        for c in clocks {
            if *stop.borrow() {
                move_checks(db, &moves).await?;
                return Ok(fired);
            }
            let old = c.next_check_at;
            let Some(cal) = calendars.of(db, c.sla_id).await? else {
                moves.push(Move {
                    id: c.id,
                    old,
                    next: None,
                });
                continue;
            };
            let running =
                c.stopped_at.is_none() && c.paused_since.is_none() && c.breach_fired_at.is_none();
            let mut warnings = Vec::new();
            let mut breach = false;
            // The clock as it stands once this pass's events are fired.
            let mut after_firing = c.clone();
            if running {
                let elapsed = clock::elapsed(&cal, &c, at)?;
                for &t in thresholds {
                    if i64::from(c.warning_fired) < i64::from(t)
                        && elapsed * 100 >= c.target_seconds * i64::from(t)
                    {
                        warnings.push(t);
                        after_firing.warning_fired = i32::try_from(t).unwrap_or(i32::MAX);
                    }
                }
                breach = elapsed > c.target_seconds;
                if breach {
                    after_firing.breach_fired_at = Some(at);
                }
            }
            let next = clock::next_check(&cal, &after_firing, thresholds)?
                // Progress: a clock is never due again within the same second.
                .map(|n| n.max(at + chrono::Duration::seconds(1)));
            if warnings.is_empty() && !breach {
                if next != old {
                    moves.push(Move {
                        id: c.id,
                        old,
                        next,
                    });
                }
                continue;
            }
            // Read first: nothing is awaited between a claim's commit and its event.
            let inc = incident::Entity::find_by_id(c.incident_id).one(db).await?;
            let claimed = claim(db, actor, &c, &warnings, breach, at, old, next).await?;
            fired += claimed.len();
            if let Some(inc) = inc {
                for (kind, threshold, clock) in claimed {
                    store
                        .events
                        .publish(DomainEvent::SlaEvent(Box::new(SlaClockEvent {
                            kind,
                            threshold,
                            clock,
                            incident: inc.clone(),
                            at,
                        })));
                }
            }
        }
        move_checks(db, &moves).await?;
        if done {
            break;
        }
    }
    Ok(fired)
}

/// A clock's next check to store in place of `old`, unless a concurrent
/// change already rewrote it.
struct Move {
    id: i64,
    old: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
}

/// Stores the new next checks in one statement (compare-and-set on the
/// value read: a request that changed the clock meanwhile computed its own).
async fn move_checks<C: ConnectionTrait>(db: &C, moves: &[Move]) -> AppResult<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let stmt = match db.get_database_backend() {
        DbBackend::Postgres => {
            // Text arrays, '' for null (as the bulk audit insert does).
            let text = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
            let ids: Vec<i64> = moves.iter().map(|m| m.id).collect();
            let olds: Vec<String> = moves.iter().map(|m| text(m.old)).collect();
            let nexts: Vec<String> = moves.iter().map(|m| text(m.next)).collect();
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE sla_clocks AS c SET next_check_at = CAST(NULLIF(u.next, '') AS timestamptz) \
                 FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, old, next) \
                 WHERE c.id = u.id \
                 AND c.next_check_at IS NOT DISTINCT FROM CAST(NULLIF(u.old, '') AS timestamptz)",
                [ids.into(), olds.into(), nexts.into()],
            )
        }
        backend => {
            // UPDATE .. FROM: SQLite since 3.33. Timestamps are text there,
            // bound in the form they were stored in, so `IS` compares them.
            let rows = vec!["(?, ?, ?)"; moves.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(moves.len() * 3);
            for m in moves {
                values.push(m.id.into());
                values.push(m.old.into());
                values.push(m.next.into());
            }
            Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE sla_clocks SET next_check_at = v.column3 \
                     FROM (VALUES {rows}) AS v \
                     WHERE sla_clocks.id = v.column1 AND sla_clocks.next_check_at IS v.column2"
                ),
                values,
            )
        }
    };
    db.execute_raw(stmt).await?;
    Ok(())
}

/// Sets the next check along with a claim, unless a concurrent change
/// rewrote it since it was read (that change computed its own).
fn next_check_expr(old: Option<DateTime<Utc>>, next: Option<DateTime<Utc>>) -> Expr {
    let col = sla_clock::Column::NextCheckAt;
    let unchanged = match old {
        Some(old) => col.eq(old),
        None => col.is_null(),
    };
    Expr::case(unchanged, Expr::value(next))
        .finally(Expr::col(col))
        .into()
}

/// Claims this pass's events of one clock (its `warnings` and, with
/// `breach`, its breach at `at`) in one transaction, each claim with its
/// audit event; returns those this process claimed, each with the clock as
/// it stood after it. The row is locked (SQLite: the write transaction), so
/// the after-images are computed, not read back.
#[allow(clippy::too_many_arguments)]
async fn claim(
    db: &DatabaseConnection,
    actor: &Principal,
    c: &sla_clock::Model,
    warnings: &[u32],
    breach: bool,
    at: DateTime<Utc>,
    old: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> AppResult<Vec<(SlaEventKind, Option<u32>, sla_clock::Model)>> {
    let txn = begin_write(db).await?;
    let mut q = sla_clock::Entity::find_by_id(c.id);
    if txn.get_database_backend() == DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    let Some(mut before) = q.one(&txn).await? else {
        return Ok(Vec::new());
    };
    let mut claimed = Vec::new();
    let mut after = before.clone();
    if after.next_check_at == old {
        after.next_check_at = next;
    }
    for &t in warnings {
        if claim_warning(&txn, c.id, t, old, next).await? {
            after.warning_fired = i32::try_from(t).unwrap_or(i32::MAX);
            audit::record(&txn, actor, "update", Some(&before), Some(&after)).await?;
            claimed.push((SlaEventKind::Warning, Some(t), after.clone()));
            before = after.clone();
        }
    }
    if breach && claim_breach(&txn, c.id, at, old, next).await? {
        after.breach_fired_at = Some(at);
        audit::record(&txn, actor, "update", Some(&before), Some(&after)).await?;
        claimed.push((SlaEventKind::Breached, None, after));
    }
    txn.commit().await?;
    Ok(claimed)
}

async fn claim_warning<C: ConnectionTrait>(
    db: &C,
    id: i64,
    threshold: u32,
    old: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> AppResult<bool> {
    let t = i32::try_from(threshold).unwrap_or(i32::MAX);
    let res = sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::WarningFired, Expr::value(t))
        .col_expr(sla_clock::Column::NextCheckAt, next_check_expr(old, next))
        .filter(sla_clock::Column::Id.eq(id))
        .filter(sla_clock::Column::WarningFired.lt(t))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

async fn claim_breach<C: ConnectionTrait>(
    db: &C,
    id: i64,
    at: DateTime<Utc>,
    old: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> AppResult<bool> {
    let res = sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::BreachFiredAt, Expr::value(at))
        .col_expr(sla_clock::Column::NextCheckAt, next_check_expr(old, next))
        .filter(sla_clock::Column::Id.eq(id))
        .filter(sla_clock::Column::BreachFiredAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The id of the one settings row.
const SETTINGS_ROW: i32 = 1;

fn thresholds_key(thresholds: &[u32]) -> String {
    thresholds
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// When the thresholds recorded with the stored instants differ from this
/// process's, recomputes the instant of every running clock once (paged by
/// id, writing only those that change), then records the new thresholds.
/// With none recorded yet (a fresh or just-migrated database, whose clocks
/// are due at once anyway), records them. Returns how many clocks moved.
pub async fn reschedule_for_thresholds(store: &Store, at: DateTime<Utc>) -> AppResult<usize> {
    let db = &store.db;
    let thresholds: &[u32] = &store.sla_thresholds;
    let wanted = thresholds_key(thresholds);
    let recorded = sla_worker_setting::Entity::find_by_id(SETTINGS_ROW)
        .one(db)
        .await?;
    let Some(recorded) = recorded else {
        let row = sla_worker_setting::ActiveModel {
            id: Set(SETTINGS_ROW),
            warning_thresholds: Set(wanted),
        };
        // Another process may have recorded them first: theirs stand.
        sla_worker_setting::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec(db)
            .await?;
        return Ok(0);
    };
    if recorded.warning_thresholds == wanted {
        return Ok(0);
    }
    tracing::info!(
        from = %recorded.warning_thresholds,
        to = %wanted,
        "SLA warning thresholds changed: recomputing the next check of every running clock"
    );
    let mut moved = 0;
    let mut calendars = Calendars::default();
    let mut after_id = 0;
    loop {
        let clocks = sla_clock::Entity::find()
            .filter(sla_clock::Column::StoppedAt.is_null())
            .filter(sla_clock::Column::PausedSince.is_null())
            .filter(sla_clock::Column::BreachFiredAt.is_null())
            .filter(sla_clock::Column::Id.gt(after_id))
            .order_by_asc(sla_clock::Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        let Some(last) = clocks.last() else { break };
        after_id = last.id;
        let done = (clocks.len() as u64) < BATCH;
        let mut moves = Vec::new();
        for c in clocks {
            let next = match calendars.of(db, c.sla_id).await? {
                Some(cal) => clock::next_check(&cal, &c, thresholds)?,
                None => None,
            };
            if next != c.next_check_at {
                moves.push(Move {
                    id: c.id,
                    old: c.next_check_at,
                    next,
                });
            }
        }
        moved += moves.len();
        move_checks(db, &moves).await?;
        if done {
            break;
        }
    }
    let mut row: sla_worker_setting::ActiveModel = recorded.into();
    row.warning_thresholds = Set(wanted);
    row.update(db).await?;
    tracing::info!(
        moved,
        elapsed_ms = (now() - at).num_milliseconds(),
        "SLA next checks recomputed"
    );
    Ok(moved)
}
