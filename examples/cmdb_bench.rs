//! CMDB benchmark: builds a configuration-item graph straight in the database
//! (100,000 CIs and 300,000 relationships by default, one core CI reaching
//! 10,000 of them downstream), then measures over HTTP, against the real server
//! on loopback: `ciImpact` from the core CI (median of `--runs` calls) and one
//! `upsertConfigurationItems` call with 1,000 CIs and 2,000 relationships.
//!
//! ```text
//! cargo run --release --example cmdb_bench                      # SQLite in a temp dir
//! cargo run --release --example cmdb_bench -- \
//!     --postgres postgres://postgres:postgres@127.0.0.1:5432     # a fresh PostgreSQL database
//! ```
//!
//! The data set: CI 0 is the core; four levels below it (10, 100, 1,000 and
//! 8,889 CIs) depend on the level above, each through a tree edge and a cross
//! edge to a second parent, so 10,000 CIs are reached downstream in 4 hops.
//! Every one of them also runs on one of the other 90,000 CIs, which are joined
//! by random `depends_on` edges (a fixed seed) up to the relationship count.
//! Twenty live services consist of one second-level CI each, all subscribed by
//! one customer. Generated rows bypass the audit trail, as a restore would.

use std::time::{Duration, Instant};

use clap::Parser;
use entity::{
    ci_class, ci_relationship, configuration_item,
    enums::{
        CiEnvironment, CiStatus, Criticality, LifecycleStatus, OrganizationKind, RelationshipKind,
    },
    organization, service, service_configuration_item, service_subscription,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use servicegraph::{
    app::Application,
    auth::{Claims, mint_hs256},
    config::Config,
    domain::cmdb::dependency_of,
};

const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256-0123";
/// Sizes of the levels below the core CI: 1 + 10 + 100 + 1,000 + 8,889 = 10,000 CIs.
const LEVELS: [usize; 5] = [1, 10, 100, 1_000, 8_889];

#[derive(Parser)]
struct Args {
    /// A PostgreSQL server URL without database; a fresh database is created and dropped.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 100_000)]
    cis: usize,
    #[arg(long, default_value_t = 300_000)]
    relationships: usize,
    /// Timed `ciImpact` calls (after 3 warm-up calls).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Keep the PostgreSQL database (or the SQLite data directory) after the run.
    #[arg(long)]
    keep: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cluster: usize = LEVELS.iter().sum();
    if args.cis < cluster * 2 || args.relationships < args.cis {
        return Err("--cis must be at least 20000 and --relationships at least --cis".into());
    }
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.hs256_secret = Some(SECRET.into());
    config.dev.seed_demo = false;
    config.database.max_connections = 8;
    let mut pg_admin: Option<(DatabaseConnection, String)> = None;
    if let Some(base) = &args.postgres {
        let base = base.trim_end_matches('/');
        let name = format!("sg_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(format!("{base}/postgres")).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        config.database.url = Some(format!("{base}/{name}"));
        pg_admin = Some((admin, name));
    }
    let backend = if pg_admin.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let provider_code = config.provider.code.clone();
    let app = Application::build(config).await?;
    let db = app.state.db.clone();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let started = Instant::now();
    let core = generate(&db, &args, &provider_code).await?;
    println!(
        "{backend}: generated {} CIs and {} relationships in {:.1} s",
        args.cis,
        args.relationships,
        started.elapsed().as_secs_f64()
    );

    let now = servicegraph::dev::unix_now();
    let token = mint_hs256(
        SECRET,
        &Claims {
            sub: "bench@provider".into(),
            tenant: provider_code,
            roles: vec!["admin".into()],
            orgs: vec![],
            exp: now + 3600,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )?;
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: Value| {
        let req = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            let t = Instant::now();
            let body: Value = req.send().await?.json().await?;
            if body.get("errors").is_some() {
                return Err(format!("GraphQL errors: {}", body["errors"]).into());
            }
            Ok::<_, Box<dyn std::error::Error>>((t.elapsed(), body))
        }
    };

    let core_id = servicegraph::graphql::ids::encode("ConfigurationItem", core);
    const IMPACT: &str = "query($id: ID!) { ciImpact(id: $id) { reachedCount configurationItems { depth configurationItemId } services { depth service { name } } customers { code } } }";
    const IMPACT_PATHS: &str = "query($id: ID!) { ciImpact(id: $id) { reachedCount configurationItems { depth configurationItemId path } services { depth service { name } } customers { code } } }";
    const IMPACT_FULL: &str = "query($id: ID!) { ciImpact(id: $id) { reachedCount configurationItems { depth path configurationItem { id name status } } services { depth service { name } } customers { code } } }";
    let mut results = Vec::new();
    for (label, query) in [
        ("ids and depths", IMPACT),
        ("ids, depths and paths", IMPACT_PATHS),
        ("paths and each CI's name and status", IMPACT_FULL),
    ] {
        for _ in 0..3 {
            let (_, body) = post(query, json!({ "id": core_id })).await?;
            let reached = body["data"]["ciImpact"]["reachedCount"]
                .as_u64()
                .unwrap_or(0);
            if reached as usize != cluster {
                return Err(format!("expected {cluster} reached CIs, got {reached}").into());
            }
        }
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            times.push(post(query, json!({ "id": core_id })).await?.0);
        }
        let max = *times.iter().max().unwrap_or(&Duration::ZERO);
        let med = median(times);
        println!(
            "{backend}: ciImpact reaching {cluster} CIs ({label}): median {:.1} ms, max {:.1} ms over {} runs",
            ms(med),
            ms(max),
            args.runs
        );
        results.push((label, med, max));
    }

    const UPSERT: &str = "mutation($i: UpsertConfigurationItemsInput!) { upsertConfigurationItems(input: $i) { created updated unchanged errors relationships { status } } }";
    let items: Vec<Value> = (0..1000)
        .map(|i| {
            json!({ "source": "bench-upsert", "externalId": format!("vm-{i}"), "classCode": "virtual_machine",
                    "name": format!("bench vm {i}"), "attributes": { "hostname": format!("vm-{i}.bench"), "cpuCount": 4, "memoryGb": 16 } })
        })
        .collect();
    let r = |a: usize, b: usize, kind: &str| json!({ "source": { "source": "bench-upsert", "externalId": format!("vm-{a}") }, "target": { "source": "bench-upsert", "externalId": format!("vm-{b}") }, "kind": kind });
    let rels: Vec<Value> = (0..1000)
        .flat_map(|i| {
            [
                r(i, (i + 1) % 1000, "DEPENDS_ON"),
                r(i, (i + 7) % 1000, "CONNECTS_TO"),
            ]
        })
        .collect();
    let input = json!({ "i": { "items": items, "relationships": rels } });
    let (first, body) = post(UPSERT, input.clone()).await?;
    let out = &body["data"]["upsertConfigurationItems"];
    if out["created"] != 1000 || out["errors"] != 0 {
        return Err(format!("unexpected upsert answer: {out}").into());
    }
    let (second, body) = post(UPSERT, input).await?;
    let unchanged = body["data"]["upsertConfigurationItems"]["unchanged"].clone();
    println!(
        "{backend}: upsertConfigurationItems 1,000 CIs + 2,000 relationships: {:.0} ms (all created); again {:.0} ms ({unchanged} unchanged)",
        ms(first),
        ms(second)
    );

    println!();
    println!("| {backend} | median | max |");
    println!("|---|---|---|");
    for (label, med, max) in &results {
        println!(
            "| ciImpact, {cluster} CIs reached ({label}) | {:.1} ms | {:.1} ms |",
            ms(*med),
            ms(*max)
        );
    }
    println!(
        "| upsertConfigurationItems, 1,000 new CIs + 2,000 relationships | {:.0} ms | |",
        ms(first)
    );
    println!(
        "| the same call again (all unchanged) | {:.0} ms | |",
        ms(second)
    );

    if args.keep && args.postgres.is_none() {
        println!("kept SQLite data in {}", dir.keep().display());
    }
    let _ = stop.send(());
    let _ = server.await;
    drop(db);
    if let Some((admin, name)) = pg_admin {
        if args.keep {
            println!("kept database {name}");
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
        }
    }
    Ok(())
}

/// Writes the data set; returns the core CI's id.
async fn generate(
    db: &DatabaseConnection,
    args: &Args,
    provider_code: &str,
) -> Result<i64, Box<dyn std::error::Error>> {
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
    let cluster: usize = LEVELS.iter().sum();
    let at = servicegraph::domain::now();

    let rows: Vec<configuration_item::ActiveModel> = (0..args.cis)
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
                cluster + (i * 13) % (args.cis - cluster),
                RelationshipKind::RunsOn,
            ));
        }
    }
    let mut rng = StdRng::seed_from_u64(20261122);
    while edges.len() < args.relationships {
        let s = rng.random_range(cluster..args.cis);
        let t = rng.random_range(cluster..args.cis);
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
