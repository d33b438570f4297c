//! Impact analysis: what goes down with a CI (downstream) or what it depends on
//! (upstream), walked in the database, with redundancy groups, the services and
//! the customers reached.

use std::collections::{HashMap, HashSet, VecDeque};

use entity::{
    configuration_item, enums::OrganizationKind, organization, service, service_subscription,
};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    Statement,
};

use super::cis::find_ci;
use crate::processes::catalogue;
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
};

/// Impact analysis depth: the default and the ceiling.
pub const DEFAULT_IMPACT_DEPTH: i32 = 10;
pub const MAX_IMPACT_DEPTH: i32 = 50;

/// Which way impact analysis walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImpactDirection {
    /// Everything that depends on the CI, transitively: what goes down when it does.
    Downstream,
    /// Everything the CI depends on, transitively: what could have caused its failure.
    Upstream,
}

#[derive(Debug, Clone)]
pub struct ImpactedCi {
    pub ci_id: i64,
    pub depth: i32,
    /// CI ids from the root to this CI, both included.
    pub path: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct ImpactedService {
    pub service_id: i64,
    /// The smallest depth of the service's CIs that were reached.
    pub depth: i32,
    /// The reached CI of the service at that depth.
    pub via_ci_id: i64,
}

#[derive(Debug, Clone)]
pub struct Impact {
    pub root: configuration_item::Model,
    pub direction: ImpactDirection,
    pub max_depth: i32,
    pub consider_redundancy: bool,
    /// Ordered by depth, then id; the root comes first at depth 0.
    pub cis: Vec<ImpactedCi>,
    /// Ordered by depth, then id.
    pub services: Vec<ImpactedService>,
    /// Customer organizations affected: subscribers of the services, and the
    /// owners of reached CIs that are customers. Ordered by id.
    pub customer_ids: Vec<i64>,
}

#[derive(Debug, FromQueryResult)]
struct ImpactRow {
    /// 0: a reached CI (a = ci, b = min depth, d = tenant); 1: a service link
    /// (a = service, b = ci); 2: an edge into a reached CI, in walking direction
    /// (a = from, b = to, c = 1 when redundant, tag = kind).
    row_kind: i32,
    a: i64,
    b: i64,
    c: Option<i64>,
    d: Option<i64>,
    tag: Option<String>,
}

/// The one statement of impact analysis. The recursive CTE walks the
/// relationship index from the root; it terminates on cycles because `UNION`
/// keeps a `(ci, depth)` pair once and the depth is bounded, so each CI is
/// expanded at most once per depth: no path strings, whose number explodes on
/// dense graphs. The same statement answers the service links of the reached
/// CIs and, when paths or redundancy are wanted, the edges into them, from
/// which the paths (one shortest per CI) are rebuilt without another round trip.
fn impact_sql(
    backend: DbBackend,
    direction: ImpactDirection,
    with_edges: bool,
    with_kinds: bool,
) -> String {
    let (from, to) = match direction {
        ImpactDirection::Downstream => ("dependency_id", "dependent_id"),
        ImpactDirection::Upstream => ("dependent_id", "dependency_id"),
    };
    let (root, max, org) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?1", "?2", "?3"),
    };
    let mut sql = format!(
        "WITH RECURSIVE walk(ci_id, depth, org) AS ( \
           SELECT CAST({root} AS BIGINT), 0, CAST({org} AS BIGINT) \
           UNION \
           SELECT r.{to}, w.depth + 1, r.organization_id FROM walk w \
           JOIN ci_relationships r ON r.{from} = w.ci_id \
           WHERE w.depth < {max} \
         ), \
         reached AS (SELECT ci_id, MIN(depth) AS depth, MIN(org) AS org FROM walk GROUP BY ci_id) \
         SELECT 0 AS row_kind, ci_id AS a, CAST(depth AS BIGINT) AS b, CAST(NULL AS BIGINT) AS c, \
                org AS d, CAST(NULL AS VARCHAR(16)) AS tag FROM reached \
         UNION ALL \
         SELECT 1, s.service_id, s.ci_id, NULL, NULL, NULL \
         FROM service_configuration_items s JOIN reached c ON c.ci_id = s.ci_id"
    );
    if with_edges {
        // For paths alone the walk index covers the columns (no table reads);
        // redundancy needs each edge's type and flag.
        let (flag, kind) = if with_kinds {
            (
                "CAST(CASE WHEN r.redundant THEN 1 ELSE 0 END AS BIGINT)",
                "r.kind",
            )
        } else {
            ("NULL", "NULL")
        };
        sql.push_str(&format!(
            " UNION ALL \
             SELECT 2, r.{from}, r.{to}, {flag}, NULL, {kind} \
             FROM reached c JOIN ci_relationships r ON r.{to} = c.ci_id"
        ));
    }
    sql
}

/// Impact analysis from a CI, in the database. Only CIs, services and customers
/// the caller may see are answered. `with_paths` asks for one shortest path per
/// CI (it costs the edges into the reached CIs).
///
/// With `consider_redundancy` (downstream only), a CI reached only through
/// redundant edges stays up while any other member of its redundancy group
/// survives. A redundancy group is the set of redundant edges of one dependent
/// CI and one relationship type; the dependent goes down when every member of
/// the group is down (within `max_depth`), or when any non-redundant dependency is.
pub async fn impact(
    db: &DatabaseConnection,
    p: &Principal,
    root_id: i64,
    direction: ImpactDirection,
    max_depth: Option<i32>,
    consider_redundancy: bool,
    with_paths: bool,
) -> AppResult<Impact> {
    let max_depth = max_depth.unwrap_or(DEFAULT_IMPACT_DEPTH);
    if !(1..=MAX_IMPACT_DEPTH).contains(&max_depth) {
        return Err(AppError::invalid_field(
            "maxDepth",
            format!("maxDepth must be between 1 and {MAX_IMPACT_DEPTH}"),
        ));
    }
    let root = find_ci(db, p, root_id).await?;
    let redundancy = consider_redundancy && direction == ImpactDirection::Downstream;
    let with_edges = redundancy || with_paths;
    let backend = db.get_database_backend();
    let stmt = Statement::from_sql_and_values(
        backend,
        impact_sql(backend, direction, with_edges, redundancy),
        [
            root.id.into(),
            max_depth.into(),
            root.organization_id.into(),
        ],
    );
    let rows = ImpactRow::find_by_statement(stmt).all(db).await?;

    let mut reached: HashMap<i64, (i32, Option<i64>, i64)> = HashMap::new();
    let mut links: Vec<(i64, i64)> = Vec::new();
    let mut edges: Vec<(i64, i64, bool, String)> = Vec::new();
    for r in rows {
        match r.row_kind {
            0 => {
                reached.insert(r.a, (r.b as i32, None, r.d.unwrap_or_default()));
            }
            1 => links.push((r.a, r.b)),
            _ => edges.push((r.a, r.b, r.c == Some(1), r.tag.unwrap_or_default())),
        }
    }
    // depth and parent of every CI that goes down.
    let down: HashMap<i64, (i32, Option<i64>)> = if with_edges {
        walk_edges(root.id, max_depth, &reached, &edges, redundancy)
    } else {
        reached
            .iter()
            .map(|(id, (depth, parent, _))| (*id, (*depth, *parent)))
            .collect()
    };
    let visible = |id: &i64| reached.get(id).is_some_and(|(_, _, org)| p.can_see(*org));
    let mut cis: Vec<ImpactedCi> = down
        .iter()
        .filter(|(id, _)| visible(id))
        .map(|(id, (depth, _))| {
            let mut path = vec![*id];
            let mut at = *id;
            while let Some((_, Some(parent))) = down.get(&at).filter(|_| with_paths) {
                if path.len() > MAX_IMPACT_DEPTH as usize + 1 {
                    break;
                }
                path.push(*parent);
                at = *parent;
            }
            path.reverse();
            if !with_paths {
                path.clear();
            }
            ImpactedCi {
                ci_id: *id,
                depth: *depth,
                path,
            }
        })
        .collect();
    cis.sort_by_key(|c| (c.depth, c.ci_id));

    let mut best: HashMap<i64, (i32, i64)> = HashMap::new();
    for (service_id, ci_id) in links {
        if !visible(&ci_id) {
            continue;
        }
        if let Some((depth, _)) = down.get(&ci_id) {
            let entry = best.entry(service_id).or_insert((*depth, ci_id));
            if (*depth, ci_id) < *entry {
                *entry = (*depth, ci_id);
            }
        }
    }
    let visible_services: HashSet<i64> = if best.is_empty() {
        HashSet::new()
    } else {
        service::Entity::find()
            .filter(service::Column::Id.is_in(best.keys().copied()))
            .filter(catalogue::service_visibility(p))
            .all(db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    let mut services: Vec<ImpactedService> = best
        .into_iter()
        .filter(|(id, _)| visible_services.contains(id))
        .map(|(service_id, (depth, via))| ImpactedService {
            service_id,
            depth,
            via_ci_id: via,
        })
        .collect();
    services.sort_by_key(|s| (s.depth, s.service_id));

    let mut candidates: HashSet<i64> = cis
        .iter()
        .filter_map(|c| reached.get(&c.ci_id).map(|(_, _, org)| *org))
        .collect();
    if !services.is_empty() {
        let subscribers: Vec<service_subscription::Model> = service_subscription::Entity::find()
            .filter(
                service_subscription::Column::ServiceId
                    .is_in(services.iter().map(|s| s.service_id)),
            )
            .all(db)
            .await?;
        candidates.extend(subscribers.into_iter().map(|s| s.customer_id));
    }
    candidates.retain(|org| p.can_see(*org));
    let mut customer_ids: Vec<i64> = if candidates.is_empty() {
        Vec::new()
    } else {
        organization::Entity::find()
            .filter(organization::Column::Id.is_in(candidates))
            .filter(organization::Column::Kind.eq(OrganizationKind::Customer))
            .all(db)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    customer_ids.sort_unstable();
    Ok(Impact {
        root,
        direction,
        max_depth,
        consider_redundancy: redundancy,
        cis,
        services,
        customer_ids,
    })
}

/// The walk again, breadth first over the edges the statement returned (in
/// walking direction), for one shortest path per CI and, downstream, for
/// redundancy groups: depths are the levels at which CIs go down.
fn walk_edges(
    root: i64,
    max_depth: i32,
    reached: &HashMap<i64, (i32, Option<i64>, i64)>,
    edges: &[(i64, i64, bool, String)],
    redundancy: bool,
) -> HashMap<i64, (i32, Option<i64>)> {
    let mut remaining: HashMap<(i64, &str), usize> = HashMap::new();
    let mut out_edges: HashMap<i64, Vec<(i64, bool, &str)>> = HashMap::new();
    for (from, to, redundant, kind) in edges {
        let redundant = *redundant && redundancy;
        if redundant {
            *remaining.entry((*to, kind.as_str())).or_default() += 1;
        }
        if reached.contains_key(from) {
            out_edges
                .entry(*from)
                .or_default()
                .push((*to, redundant, kind.as_str()));
        }
    }
    for list in out_edges.values_mut() {
        // Deterministic parents: the lowest id first.
        list.sort_unstable_by_key(|(to, ..)| *to);
    }
    let mut down: HashMap<i64, (i32, Option<i64>)> = HashMap::new();
    down.insert(root, (0, None));
    let mut queue = VecDeque::from([(root, 0)]);
    while let Some((u, depth)) = queue.pop_front() {
        if depth >= max_depth {
            continue;
        }
        for (v, redundant, kind) in out_edges.get(&u).map(Vec::as_slice).unwrap_or_default() {
            if down.contains_key(v) {
                continue;
            }
            let falls = if *redundant {
                let left = remaining.entry((*v, *kind)).or_insert(1);
                *left = left.saturating_sub(1);
                *left == 0
            } else {
                true
            };
            if falls {
                down.insert(*v, (depth + 1, Some(u)));
                queue.push_back((*v, depth + 1));
            }
        }
    }
    down
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every CI in the edges, reached (the statement's answer before redundancy).
    fn reached(edges: &[(i64, i64, bool, String)]) -> HashMap<i64, (i32, Option<i64>, i64)> {
        edges
            .iter()
            .flat_map(|(a, b, ..)| [*a, *b])
            .map(|id| (id, (0, None, 1)))
            .collect()
    }

    /// Edges in walking direction: `from` goes down, so `to` may.
    fn edge(from: i64, to: i64, redundant: bool) -> (i64, i64, bool, String) {
        (from, to, redundant, "runs_on".to_owned())
    }

    fn walk(
        edges: &[(i64, i64, bool, String)],
        max_depth: i32,
        redundancy: bool,
    ) -> Vec<(i64, i32, Option<i64>)> {
        let mut out: Vec<_> = walk_edges(1, max_depth, &reached(edges), edges, redundancy)
            .into_iter()
            .map(|(id, (depth, parent))| (id, depth, parent))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn depths_are_shortest_and_parents_the_lowest_id() {
        // 1 -> 2 -> 4, 1 -> 3 -> 4, 4 -> 5, and a cycle 5 -> 1.
        let edges = [
            edge(1, 3, false),
            edge(1, 2, false),
            edge(2, 4, false),
            edge(3, 4, false),
            edge(4, 5, false),
            edge(5, 1, false),
        ];
        assert_eq!(
            walk(&edges, 10, false),
            [
                (1, 0, None),
                (2, 1, Some(1)),
                (3, 1, Some(1)),
                (4, 2, Some(2)),
                (5, 3, Some(4)),
            ]
        );
    }

    #[test]
    fn the_walk_stops_at_max_depth() {
        let edges = [edge(1, 2, false), edge(2, 3, false), edge(3, 4, false)];
        assert_eq!(
            walk(&edges, 2, false),
            [(1, 0, None), (2, 1, Some(1)), (3, 2, Some(2))]
        );
    }

    #[test]
    fn a_redundant_member_down_leaves_its_dependent_up() {
        // 2 and 3 are redundant members serving 4; 1 takes down only 2.
        let edges = [edge(1, 2, false), edge(2, 4, true), edge(3, 4, true)];
        assert_eq!(walk(&edges, 10, true), [(1, 0, None), (2, 1, Some(1))]);
        // Without redundancy the dependent goes down with either member.
        assert_eq!(
            walk(&edges, 10, false),
            [(1, 0, None), (2, 1, Some(1)), (4, 2, Some(2))]
        );
    }

    #[test]
    fn a_dependent_goes_down_when_every_redundant_member_does() {
        // 1 takes down both members 2 and 3 of 4's group.
        let edges = [
            edge(1, 2, false),
            edge(1, 3, false),
            edge(2, 4, true),
            edge(3, 4, true),
        ];
        assert_eq!(
            walk(&edges, 10, true),
            [
                (1, 0, None),
                (2, 1, Some(1)),
                (3, 1, Some(1)),
                (4, 2, Some(3))
            ]
        );
    }

    #[test]
    fn a_non_redundant_dependency_takes_the_dependent_down_alone() {
        let edges = [edge(1, 2, false), edge(2, 4, false), edge(3, 4, true)];
        assert_eq!(
            walk(&edges, 10, true),
            [(1, 0, None), (2, 1, Some(1)), (4, 2, Some(2))]
        );
    }

    #[test]
    fn downstream_walks_from_dependency_to_dependent() {
        let down = impact_sql(DbBackend::Sqlite, ImpactDirection::Downstream, false, false);
        assert!(down.contains("r.dependency_id = w.ci_id"), "{down}");
        assert!(!down.contains("SELECT 2"));
        let up = impact_sql(DbBackend::Postgres, ImpactDirection::Upstream, true, true);
        assert!(
            up.contains("r.dependent_id = w.ci_id") && up.contains("$2"),
            "{up}"
        );
        assert!(up.contains("SELECT 2") && up.contains("r.kind"));
    }
}
