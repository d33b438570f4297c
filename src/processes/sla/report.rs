//! SLA reporting (ISO/IEC 20000-1 9.1): clocks met, breached and in progress,
//! compliance, mean and 90th-percentile business time to respond and to
//! resolve, per service, customer or priority, for clocks started in a period.
//! Computed in the database from the clocks alone (each carries the service,
//! customer and priority of its incident): one aggregate query, and on SQLite
//! one window query for the percentile.

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

/// Ids of the incidents with a breached clock started in the period, as a
/// subquery, within `span` (lowest and highest id, from [`Report`]): the
/// bound lets PostgreSQL walk the clocks by incident from there instead of
/// from the newest incident (the planner does not carry a bound on the
/// incident id from one side of the semi join to the other).
pub fn breached_incidents(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    at: DateTime<Utc>,
    span: (i64, i64),
) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(sla_clock::Column::IncidentId)
        .from(sla_clock::Entity)
        .cond_where(
            Condition::all()
                .add(sla_clock::Column::StartedAt.gte(from))
                .add(sla_clock::Column::StartedAt.lt(to))
                .add(sla_clock::Column::IncidentId.between(span.0, span.1))
                .add(breached_condition(at)),
        )
        .to_owned()
}

const BREACHED_SQL: &str = "((c.stopped_at IS NOT NULL AND c.met = FALSE) OR (c.stopped_at IS NULL AND (c.breach_fired_at IS NOT NULL OR c.due_at < {now})))";

/// The report's groups, and where its breached incidents are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    /// The lowest and highest id of the incidents with a breached clock
    /// started in the period (of the caller's customers); none when there are
    /// none. The breached-incidents list starts its walk there.
    pub breached_span: Option<(i64, i64)>,
}

/// Reads the clocks started in `[from, to)` alone: each carries the service,
/// customer and priority it is grouped by. On PostgreSQL one statement, which
/// also ranks the 90th percentile; on SQLite a second one does.
pub async fn sla_report<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: GroupBy,
    at: DateTime<Utc>,
) -> AppResult<Report> {
    check_period(from, to)?;
    let backend = db.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    let ph = |n: usize| {
        if postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    let key = match group_by {
        GroupBy::Service => "c.service_id",
        GroupBy::Customer => "c.customer_id",
        GroupBy::Priority => "c.priority",
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
    // Grouped by the raw column (an integer sorts and hashes faster than its
    // text), named as text for the caller.
    let aggregate = format!(
        "SELECT CAST(g.grp AS TEXT) AS grp, g.kind AS kind, g.met AS met, g.breached AS breached, \
         g.total AS total, g.mean_seconds AS mean_seconds, \
         g.breached_min AS breached_min, g.breached_max AS breached_max{p90} FROM (\
         SELECT x.grp AS grp, x.kind AS kind, \
         SUM(CASE WHEN x.stopped_at IS NOT NULL AND x.met = TRUE THEN 1 ELSE 0 END) AS met, \
         SUM(x.breached) AS breached, \
         COUNT(*) AS total, \
         CAST(AVG(CASE WHEN x.stopped_at IS NOT NULL THEN x.business_seconds END) AS DOUBLE PRECISION) AS mean_seconds, \
         MIN(CASE WHEN x.breached = 1 THEN x.incident_id END) AS breached_min, \
         MAX(CASE WHEN x.breached = 1 THEN x.incident_id END) AS breached_max{secs} \
         FROM (SELECT {key} AS grp, c.kind AS kind, c.incident_id AS incident_id, \
         c.stopped_at AS stopped_at, c.met AS met, c.business_seconds AS business_seconds, \
         CASE WHEN {breached} THEN 1 ELSE 0 END AS breached \
         FROM sla_clocks c WHERE c.started_at >= {from} AND c.started_at < {to}{scope}) x \
         GROUP BY x.grp, x.kind) g",
        breached = BREACHED_SQL.replace("{now}", &ph(1)),
        from = ph(2),
        to = ph(3),
        // PostgreSQL ranks in the same statement: the groups are hashed (no
        // sort of every clock), each keeps its stopped clocks' seconds, and
        // percentile_disc(0.9) picks the value at rank ceil(0.9 n) of them,
        // which is what the portable statement below picks.
        secs = if postgres {
            ", array_agg(x.business_seconds) \
             FILTER (WHERE x.stopped_at IS NOT NULL AND x.business_seconds IS NOT NULL) AS secs"
        } else {
            ""
        },
        p90 = if postgres {
            ", (SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY s) FROM unnest(g.secs) s) AS p90_seconds"
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
    let mut breached_span: Option<(i64, i64)> = None;
    for row in rows {
        let lo: Option<i64> = row.try_get("", "breached_min")?;
        let hi: Option<i64> = row.try_get("", "breached_max")?;
        if let (Some(lo), Some(hi)) = (lo, hi) {
            breached_span = Some(match breached_span {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            });
        }
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
        if postgres {
            stats.p90_seconds = row.try_get("", "p90_seconds")?;
        }
    }
    if postgres {
        return Ok(Report {
            rows: out.into_values().collect(),
            breached_span,
        });
    }
    let percentile = format!(
        "SELECT CAST(grp AS TEXT) AS grp, kind, business_seconds FROM (\
         SELECT {key} AS grp, c.kind AS kind, c.business_seconds AS business_seconds, \
         ROW_NUMBER() OVER (PARTITION BY {key}, c.kind ORDER BY c.business_seconds) AS rn, \
         COUNT(*) OVER (PARTITION BY {key}, c.kind) AS cnt \
         FROM sla_clocks c \
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
    Ok(Report {
        rows: out.into_values().collect(),
        breached_span,
    })
}

fn stats_of<'a>(row: &'a mut ReportRow, kind: &str) -> &'a mut ClockStats {
    if kind == "respond" {
        &mut row.respond
    } else {
        &mut row.resolve
    }
}
