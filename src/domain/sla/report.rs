//! SLA reporting (ISO/IEC 20000-1 9.1): clocks met, breached and in progress,
//! compliance, mean and 90th-percentile business time to respond and to
//! resolve, per service, customer or priority, for clocks started in a period.
//! Computed in the database: one aggregate query and one window query.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::sla_clock;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, Statement, Value, sea_query::Query,
};

use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Service,
    Customer,
    Priority,
}

/// Figures for one kind of clock in one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockStats {
    pub met: i64,
    pub breached: i64,
    pub in_progress: i64,
    /// Business seconds of the stopped clocks.
    pub mean_seconds: Option<f64>,
    /// Nearest-rank 90th percentile of the stopped clocks.
    pub p90_seconds: Option<i64>,
}

impl ClockStats {
    /// Met out of decided (met + breached), in percent; null when none is decided.
    pub fn compliance_percent(&self) -> Option<f64> {
        let decided = self.met + self.breached;
        (decided > 0).then(|| self.met as f64 * 100.0 / decided as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportRow {
    /// The service or customer id, or the priority code (`p1`..`p4`).
    pub key: String,
    pub respond: ClockStats,
    pub resolve: ClockStats,
}

pub fn check_period(from: DateTime<Utc>, to: DateTime<Utc>) -> AppResult<()> {
    if to <= from {
        return Err(AppError::invalid_field(
            "period",
            "period.to must be after period.from",
        ));
    }
    Ok(())
}

/// A breached clock: stopped over its target, or running with its breach fired or its due time past.
pub fn breached_condition(at: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            Condition::all()
                .add(sla_clock::Column::StoppedAt.is_not_null())
                .add(sla_clock::Column::Met.eq(false)),
        )
        .add(
            Condition::all()
                .add(sla_clock::Column::StoppedAt.is_null())
                .add(
                    Condition::any()
                        .add(sla_clock::Column::BreachFiredAt.is_not_null())
                        .add(sla_clock::Column::DueAt.lt(at)),
                ),
        )
}

/// Ids of the incidents with a breached clock started in the period, as a subquery.
pub fn breached_incidents(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    at: DateTime<Utc>,
) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(sla_clock::Column::IncidentId)
        .from(sla_clock::Entity)
        .cond_where(
            Condition::all()
                .add(sla_clock::Column::StartedAt.gte(from))
                .add(sla_clock::Column::StartedAt.lt(to))
                .add(breached_condition(at)),
        )
        .to_owned()
}

const BREACHED_SQL: &str = "((c.stopped_at IS NOT NULL AND c.met = FALSE) OR (c.stopped_at IS NULL AND (c.breach_fired_at IS NOT NULL OR c.due_at < {now})))";

pub async fn sla_report<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: GroupBy,
    at: DateTime<Utc>,
) -> AppResult<Vec<ReportRow>> {
    check_period(from, to)?;
    let backend = db.get_database_backend();
    let ph = |n: usize| {
        if backend == DbBackend::Postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    let key = match group_by {
        GroupBy::Service => "CAST(i.service_id AS TEXT)",
        GroupBy::Customer => "CAST(c.customer_id AS TEXT)",
        GroupBy::Priority => "i.priority",
    };
    // Tenancy: only the caller's organizations (ids are integers, inlined safely).
    let scope = match p.visible_organizations() {
        None => String::new(),
        Some(orgs) => format!(
            " AND c.customer_id IN ({})",
            orgs.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let aggregate = format!(
        "SELECT {key} AS grp, c.kind AS kind, \
         SUM(CASE WHEN c.stopped_at IS NOT NULL AND c.met = TRUE THEN 1 ELSE 0 END) AS met, \
         SUM(CASE WHEN {breached} THEN 1 ELSE 0 END) AS breached, \
         COUNT(*) AS total, \
         CAST(AVG(CASE WHEN c.stopped_at IS NOT NULL THEN c.business_seconds END) AS DOUBLE PRECISION) AS mean_seconds{p90} \
         FROM sla_clocks c JOIN incidents i ON i.id = c.incident_id \
         WHERE c.started_at >= {from} AND c.started_at < {to}{scope} \
         GROUP BY {key}, c.kind",
        breached = BREACHED_SQL.replace("{now}", &ph(1)),
        from = ph(2),
        to = ph(3),
        // PostgreSQL ranks in the same pass; percentile_disc(0.9) is the value
        // at rank ceil(0.9 n), which is what the portable statement below picks.
        p90 = if backend == DbBackend::Postgres {
            ", percentile_disc(0.9) WITHIN GROUP (ORDER BY c.business_seconds) \
             FILTER (WHERE c.stopped_at IS NOT NULL AND c.business_seconds IS NOT NULL) AS p90_seconds"
        } else {
            ""
        },
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            aggregate,
            [Value::from(at), Value::from(from), Value::from(to)],
        ))
        .await?;
    let mut out: BTreeMap<String, ReportRow> = BTreeMap::new();
    for row in rows {
        let grp: Option<String> = row.try_get("", "grp")?;
        let Some(grp) = grp else { continue };
        let kind: String = row.try_get("", "kind")?;
        let met: i64 = row.try_get("", "met")?;
        let breached: i64 = row.try_get("", "breached")?;
        let total: i64 = row.try_get("", "total")?;
        let mean: Option<f64> = row.try_get("", "mean_seconds")?;
        let entry = out.entry(grp.clone()).or_insert_with(|| ReportRow {
            key: grp,
            ..Default::default()
        });
        let stats = stats_of(entry, &kind);
        stats.met = met;
        stats.breached = breached;
        stats.in_progress = total - met - breached;
        stats.mean_seconds = mean;
        if backend == DbBackend::Postgres {
            stats.p90_seconds = row.try_get("", "p90_seconds")?;
        }
    }
    if backend == DbBackend::Postgres {
        return Ok(out.into_values().collect());
    }
    let percentile = format!(
        "SELECT grp, kind, business_seconds FROM (\
         SELECT {key} AS grp, c.kind AS kind, c.business_seconds AS business_seconds, \
         ROW_NUMBER() OVER (PARTITION BY {key}, c.kind ORDER BY c.business_seconds) AS rn, \
         COUNT(*) OVER (PARTITION BY {key}, c.kind) AS cnt \
         FROM sla_clocks c JOIN incidents i ON i.id = c.incident_id \
         WHERE c.stopped_at IS NOT NULL AND c.business_seconds IS NOT NULL \
         AND c.started_at >= {from} AND c.started_at < {to}{scope}\
         ) ranked WHERE rn = (cnt * 9 + 9) / 10",
        from = ph(1),
        to = ph(2),
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            percentile,
            [Value::from(from), Value::from(to)],
        ))
        .await?;
    for row in rows {
        let grp: Option<String> = row.try_get("", "grp")?;
        let Some(grp) = grp else { continue };
        let kind: String = row.try_get("", "kind")?;
        let secs: i64 = row.try_get("", "business_seconds")?;
        if let Some(entry) = out.get_mut(&grp) {
            stats_of(entry, &kind).p90_seconds = Some(secs);
        }
    }
    Ok(out.into_values().collect())
}

fn stats_of<'a>(row: &'a mut ReportRow, kind: &str) -> &'a mut ClockStats {
    if kind == "respond" {
        &mut row.respond
    } else {
        &mut row.resolve
    }
}
