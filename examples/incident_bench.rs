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
//! - one pass of the breach worker over the running clocks (CPU time of the
//!   process, from `/proc/self/stat`).
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

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Datelike, TimeZone, Utc};
use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use servicegraph::{
    app::Application,
    auth::{Claims, mint_hs256},
    config::Config,
    domain::Store,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256-0123";
const CUSTOMERS: i64 = 200;
const SERVICES: i64 = 50;
const GROUPS: i64 = 20;
const AGENTS: i64 = 200;
const CIS_PER_CUSTOMER: i64 = 25;

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Frontend messages seen by the proxy: `Execute` (one statement of the
/// extended protocol, which every query of the server uses) and `Query`
/// (simple protocol: `BEGIN`/`COMMIT` and the pool's liveness pings).
#[derive(Default)]
struct WireCounts {
    execute: AtomicU64,
    simple: AtomicU64,
}

impl WireCounts {
    fn read(&self) -> (u64, u64) {
        (
            self.execute.load(Ordering::SeqCst),
            self.simple.load(Ordering::SeqCst),
        )
    }
}

/// A loopback TCP proxy to PostgreSQL that counts the frontend messages.
/// Needs `sslmode=disable` on the proxied URL (it reads the plain protocol).
async fn start_proxy(
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
    if args.incidents < CUSTOMERS * SERVICES || args.open >= args.incidents {
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
    let store = Store {
        db: app.state.db.clone(),
        events: app.state.events.clone(),
    };
    let base_url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let now = servicegraph::dev::unix_now();
    let token = mint_hs256(
        SECRET,
        &Claims {
            sub: "bench@provider".into(),
            tenant: provider_code.clone(),
            roles: vec!["admin".into()],
            orgs: vec![],
            exp: now + 7200,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )?;
    let client = reqwest::Client::new();
    let post = |query: &'static str, variables: Value| {
        let req = client
            .post(format!("{base_url}/graphql"))
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

    // --- generate -----------------------------------------------------------
    if args.reuse.is_none() {
        let started = Instant::now();

        let provider = scalar(
            &direct,
            &format!("SELECT id FROM organizations WHERE code = '{provider_code}'"),
        )
        .await?;
        generate_directory(&direct, provider).await?;
        // One calendar and one SLA through the API (validated), copied to every pair.
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
        let (_, cal) = post(
            "mutation($i: CreateBusinessCalendarInput!) { createBusinessCalendar(input: $i) { id } }",
            json!({ "i": { "name": "24x7", "timeZone": "UTC", "windows": all_days } }),
        )
        .await?;
        let first_customer = scalar(
            &direct,
            "SELECT MIN(id) FROM organizations WHERE kind = 'customer'",
        )
        .await?;
        let first_service = scalar(&direct, "SELECT MIN(id) FROM services").await?;
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
        let template = scalar(&direct, "SELECT MIN(id) FROM slas").await?;
        generate_incidents(&direct, &args, provider, template).await?;
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
    let thresholds = [75u32, 90];
    let mut passes = Vec::new();
    for label in ["first pass", "second pass"] {
        let cpu = cpu_time();
        let wall = Instant::now();
        let fired = servicegraph::domain::sla::worker::pass(
            &store,
            &thresholds,
            servicegraph::domain::now(),
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

async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT CAST(({sql}) AS BIGINT) AS v"),
        ))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get::<Option<i64>>("", "v")?.unwrap_or_default())
}

/// Customers, services, support groups, agents and CIs.
async fn generate_directory(
    db: &DatabaseConnection,
    provider: i64,
) -> Result<(), Box<dyn std::error::Error>> {
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
async fn generate_incidents(
    db: &DatabaseConnection,
    args: &Args,
    provider: i64,
    template: i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.incidents;
    let open_from = n - args.open;
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
        // up would have left them.
        "INSERT INTO sla_clocks (incident_id, customer_id, service_id, priority, sla_id, kind, target_seconds, started_at, pauses, \
           stopped_at, due_at, met, business_seconds, warning_fired, breach_fired_at, version, created_at, updated_at) \
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
