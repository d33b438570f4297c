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

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{SECRET, median, ms};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use servicegraph::{app::Application, config::Config};

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cluster = common::cmdb::cluster();
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
    let core =
        common::cmdb::generate(&db, args.cis, args.relationships, &provider_code, None).await?;
    println!(
        "{backend}: generated {} CIs and {} relationships in {:.1} s",
        args.cis,
        args.relationships,
        started.elapsed().as_secs_f64()
    );

    let token = common::admin_token(&provider_code, 3600)?;
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: Value| {
        common::graphql(&client, &base, &token, query, variables)
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
