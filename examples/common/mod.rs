//! Shared by the benchmark examples (`cmdb_bench`, `incident_bench`, `loadbench`):
//! the data-set generators, which write straight into the database, the
//! benchmark JWT, a GraphQL POST helper and the statement-counting PostgreSQL proxy.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use servicegraph::auth::{Claims, mint_hs256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The HS256 secret every benchmark configures on its server.
pub const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256-0123";

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// An admin token for the provider organization, signed with [`SECRET`].
pub fn admin_token(provider_code: &str, ttl_secs: u64) -> Result<String> {
    let now = servicegraph::dev::unix_now();
    Ok(mint_hs256(
        SECRET,
        &Claims {
            sub: "bench@provider".into(),
            tenant: provider_code.to_owned(),
            roles: vec!["admin".into()],
            orgs: vec![],
            exp: now + ttl_secs,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )?)
}

/// POSTs one GraphQL operation; a response with `errors` is an error. Returns
/// the time to the full answer and the answer.
pub async fn graphql(
    client: &reqwest::Client,
    base_url: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<(Duration, Value)> {
    let t = Instant::now();
    let body: Value = client
        .post(format!("{base_url}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await?;
    if body.get("errors").is_some() {
        return Err(format!("GraphQL errors: {}", body["errors"]).into());
    }
    Ok((t.elapsed(), body))
}

/// Frontend messages seen by the proxy: `Execute` (one statement of the
/// extended protocol, which every query of the server uses) and `Query`
/// (simple protocol: `BEGIN`/`COMMIT` and the pool's liveness pings).
#[derive(Default)]
pub struct WireCounts {
    pub execute: AtomicU64,
    pub simple: AtomicU64,
}

impl WireCounts {
    pub fn read(&self) -> (u64, u64) {
        (
            self.execute.load(Ordering::SeqCst),
            self.simple.load(Ordering::SeqCst),
        )
    }
}

/// A loopback TCP proxy to PostgreSQL that counts the frontend messages.
/// Needs `sslmode=disable` on the proxied URL (it reads the plain protocol).
pub async fn start_proxy(
    upstream: String,
    counts: Arc<WireCounts>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending: Vec<u8> = Vec::new();
                let mut started = false;
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    // Consume whole messages: the startup message has no type byte.
                    loop {
                        let header = if started { 5 } else { 4 };
                        if pending.len() < header {
                            break;
                        }
                        let at = header - 4;
                        let len = u32::from_be_bytes([
                            pending[at],
                            pending[at + 1],
                            pending[at + 2],
                            pending[at + 3],
                        ]) as usize;
                        let total = len + at;
                        if pending.len() < total {
                            break;
                        }
                        if started {
                            match pending[0] {
                                b'E' => counts.execute.fetch_add(1, Ordering::SeqCst),
                                b'Q' => counts.simple.fetch_add(1, Ordering::SeqCst),
                                _ => 0,
                            };
                        }
                        started = true;
                        pending.drain(..total);
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// One integer from PostgreSQL.
pub async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<i64> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT CAST(({sql}) AS BIGINT) AS v"),
        ))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get::<Option<i64>>("", "v")?.unwrap_or_default())
}

/// The incident data set (PostgreSQL): 200 customers with 25 CIs each, 50
/// services, 20 support groups, 200 agents, an SLA per (customer, service)
/// pair, `n` incidents over 365 days with both SLA clocks and one affected CI each.
pub mod incidents {
    use std::time::Instant;

    use sea_orm::{ConnectionTrait, DatabaseConnection};
    use serde_json::{Value, json};

    use super::{Result, graphql, scalar};

    pub const CUSTOMERS: i64 = 200;
    pub const SERVICES: i64 = 50;
    pub const GROUPS: i64 = 20;
    pub const AGENTS: i64 = 200;
    pub const CIS_PER_CUSTOMER: i64 = 25;

    /// Everything, on a migrated database with a server answering at
    /// `base_url` (one calendar and one SLA are created through the API and
    /// copied to every pair). `n` incidents, the newest `open` of them open.
    pub async fn generate(
        db: &DatabaseConnection,
        client: &reqwest::Client,
        base_url: &str,
        token: &str,
        provider_code: &str,
        n: i64,
        open: i64,
    ) -> Result<()> {
        if n < CUSTOMERS * SERVICES || open >= n {
            return Err("--incidents must be at least 10000 and above --open".into());
        }
        let provider = scalar(
            db,
            &format!("SELECT id FROM organizations WHERE code = '{provider_code}'"),
        )
        .await?;
        generate_directory(db, provider).await?;
        let all_days: Vec<Value> = [
            "MONDAY",
            "TUESDAY",
            "WEDNESDAY",
            "THURSDAY",
            "FRIDAY",
            "SATURDAY",
            "SUNDAY",
        ]
        .iter()
        .map(|d| json!({ "weekday": d, "start": "00:00", "end": "24:00" }))
        .collect();
        let post = |q: &'static str, v: Value| graphql(client, base_url, token, q, v);
        let (_, cal) = post(
            "mutation($i: CreateBusinessCalendarInput!) { createBusinessCalendar(input: $i) { id } }",
            json!({ "i": { "name": "24x7", "timeZone": "UTC", "windows": all_days } }),
        )
        .await?;
        let first_customer = scalar(
            db,
            "SELECT MIN(id) FROM organizations WHERE kind = 'customer'",
        )
        .await?;
        let first_service = scalar(db, "SELECT MIN(id) FROM services").await?;
        let targets = json!([
            { "priority": "P1", "respondMinutes": 30, "resolveMinutes": 240 },
            { "priority": "P2", "respondMinutes": 60, "resolveMinutes": 480 },
            { "priority": "P3", "respondMinutes": 240, "resolveMinutes": 1440 },
            { "priority": "P4", "respondMinutes": 480, "resolveMinutes": 4320 },
        ]);
        let (_, sla) = post(
            "mutation($i: CreateSlaInput!) { createSla(input: $i) { id status } }",
            json!({ "i": {
                "name": "Standard",
                "customerId": servicegraph::graphql::ids::encode("Organization", first_customer),
                "serviceId": servicegraph::graphql::ids::encode("Service", first_service),
                "calendarId": cal["data"]["createBusinessCalendar"]["id"],
                "validFrom": "2020-01-01T00:00:00Z",
                "targets": targets,
                "availabilityTarget": 99.9,
                "status": "ACTIVE"
            } }),
        )
        .await?;
        if sla["data"]["createSla"]["status"] != "ACTIVE" {
            return Err(format!("the template SLA is not active: {sla}").into());
        }
        let template = scalar(db, "SELECT MIN(id) FROM slas").await?;
        generate_incidents(db, n, open, provider, template).await
    }

    /// Customers, services, support groups, agents and CIs.
    pub async fn generate_directory(db: &DatabaseConnection, provider: i64) -> Result<()> {
        let stmts = [
            format!(
                "INSERT INTO organizations (code, name, name_key, kind, active, version, created_at, updated_at) \
                 SELECT 'bench-' || g, 'Bench customer ' || g, 'bench customer ' || g, 'customer', TRUE, 1, now(), now() \
                 FROM generate_series(1, {CUSTOMERS}) g"
            ),
            format!(
                "INSERT INTO services (organization_id, name, name_key, status, criticality, version, created_at, updated_at) \
                 SELECT {provider}, 'Bench service ' || g, 'bench service ' || g, 'live', 'medium', 1, now(), now() \
                 FROM generate_series(1, {SERVICES}) g"
            ),
            format!(
                "INSERT INTO support_groups (organization_id, name, name_key, version, created_at, updated_at) \
                 SELECT {provider}, 'Bench group ' || g, 'bench group ' || g, 1, now(), now() \
                 FROM generate_series(1, {GROUPS}) g"
            ),
            format!(
                "INSERT INTO users (organization_id, subject, display_name, active, version, created_at, updated_at) \
                 SELECT {provider}, 'bench-agent-' || g || '@provider', 'Bench agent ' || g, TRUE, 1, now(), now() \
                 FROM generate_series(1, {AGENTS}) g"
            ),
            format!(
                "INSERT INTO configuration_items (organization_id, class_id, name, name_key, status, environment, attributes, version, created_at, updated_at) \
                 SELECT o.id, (SELECT id FROM ci_classes WHERE code = 'application'), o.code || '-app-' || g, o.code || '-app-' || g, \
                        'in_production', 'production', '{{}}'::jsonb, 1, now(), now() \
                 FROM organizations o, generate_series(1, {CIS_PER_CUSTOMER}) g WHERE o.kind = 'customer' ORDER BY o.id, g"
            ),
        ];
        for sql in stmts {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    /// SLAs for every (customer, service) pair, then incidents, clocks, affected CIs.
    pub async fn generate_incidents(
        db: &DatabaseConnection,
        n: i64,
        open: i64,
        provider: i64,
        template: i64,
    ) -> Result<()> {
        let open_from = n - open;
        let per_customer = (n + CUSTOMERS - 1) / CUSTOMERS;
        let stmts = [
            format!(
                "INSERT INTO slas (name, kind, status, customer_id, service_id, calendar_id, valid_from, valid_to, \
                   respond_p1, respond_p2, respond_p3, respond_p4, resolve_p1, resolve_p2, resolve_p3, resolve_p4, \
                   availability_target, version, created_at, updated_at) \
                 SELECT t.name, t.kind, t.status, o.id, s.id, t.calendar_id, t.valid_from, t.valid_to, \
                   t.respond_p1, t.respond_p2, t.respond_p3, t.respond_p4, t.resolve_p1, t.resolve_p2, t.resolve_p3, t.resolve_p4, \
                   t.availability_target, 1, now(), now() \
                 FROM slas t, organizations o, services s \
                 WHERE t.id = {template} AND o.kind = 'customer' AND s.organization_id = {provider} \
                   AND NOT (o.id = t.customer_id AND s.id = t.service_id)"
            ),
            // Incident g: customer g % 200, service (g / 200) % 50, raised evenly over 365 days.
            format!(
                "WITH c AS (SELECT array_agg(id ORDER BY id) a FROM organizations WHERE kind = 'customer'), \
                      s AS (SELECT array_agg(id ORDER BY id) a FROM services WHERE organization_id = {provider}), \
                      gr AS (SELECT array_agg(id ORDER BY id) a FROM support_groups), \
                      u AS (SELECT array_agg(id ORDER BY id) a FROM users WHERE subject LIKE 'bench-agent-%'), \
                      sl AS (SELECT array_agg(id ORDER BY customer_id, service_id) a FROM slas) \
                 INSERT INTO incidents (customer_id, number, title, impact, urgency, priority, major, state, source, \
                   reporter_subject, service_id, assignment_group_id, assignee_id, resolution_code, sla_id, \
                   resolved_at, closed_at, version, created_at, updated_at) \
                 SELECT c.a[1 + x.g % {CUSTOMERS}], 'INC-' || lpad((1 + x.g / {CUSTOMERS})::text, 7, '0'), \
                   'Generated incident ' || x.g, x.imp, x.urg, \
                   CASE x.imp + x.urg WHEN 2 THEN 'p1' WHEN 3 THEN 'p2' WHEN 4 THEN 'p3' ELSE 'p4' END, FALSE, \
                   CASE WHEN x.g >= {open_from} THEN (CASE WHEN (x.g / {GROUPS}) % 2 = 0 THEN 'assigned' ELSE 'in_progress' END) ELSE 'closed' END, \
                   'agent', 'bench@provider', s.a[1 + (x.g / {CUSTOMERS}) % {SERVICES}], gr.a[1 + x.g % {GROUPS}], \
                   u.a[1 + (x.g / 7) % {AGENTS}], \
                   CASE WHEN x.g >= {open_from} THEN NULL ELSE 'fixed' END, \
                   sl.a[1 + (x.g % {CUSTOMERS}) * {SERVICES} + (x.g / {CUSTOMERS}) % {SERVICES}], \
                   CASE WHEN x.g >= {open_from} THEN NULL ELSE x.at + interval '2 days' END, \
                   CASE WHEN x.g >= {open_from} THEN NULL ELSE x.at + interval '3 days' END, \
                   1, x.at, x.at \
                 FROM (SELECT g, 1 + g % 3 AS imp, 1 + (g / 3) % 3 AS urg, \
                              date_trunc('second', now()) - interval '365 days' + (g * (31532400.0 / {n})) * interval '1 second' AS at \
                       FROM generate_series(0, {n} - 1) g) x, c, s, gr, u, sl"
            ),
            // Both clocks; stopped at 10 % .. 150 % of the target (pseudo-random per
            // incident), except the resolve clocks of open incidents, which run and
            // carry the warnings and breaches already fired, as a worker that kept
            // up would have left them; the unbreached ones are due for the worker
            // at once, as the migration that added `next_check_at` left them.
            "INSERT INTO sla_clocks (incident_id, customer_id, service_id, priority, sla_id, kind, target_seconds, started_at, pauses, \
               stopped_at, due_at, met, business_seconds, warning_fired, breach_fired_at, next_check_at, version, created_at, updated_at) \
             SELECT y.id, y.customer_id, y.service_id, y.priority, y.sla_id, y.kind, y.target, y.created_at, '[]'::jsonb, \
               CASE WHEN y.running THEN NULL ELSE y.created_at + y.elapsed * interval '1 second' END, \
               y.created_at + y.target * interval '1 second', \
               CASE WHEN y.running THEN NULL ELSE y.elapsed <= y.target END, \
               CASE WHEN y.running THEN NULL ELSE y.elapsed END, \
               CASE WHEN NOT y.running THEN 0 \
                    WHEN now() >= y.created_at + y.target * interval '0.9 second' THEN 90 \
                    WHEN now() >= y.created_at + y.target * interval '0.75 second' THEN 75 ELSE 0 END, \
               CASE WHEN y.running AND now() >= y.created_at + y.target * interval '1 second' \
                    THEN y.created_at + y.target * interval '1 second' END, \
               CASE WHEN y.running AND now() < y.created_at + y.target * interval '1 second' THEN now() END, \
               1, y.created_at, y.created_at \
             FROM (SELECT i.id, i.customer_id, i.service_id, i.priority, i.sla_id, i.created_at, k.kind, \
                     (k.kind = 'resolve' AND i.state <> 'closed') AS running, \
                     CASE WHEN k.kind = 'respond' THEN \
                       CASE i.priority WHEN 'p1' THEN t.respond_p1 WHEN 'p2' THEN t.respond_p2 WHEN 'p3' THEN t.respond_p3 ELSE t.respond_p4 END \
                     ELSE \
                       CASE i.priority WHEN 'p1' THEN t.resolve_p1 WHEN 'p2' THEN t.resolve_p2 WHEN 'p3' THEN t.resolve_p3 ELSE t.resolve_p4 END \
                     END AS target, \
                     CAST(( (CASE WHEN k.kind = 'respond' THEN \
                       CASE i.priority WHEN 'p1' THEN t.respond_p1 WHEN 'p2' THEN t.respond_p2 WHEN 'p3' THEN t.respond_p3 ELSE t.respond_p4 END \
                     ELSE \
                       CASE i.priority WHEN 'p1' THEN t.resolve_p1 WHEN 'p2' THEN t.resolve_p2 WHEN 'p3' THEN t.resolve_p3 ELSE t.resolve_p4 END \
                     END) * (0.1 + ((i.id * 7919 + length(k.kind) * 104729) % 1000) / 714.0)) AS BIGINT) AS elapsed \
                   FROM incidents i JOIN slas t ON t.id = i.sla_id \
                   CROSS JOIN (VALUES ('respond'), ('resolve')) AS k(kind)) y"
                .to_owned(),
            format!(
                "WITH c AS (SELECT array_agg(id ORDER BY id) a FROM organizations WHERE kind = 'customer'), \
                      ci AS (SELECT array_agg(id ORDER BY organization_id, id) a FROM configuration_items) \
                 INSERT INTO incident_affected_cis (incident_id, ci_id, organization_id, created_at) \
                 SELECT i.id, ci.a[(array_position(c.a, i.customer_id) - 1) * {CIS_PER_CUSTOMER} + 1 + i.id % {CIS_PER_CUSTOMER}], \
                        i.customer_id, i.created_at \
                 FROM incidents i, c, ci"
            ),
            format!(
                "INSERT INTO incident_counters (organization_id, last_value) \
                 SELECT id, {per_customer} FROM organizations WHERE kind = 'customer'"
            ),
            "ANALYZE".to_owned(),
        ];
        for (i, sql) in stmts.iter().enumerate() {
            let t = Instant::now();
            db.execute_unprepared(sql).await?;
            println!(
                "  generation step {} done in {:.1} s",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
}

/// The CMDB data set: a CI graph in which one core CI reaches 10,000 CIs
/// downstream in 4 hops (see `BENCHMARKS.md`), written with batched inserts
/// (either database).
pub mod cmdb {
    use entity::{
        ci_class, ci_relationship, configuration_item,
        enums::{
            CiEnvironment, CiStatus, Criticality, LifecycleStatus, OrganizationKind,
            RelationshipKind,
        },
        organization, service, service_configuration_item, service_subscription,
    };
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
        QueryFilter, QueryOrder, QuerySelect, Set,
    };
    use serde_json::json;
    use servicegraph::processes::cmdb::dependency_of;

    use super::Result;

    /// Sizes of the levels below the core CI: 1 + 10 + 100 + 1,000 + 8,889 = 10,000 CIs.
    pub const LEVELS: [usize; 5] = [1, 10, 100, 1_000, 8_889];

    /// The CIs the core CI reaches downstream.
    pub fn cluster() -> usize {
        LEVELS.iter().sum()
    }

    /// Writes the CI graph (`cis` CIs of the provider, `relationships` edges);
    /// returns the core CI's id. With `services` = `None`, twenty live services
    /// of one second-level CI each are created and subscribed by one customer;
    /// otherwise the second-level CIs are linked to the given services (at most 20).
    pub async fn generate(
        db: &DatabaseConnection,
        cis: usize,
        relationships: usize,
        provider_code: &str,
        services: Option<&[i64]>,
    ) -> Result<i64> {
        let cluster = cluster();
        if cis < cluster * 2 || relationships < cis {
            return Err(
                "the CI graph needs at least 20000 CIs and as many relationships as CIs".into(),
            );
        }
        let org = organization::Entity::find()
            .filter(organization::Column::Code.eq(provider_code))
            .one(db)
            .await?
            .ok_or("no provider organization")?
            .id;
        let class = |code: &'static str| async move {
            ci_class::Entity::find()
                .filter(ci_class::Column::Code.eq(code))
                .one(db)
                .await
                .map(|c| c.map(|c| c.id).unwrap_or_default())
        };
        let (app_class, server_class) = (class("application").await?, class("server").await?);
        let at = servicegraph::records::now();

        let rows: Vec<configuration_item::ActiveModel> = (0..cis)
            .map(|i| {
                let in_cluster = i < cluster;
                let name = format!("ci-{i:06}");
                configuration_item::ActiveModel {
                    organization_id: Set(org),
                    class_id: Set(if in_cluster { app_class } else { server_class }),
                    name: Set(name.clone()),
                    name_key: Set(name.clone()),
                    status: Set(CiStatus::InProduction),
                    environment: Set(CiEnvironment::Production),
                    owner_group_id: Set(None),
                    attributes: Set(if in_cluster {
                        json!({ "appVersion": "1.0" })
                    } else {
                        json!({ "hostname": format!("{name}.example"), "cpuCount": 8 })
                    }),
                    source: Set(Some("bench".into())),
                    external_id: Set(Some(name)),
                    version: Set(1),
                    created_at: Set(at),
                    updated_at: Set(at),
                    ..Default::default()
                }
            })
            .collect();
        for chunk in rows.chunks(1_000) {
            configuration_item::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        let ids: Vec<i64> = configuration_item::Entity::find()
            .select_only()
            .column(configuration_item::Column::Id)
            .filter(configuration_item::Column::Source.eq("bench"))
            .order_by_asc(configuration_item::Column::Id)
            .into_tuple()
            .all(db)
            .await?;

        let mut edges: std::collections::HashSet<(usize, usize, RelationshipKind)> =
            std::collections::HashSet::new();
        let mut starts = vec![0usize];
        for size in LEVELS {
            starts.push(starts.last().copied().unwrap_or(0) + size);
        }
        for level in 1..LEVELS.len() {
            let (up_start, up_size) = (starts[level - 1], LEVELS[level - 1]);
            for k in 0..LEVELS[level] {
                let i = starts[level] + k;
                let parent = up_start + k * up_size / LEVELS[level];
                edges.insert((i, parent, RelationshipKind::DependsOn));
                let second = up_start + (k * 7 + 3) % up_size;
                if second != parent {
                    edges.insert((i, second, RelationshipKind::ConnectsTo));
                }
                // Upstream only: cluster CIs run on servers outside the cluster.
                edges.insert((
                    i,
                    cluster + (i * 13) % (cis - cluster),
                    RelationshipKind::RunsOn,
                ));
            }
        }
        let mut rng = StdRng::seed_from_u64(20261122);
        while edges.len() < relationships {
            let s = rng.random_range(cluster..cis);
            let t = rng.random_range(cluster..cis);
            if s != t {
                edges.insert((s, t, RelationshipKind::DependsOn));
            }
        }
        let mut edges: Vec<_> = edges.into_iter().collect();
        edges.sort_unstable_by_key(|(s, t, _)| (*s, *t));
        let rows: Vec<ci_relationship::ActiveModel> = edges
            .into_iter()
            .map(|(s, t, kind)| {
                let (source, target) = (ids[s], ids[t]);
                let (dependent, dependency) = dependency_of(kind, source, target);
                ci_relationship::ActiveModel {
                    organization_id: Set(org),
                    source_id: Set(source),
                    target_id: Set(target),
                    kind: Set(kind),
                    redundant: Set(false),
                    dependent_id: Set(dependent),
                    dependency_id: Set(dependency),
                    created_at: Set(at),
                    ..Default::default()
                }
            })
            .collect();
        for chunk in rows.chunks(2_000) {
            ci_relationship::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(db)
                .await?;
        }
        if let Some(services) = services {
            for (i, svc) in services.iter().take(20).enumerate() {
                service_configuration_item::ActiveModel {
                    service_id: Set(*svc),
                    ci_id: Set(ids[starts[2] + i * 5]),
                    organization_id: Set(org),
                    created_at: Set(at),
                    ..Default::default()
                }
                .insert(db)
                .await?;
            }
            db.execute_unprepared("ANALYZE").await?;
            return Ok(ids[0]);
        }
        // 20 live services, each made of one second-level CI, all subscribed by one customer.
        let customer = organization::ActiveModel {
            code: Set("bench-customer".into()),
            name: Set("Bench customer".into()),
            name_key: Set("bench customer".into()),
            kind: Set(OrganizationKind::Customer),
            description: Set(None),
            active: Set(true),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        }
        .insert(db)
        .await?;
        for i in 0..20 {
            let svc = service::ActiveModel {
                organization_id: Set(org),
                name: Set(format!("Bench service {i}")),
                name_key: Set(format!("bench service {i}")),
                description: Set(None),
                status: Set(LifecycleStatus::Live),
                criticality: Set(Criticality::High),
                owner_group_id: Set(None),
                owner_user_id: Set(None),
                version: Set(1),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            }
            .insert(db)
            .await?;
            service_subscription::ActiveModel {
                service_id: Set(svc.id),
                customer_id: Set(customer.id),
                created_at: Set(at),
                ..Default::default()
            }
            .insert(db)
            .await?;
            service_configuration_item::ActiveModel {
                service_id: Set(svc.id),
                ci_id: Set(ids[starts[2] + i * 5]),
                organization_id: Set(org),
                created_at: Set(at),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
        db.execute_unprepared("ANALYZE").await?;
        Ok(ids[0])
    }
}
