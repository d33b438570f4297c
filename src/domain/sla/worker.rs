//! The breach worker: fires a warning event when a running clock crosses each
//! configured threshold and a breach event when it passes its target, exactly
//! once per clock and threshold even with several server processes on one
//! database. Each event is claimed with a conditional UPDATE (`... WHERE
//! warning_fired < threshold` / `WHERE breach_fired_at IS NULL`); only the
//! process whose UPDATE changed the row publishes it.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{business_calendar, incident, sla, sla_clock};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use super::{calendar::Calendar, calendar_cached, clock};
use crate::{
    domain::{Store, now},
    error::AppResult,
    events::{DomainEvent, SlaClockEvent, SlaEventKind},
};

/// Running clocks looked at per pass.
const BATCH: u64 = 1000;

/// Runs passes every `interval` until the task is dropped.
pub async fn run(store: Store, thresholds: Vec<u32>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = pass(&store, &thresholds, now()).await {
            tracing::warn!(error = %e.message(), "SLA worker pass failed; retrying next tick");
        }
    }
}

/// One pass over the running clocks; returns how many events this process claimed.
pub async fn pass(store: &Store, thresholds: &[u32], at: DateTime<Utc>) -> AppResult<usize> {
    let db = &store.db;
    let mut fired = 0;
    let mut after_id = 0;
    // Per pass: the version read at the pass's first clock of each calendar;
    // the tabulated calendars themselves come from the shared cache.
    let mut calendars: HashMap<i64, Arc<Calendar>> = HashMap::new();
    let mut agreements: HashMap<i64, sla::Model> = HashMap::new();
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
        for c in clocks {
            if !agreements.contains_key(&c.sla_id) {
                let Some(a) = sla::Entity::find_by_id(c.sla_id).one(db).await? else {
                    continue;
                };
                agreements.insert(a.id, a);
            }
            let calendar_id = agreements[&c.sla_id].calendar_id;
            if let std::collections::hash_map::Entry::Vacant(slot) = calendars.entry(calendar_id) {
                let Some(row) = business_calendar::Entity::find_by_id(calendar_id)
                    .one(db)
                    .await?
                else {
                    continue;
                };
                slot.insert(calendar_cached(&row)?);
            }
            let cal = &calendars[&calendar_id];
            let elapsed = clock::elapsed(cal, &c, at)?;
            for &t in thresholds {
                if i64::from(c.warning_fired) < i64::from(t)
                    && elapsed * 100 >= c.target_seconds * i64::from(t)
                    && claim_warning(db, c.id, t).await?
                {
                    publish(store, &c, SlaEventKind::Warning, Some(t), at).await?;
                    fired += 1;
                }
            }
            if elapsed > c.target_seconds && claim_breach(db, c.id, at).await? {
                publish(store, &c, SlaEventKind::Breached, None, at).await?;
                fired += 1;
            }
        }
        if done {
            break;
        }
    }
    Ok(fired)
}

async fn claim_warning<C: ConnectionTrait>(db: &C, id: i64, threshold: u32) -> AppResult<bool> {
    let t = i32::try_from(threshold).unwrap_or(i32::MAX);
    let res = sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::WarningFired, Expr::value(t))
        .filter(sla_clock::Column::Id.eq(id))
        .filter(sla_clock::Column::WarningFired.lt(t))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

async fn claim_breach<C: ConnectionTrait>(db: &C, id: i64, at: DateTime<Utc>) -> AppResult<bool> {
    let res = sla_clock::Entity::update_many()
        .col_expr(sla_clock::Column::BreachFiredAt, Expr::value(at))
        .filter(sla_clock::Column::Id.eq(id))
        .filter(sla_clock::Column::BreachFiredAt.is_null())
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

async fn publish(
    store: &Store,
    c: &sla_clock::Model,
    kind: SlaEventKind,
    threshold: Option<u32>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let Some(inc) = incident::Entity::find_by_id(c.incident_id)
        .one(&store.db)
        .await?
    else {
        return Ok(());
    };
    let clock = sla_clock::Entity::find_by_id(c.id)
        .one(&store.db)
        .await?
        .unwrap_or_else(|| c.clone());
    store
        .events
        .publish(DomainEvent::SlaEvent(Box::new(SlaClockEvent {
            kind,
            threshold,
            clock,
            incident: inc,
            at,
        })));
    Ok(())
}
