//! Incidents and SLA benchmark (PostgreSQL): builds incidents with their SLA
//! clocks and affected CIs straight in the database with `INSERT ... SELECT
//! generate_series` (1,000,000 incidents over 12 months, 50 services, 200
//! customers by default), then measures against the real server over HTTP on
//! loopback:
//!
//! - `slaReport` for one month grouped by SERVICE;
//! - the incident list: the first 50 filtered by state and assignment group,
//!   with service, assignee, affected CIs and clocks nested, and the number of
//!   SQL statements each request sends (the server reaches PostgreSQL through
//!   a counting proxy on loopback that reads the wire protocol);
//! - two passes of the breach worker (CPU time of the process, from
//!   `/proc/self/stat`): the first checks every running clock (generated due
//!   at once, as the migration that added `next_check_at` leaves them), the
//!   second only those due since.
//!
//! ```text
//! cargo run --release --example incident_bench -- \
//!     --postgres postgres://postgres:postgres@127.0.0.1:5432
//! # options: --incidents 1000000 --open 10000 --runs 20 --keep
//! ```
//!
//! The data set: incident `g` (0-based) belongs to customer `g % 200` and service
//! `(g / 200) % 50`, is assigned to one of 20 support groups and one of 200
//! agents, names one of its customer's 25 CIs as affected, and was raised at
//! an even spacing over the 365 days before the run. Every (customer, service)
//! pair has a 24x7 SLA copied from one created through the API. The newest
//! `--open` incidents are ASSIGNED or IN_PROGRESS with their resolve clock
//! running; the others are CLOSED with both clocks stopped, about 70 % of them
//! in time. Generated rows bypass the audit trail, as a restore would.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{Datelike, TimeZone, Utc};
use clap::Parser;
use common::{SECRET, WireCounts, median, ms, scalar, start_proxy};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use servicegraph::{app::Application, config::Config, records::Store};

#[derive(Parser)]
struct Args {
    /// A PostgreSQL server URL without database; a fresh database is created and dropped.
    #[arg(long)]
    postgres: String,
    #[arg(long, default_value_t = 1_000_000)]
    incidents: i64,
    /// The newest incidents left open, each with a running resolve clock.
    #[arg(long, default_value_t = 10_000)]
    open: i64,
    /// Timed calls per measurement (after 3 warm-up calls).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Keep the PostgreSQL database after the run.
    #[arg(long)]
    keep: bool,
    /// Measure again on a database kept by an earlier run (no generation; kept).
    #[arg(long)]
    reuse: Option<String>,
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.incidents < common::incidents::CUSTOMERS * common::incidents::SERVICES
        || args.open >= args.incidents
    {
        return Err("--incidents must be at least 10000 and above --open".into());
    }
    let base = args.postgres.trim_end_matches('/').to_owned();
    let name = match &args.reuse {
        Some(name) => name.clone(),
        None => format!("sg_bench_{}", uuid::Uuid::new_v4().simple()),
    };
    let admin = Database::connect(format!("{base}/postgres")).await?;
    if args.reuse.is_none() {
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
    }
    let direct = Database::connect(format!("{base}/{name}")).await?;

    let url = url::Url::parse(&base)?;
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let counts = Arc::new(WireCounts::default());
    let proxy = start_proxy(upstream, counts.clone()).await?;
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.port())).ok();
    proxied.set_path(&format!("/{name}"));
    proxied.set_query(Some("sslmode=disable"));

    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.hs256_secret = Some(SECRET.into());
    config.dev.seed_demo = false;
    config.database.max_connections = 8;
    config.database.url = Some(proxied.to_string());
    // The worker pass is run and timed below, not in the background.
    config.sla.worker_enabled = false;
    let provider_code = config.provider.code.clone();
    let app = Application::build(config).await?;
    let worker_actor = servicegraph::processes::directory::system_principal(app.state.provider_id);
    let store = Store::new(
        app.state.db.clone(),
        app.state.events.clone(),
        &app.state.config.sla,
    );
    let base_url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let token = common::admin_token(&provider_code, 7200)?;
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: Value| {
        common::graphql(&client, &base_url, &token, query, variables)
    };

    // --- generate -----------------------------------------------------------
    if args.reuse.is_none() {
        let started = Instant::now();

        common::incidents::generate(
            &direct,
            &client,
            &base_url,
            &token,
            &provider_code,
            args.incidents,
            args.open,
        )
        .await?;
        println!(
            "PostgreSQL: generated {} incidents, {} clocks ({} running), {} affected-CI links in {:.1} s",
            args.incidents,
            args.incidents * 2,
            args.open,
            args.incidents,
            started.elapsed().as_secs_f64()
        );
    }

    // --- (a) slaReport for one month -----------------------------------------
    let mid = Utc::now() - chrono::Duration::days(180);
    let from = Utc
        .with_ymd_and_hms(mid.year(), mid.month(), 1, 0, 0, 0)
        .single()
        .ok_or("bad month")?;
    let to = if from.month() == 12 {
        Utc.with_ymd_and_hms(from.year() + 1, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(from.year(), from.month() + 1, 1, 0, 0, 0)
    }
    .single()
    .ok_or("bad month")?;
    const REPORT: &str = "query($p: ReportPeriod!) { slaReport(period: $p, groupBy: SERVICE) { rows { key service { name } respond { met breached inProgress compliancePercent meanSeconds p90Seconds } resolve { met breached inProgress compliancePercent meanSeconds p90Seconds } } breachedIncidents(first: 10) { edges { node { number } } } } }";
    let period = json!({ "p": { "from": from.to_rfc3339(), "to": to.to_rfc3339() } });
    let mut report_rows = 0;
    for _ in 0..3 {
        let (_, body) = post(REPORT, period.clone()).await?;
        report_rows = body["data"]["slaReport"]["rows"]
            .as_array()
            .map_or(0, Vec::len);
    }
    let mut times = Vec::new();
    let mut report_statements = 0;
    for _ in 0..args.runs {
        let before = counts.read();
        times.push(post(REPORT, period.clone()).await?.0);
        report_statements = counts.read().0 - before.0;
    }
    let report_max = *times.iter().max().unwrap_or(&Duration::ZERO);
    let report_median = median(times);
    let month_clocks = scalar(
        &direct,
        &format!(
            "SELECT COUNT(*) FROM sla_clocks WHERE started_at >= '{}' AND started_at < '{}'",
            from.to_rfc3339(),
            to.to_rfc3339()
        ),
    )
    .await?;
    println!(
        "slaReport {} .. {} by SERVICE ({month_clocks} clocks, {report_rows} rows): median {:.1} ms, max {:.1} ms, {report_statements} statements",
        from.date_naive(),
        to.date_naive(),
        ms(report_median),
        ms(report_max)
    );

    // --- (b) the incident list ---------------------------------------------
    const LIST: &str = "query($f: IncidentFilter, $n: Int) { incidents(first: $n, filter: $f) { edges { node { number title state priority service { name } assignee { displayName } assignmentGroup { name } affectedCis { name status } clocks { kind targetSeconds dueAt businessElapsedSeconds remainingSeconds paused met breachedAt } } } pageInfo { hasNextPage endCursor } } }";
    let group = scalar(&direct, "SELECT MIN(id) FROM support_groups").await?;
    let group_id = servicegraph::graphql::ids::encode("SupportGroup", group);
    let mut list_results = Vec::new();
    for (state, n) in [
        ("IN_PROGRESS", 50),
        ("CLOSED", 50),
        ("CLOSED", 5),
        ("CLOSED", 100),
    ] {
        let vars = json!({ "f": { "state": [state], "assignmentGroupId": group_id }, "n": n });
        let mut got = 0;
        for _ in 0..3 {
            let (_, body) = post(LIST, vars.clone()).await?;
            got = body["data"]["incidents"]["edges"]
                .as_array()
                .map_or(0, Vec::len);
        }
        let mut times = Vec::new();
        let mut statements = Vec::new();
        for _ in 0..args.runs {
            let before = counts.read();
            times.push(post(LIST, vars.clone()).await?.0);
            let after = counts.read();
            statements.push((after.0 - before.0, after.1 - before.1));
        }
        statements.sort_unstable();
        statements.dedup();
        let max = *times.iter().max().unwrap_or(&Duration::ZERO);
        let med = median(times);
        println!(
            "incidents(first: {n}, state {state}, one group): {got} nodes, median {:.1} ms, max {:.1} ms, statements (execute, simple) per request: {statements:?}",
            ms(med),
            ms(max)
        );
        list_results.push((state, n, got, med, max, statements));
    }

    // --- (c) the breach worker ---------------------------------------------
    let mut passes = Vec::new();
    let (_running, never_stop) = tokio::sync::watch::channel(false);
    for label in ["first pass", "second pass"] {
        let cpu = cpu_time();
        let wall = Instant::now();
        let fired = servicegraph::processes::sla::worker::pass(
            &store,
            &worker_actor,
            servicegraph::records::now(),
            &never_stop,
        )
        .await
        .map_err(|e| e.message())?;
        let (wall, cpu) = (wall.elapsed(), cpu_time().saturating_sub(cpu));
        println!(
            "breach worker, {} running clocks, {label}: {fired} events, wall {:.0} ms, CPU {:.0} ms",
            args.open,
            ms(wall),
            ms(cpu)
        );
        passes.push((label, fired, wall, cpu));
    }

    println!();
    println!(
        "| PostgreSQL, {} incidents | median | max | SQL statements |",
        args.incidents
    );
    println!("|---|---|---|---|");
    println!(
        "| `slaReport`, {} by SERVICE ({month_clocks} clocks) | {:.1} ms | {:.1} ms | {report_statements} |",
        from.format("%Y-%m"),
        ms(report_median),
        ms(report_max)
    );
    for (state, n, got, med, max, statements) in &list_results {
        let execs: Vec<String> = statements.iter().map(|s| s.0.to_string()).collect();
        println!(
            "| `incidents(first: {n})`, {state} in one group, nested ({got} nodes) | {:.1} ms | {:.1} ms | {} |",
            ms(*med),
            ms(*max),
            execs.join(" / ")
        );
    }
    for (label, fired, wall, cpu) in &passes {
        println!(
            "| breach worker, {} running clocks, {label}: {fired} events | wall {:.0} ms | CPU {:.0} ms | |",
            args.open,
            ms(*wall),
            ms(*cpu)
        );
    }

    let _ = stop.send(());
    let _ = server.await;
    drop(store);
    drop(direct);
    if args.keep || args.reuse.is_some() {
        println!("kept database {name}");
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}
