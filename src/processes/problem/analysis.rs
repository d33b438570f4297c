//! Reads that analyse problems and incidents: the known-error search, trend
//! analysis over incidents no problem covers yet (grouped in the database),
//! and the open problems on given CIs for impact analysis.

use chrono::{DateTime, Utc};
use entity::{enums::ProblemState, incident, incident_affected_ci, problem, problem_affected_ci};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationDef, Select,
    sea_query::{Expr, ExprTrait, Func, Query},
};

use super::store::visible_condition;
use crate::records::{name_contains, scope_to};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

/// Known-error records the caller sees, whose title, symptoms or workaround
/// contain `search` (case-insensitive, on both databases); all of them for a
/// blank search.
pub fn known_errors_query(p: &Principal, search: Option<&str>) -> Select<problem::Entity> {
    let mut q = problem::Entity::find()
        .filter(visible_condition(p))
        .filter(problem::Column::State.eq(ProblemState::KnownError));
    let matches = [
        problem::Column::Title,
        problem::Column::Symptoms,
        problem::Column::Workaround,
    ]
    .into_iter()
    .filter_map(|c| name_contains(c, search))
    .fold(Condition::any(), Condition::add);
    if !matches.is_empty() {
        q = q.filter(matches);
    }
    q
}

/// The open problems (new, under investigation, known error) the caller sees
/// that name one of `ci_ids` as affected: impact analysis lists them. Newest
/// first, at most `limit`, in one statement.
pub async fn open_problems_touching<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    ci_ids: &[i64],
    limit: u64,
) -> AppResult<Vec<problem::Model>> {
    if ci_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(problem::Entity::find()
        .filter(visible_condition(p))
        .filter(problem::Column::State.is_in([
            ProblemState::New,
            ProblemState::UnderInvestigation,
            ProblemState::KnownError,
        ]))
        .filter(
            problem::Column::Id.in_subquery(
                Query::select()
                    .column(problem_affected_ci::Column::ProblemId)
                    .from(problem_affected_ci::Entity)
                    .and_where(problem_affected_ci::Column::CiId.is_in(ci_ids.iter().copied()))
                    .to_owned(),
            ),
        )
        .order_by_desc(problem::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// What a group of incidents has in common.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateKey {
    ConfigurationItem(i64),
    ServiceCategory { service_id: i64, category: String },
    AlertKey(String),
}

/// Incidents no problem covers yet that share a key: a problem to open.
#[derive(Debug, Clone)]
pub struct ProblemCandidate {
    pub key: CandidateKey,
    pub incident_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct Group {
    ci_id: Option<i64>,
    service_id: Option<i64>,
    category: Option<String>,
    dedup_key: Option<String>,
    incident_count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// Most groups answered per kind of key.
pub const MAX_CANDIDATES_PER_KIND: u64 = 100;
/// The longest period trend analysis looks at.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// The incidents of the period the caller sees that no problem covers yet.
fn unlinked(p: &Principal, since: DateTime<Utc>, until: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(scope_to(p, incident::Column::CustomerId))
        .add(
            Expr::col((incident::Entity, incident::Column::CreatedAt))
                .gte(since)
                .and(Expr::col((incident::Entity, incident::Column::CreatedAt)).lt(until)),
        )
        .add(
            Expr::col((incident::Entity, incident::Column::Id)).not_in_subquery(
                Query::select()
                    .column(entity::problem_incident::Column::IncidentId)
                    .from(entity::problem_incident::Entity)
                    .to_owned(),
            ),
        )
}

/// Groups of at least `min_incidents` incidents raised in `[since, until)`,
/// not linked to any problem, that share an affected CI, a service and
/// category, or a monitoring alert key: counted, with first and last seen,
/// by GROUP BY in the database. Largest groups first.
pub async fn problem_candidates<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    min_incidents: i64,
) -> AppResult<Vec<ProblemCandidate>> {
    if since >= until {
        return Err(AppError::invalid_field(
            "until",
            "until must be after since",
        ));
    }
    if until - since > chrono::Duration::days(MAX_PERIOD_DAYS) {
        return Err(AppError::invalid_field(
            "since",
            format!("the period covers at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    if min_incidents < 2 {
        return Err(AppError::invalid_field(
            "minIncidents",
            "a trend needs at least 2 incidents",
        ));
    }
    let id = Expr::col((incident::Entity, incident::Column::Id));
    let created = || Expr::col((incident::Entity, incident::Column::CreatedAt));
    let count = || Func::count_distinct(id.clone());
    let measured = |q: Select<incident::Entity>| {
        q.column_as(Expr::expr(count()), "incident_count")
            .column_as(Expr::expr(Func::min(created())), "first_seen")
            .column_as(Expr::expr(Func::max(created())), "last_seen")
            .filter(unlinked(p, since, until))
            .having(Expr::expr(count()).gte(min_incidents))
            .order_by_desc(Expr::expr(count()))
            .order_by_desc(Expr::expr(Func::max(created())))
            .limit(MAX_CANDIDATES_PER_KIND)
    };
    let to_ci: RelationDef = incident_affected_ci::Entity::belongs_to(incident::Entity)
        .from(incident_affected_ci::Column::IncidentId)
        .to(incident::Column::Id)
        .into();
    let by_ci = measured(
        incident::Entity::find()
            .select_only()
            .join(JoinType::InnerJoin, to_ci.rev())
            .column_as(incident_affected_ci::Column::CiId, "ci_id")
            .column_as(Expr::cust("CAST(NULL AS BIGINT)"), "service_id")
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "category")
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "dedup_key")
            .group_by(incident_affected_ci::Column::CiId),
    );
    let by_service = measured(
        incident::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(NULL AS BIGINT)"), "ci_id")
            .column(incident::Column::ServiceId)
            .column(incident::Column::Category)
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "dedup_key")
            .filter(incident::Column::ServiceId.is_not_null())
            .filter(incident::Column::Category.is_not_null())
            .group_by(incident::Column::ServiceId)
            .group_by(incident::Column::Category),
    );
    let by_alert = measured(
        incident::Entity::find()
            .select_only()
            .column_as(Expr::cust("CAST(NULL AS BIGINT)"), "ci_id")
            .column_as(Expr::cust("CAST(NULL AS BIGINT)"), "service_id")
            .column_as(Expr::cust("CAST(NULL AS TEXT)"), "category")
            .column(incident::Column::DedupKey)
            .filter(incident::Column::DedupKey.is_not_null())
            .group_by(incident::Column::DedupKey),
    );
    let mut out = Vec::new();
    for q in [by_ci, by_service, by_alert] {
        for g in q.into_model::<Group>().all(db).await? {
            let key = match (g.ci_id, g.service_id, g.category, g.dedup_key) {
                (Some(ci), ..) => CandidateKey::ConfigurationItem(ci),
                (None, Some(service_id), Some(category), _) => CandidateKey::ServiceCategory {
                    service_id,
                    category,
                },
                (None, _, _, Some(k)) => CandidateKey::AlertKey(k),
                _ => continue,
            };
            out.push(ProblemCandidate {
                key,
                incident_count: g.incident_count,
                first_seen: g.first_seen,
                last_seen: g.last_seen,
            });
        }
    }
    out.sort_by(|a, b| {
        b.incident_count
            .cmp(&a.incident_count)
            .then(b.last_seen.cmp(&a.last_seen))
    });
    Ok(out)
}

/// The incidents of a candidate group (at most `limit`, newest first), for
/// an agent to link to the problem they open.
pub async fn candidate_incidents<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    key: &CandidateKey,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<incident::Model>> {
    let mut q = incident::Entity::find().filter(unlinked(p, since, until));
    q = match key {
        CandidateKey::ConfigurationItem(ci) => q.filter(
            incident::Column::Id.in_subquery(
                Query::select()
                    .column(incident_affected_ci::Column::IncidentId)
                    .from(incident_affected_ci::Entity)
                    .and_where(incident_affected_ci::Column::CiId.eq(*ci))
                    .to_owned(),
            ),
        ),
        CandidateKey::ServiceCategory {
            service_id,
            category,
        } => q
            .filter(incident::Column::ServiceId.eq(*service_id))
            .filter(incident::Column::Category.eq(category.clone())),
        CandidateKey::AlertKey(k) => q.filter(incident::Column::DedupKey.eq(k.clone())),
    };
    Ok(q.order_by_desc(incident::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
