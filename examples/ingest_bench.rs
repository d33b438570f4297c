//! Monitoring ingestion benchmark: the real server (in this process, on
//! loopback) receives Alertmanager webhook batches from concurrent senders;
//! each batch holds `--batch` alerts of which `--repeat` are repeats of
//! alerts the sender already raised (still open), the rest new. Reports
//! alerts per second, delivery latency (p50 / p99 / max), errors, and checks
//! after the run that no two open incidents share a tenant and alert key and
//! that every new alert made exactly one incident. The ceiling, measured on
//! the same database right after: a plain single-row INSERT loop from the
//! same number of concurrent tasks.
//!
//! ```text
//! cargo run --release --example ingest_bench -- --postgres postgres://postgres:postgres@127.0.0.1:5432
//! cargo run --release --example ingest_bench                 # SQLite, in a temp dir
//! # options: --senders 16 --batch 100 --repeat 0.2 --seconds 20 --warmup 10 --rate 5000 (alerts/s; 0 = as fast as possible) --keep
//! # PostgreSQL connection parameters go after the URL: ...:5432?sslmode=disable
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use servicegraph::{
    app::Application,
    auth::{Claims, mint_hs256},
    config::Config,
};

const SECRET: &str = "benchmark-secret-that-is-long-enough-for-hs256-0123";

#[derive(Parser)]
struct Args {
    /// A PostgreSQL server URL without database (a fresh database is created); SQLite without it.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value_t = 16)]
    senders: usize,
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Share of each batch that repeats alerts already raised.
    #[arg(long, default_value_t = 0.2)]
    repeat: f64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of load before measuring (the same senders and rate): the
    /// customer's first raise creates its number sequence, and PostgreSQL
    /// plans statements against tables that are still tiny.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Keep the benchmark's PostgreSQL database (dropped by default).
    #[arg(long)]
    keep: bool,
    /// Offered load in alerts per second over all senders; 0 sends as fast as answers come.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
    /// SQL run on the benchmark's database after the setup, before the load
    /// (experiments: drop an index, change a setting).
    #[arg(long)]
    setup_sql: Option<String>,
}

/// CPU time (user + system, in clock ticks of 10 ms) of this process and of
/// the PostgreSQL processes serving database `db` (their title names it:
/// backends and autovacuum workers), from `/proc` (Linux; zero elsewhere).
/// Divided by deliveries it holds up when the machine is shared.
fn cpu_ticks(db: Option<&str>) -> (u64, u64) {
    fn ticks(stat: &str) -> Option<(String, u64)> {
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state is field 3, utime 14 and stime 15.
        Some((
            comm,
            f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        ))
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .map_or(0, |(_, t)| t);
    let mut pg = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some(db) = db
                && let Ok(s) = std::fs::read_to_string(e.path().join("stat"))
                && let Some((comm, t)) = ticks(&s)
                && comm == "postgres"
                && std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(db))
            {
                pg += t;
            }
        }
    }
    (own, pg)
}

/// PostgreSQL's current WAL position in bytes (`None` on SQLite).
async fn wal_lsn(url: &str) -> Option<u64> {
    if !url.starts_with("postgres") {
        return None;
    }
    let db = Database::connect(url).await.ok()?;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b",
        ))
        .await
        .ok()??;
    row.try_get::<i64>("", "b").ok().map(|b| b as u64)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// One Alertmanager alert, written straight as JSON text: the senders stand
/// for other machines, so they should cost this one as little as they can.
/// Appended to the body's `alerts` array, after a comma unless it is the first.
fn alert(out: &mut String, fp: &str, n: u64) {
    use std::fmt::Write;
    if !out.ends_with('[') {
        out.push(',');
    }
    let severity = if n.is_multiple_of(10) {
        "critical"
    } else {
        "warning"
    };
    let _ = write!(
        out,
        r#"{{"status":"firing","labels":{{"alertname":"HighLatency","instance":"web-{}","severity":"{severity}","job":"web"}},"annotations":{{"summary":"Latency high on {fp}","description":"p99 above 2 s for 5 minutes"}},"startsAt":"2026-11-22T09:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph","fingerprint":"{fp}"}}"#,
        n % 500
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let mut admin_url = None;
    let (db_url, label) = match &args.postgres {
        Some(base) => {
            // Connection parameters (`?sslmode=disable`) go on both URLs.
            let (base, params) = match base.split_once('?') {
                Some((b, q)) => (b, format!("?{q}")),
                None => (base.as_str(), String::new()),
            };
            let base = base.trim_end_matches('/').to_owned();
            let name = format!("sg_ingest_{}", uuid::Uuid::new_v4().simple());
            let admin_db = format!("{base}/postgres{params}");
            let admin = Database::connect(&admin_db).await?;
            admin_url = Some((admin_db, name.clone()));
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            (format!("{base}/{name}{params}"), "PostgreSQL")
        }
        None => (
            format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
            "SQLite",
        ),
    };
    config.database.url = Some(db_url.clone());
    config.database.max_connections = args.max_connections;
    config.auth.hs256_secret = Some(SECRET.into());
    config.dev.seed_demo = false;
    config.log.filter = "warn".into();
    // The senders share one integration at thousands of alerts a second, far
    // beyond its default budget (60,000 a minute): a budget it never reaches,
    // so the run measures throughput (with the accounting in the path).
    config.budget.ingest_alerts = 1_000_000_000_000;
    let provider = config.provider.code.clone();
    let app = Application::build(config).await?;
    let base_url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // Setup through the API: a customer, a live service it subscribes to
    // with a 24x7 SLA, and an integration routing to it.
    let now = servicegraph::dev::unix_now();
    let token = mint_hs256(
        SECRET,
        &Claims {
            sub: "bench@provider".into(),
            tenant: provider,
            roles: vec!["admin".into()],
            orgs: vec![],
            exp: now + 7200,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.senders)
        .build()?;
    let gql = |query: &'static str, variables: Value| {
        let req = client
            .post(format!("{base_url}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": query, "variables": variables }));
        async move {
            let body: Value = req.send().await?.json().await?;
            if body.get("errors").is_some() {
                return Err(format!("GraphQL errors: {}", body["errors"]).into());
            }
            Ok::<_, Box<dyn std::error::Error>>(body["data"].clone())
        }
    };
    let org = gql(
        "mutation { createOrganization(input: { code: \"acme\", name: \"Acme\" }) { id } }",
        json!({}),
    )
    .await?["createOrganization"]["id"]
        .clone();
    let svc = gql(
        "mutation { createService(input: { name: \"Web shop\", status: LIVE }) { id } }",
        json!({}),
    )
    .await?["createService"]["id"]
        .clone();
    gql(
        "mutation($s: ID!, $c: ID!) { subscribeCustomer(serviceId: $s, customerId: $c) { createdAt } }",
        json!({ "s": svc, "c": org }),
    )
    .await?;
    let days = [
        "MONDAY",
        "TUESDAY",
        "WEDNESDAY",
        "THURSDAY",
        "FRIDAY",
        "SATURDAY",
        "SUNDAY",
    ];
    let windows: Vec<Value> = days
        .iter()
        .map(|d| json!({ "weekday": d, "start": "00:00", "end": "24:00" }))
        .collect();
    let cal = gql(
        "mutation($i: CreateBusinessCalendarInput!) { createBusinessCalendar(input: $i) { id } }",
        json!({ "i": { "name": "24x7", "timeZone": "UTC", "windows": windows } }),
    )
    .await?["createBusinessCalendar"]["id"]
        .clone();
    gql(
        "mutation($i: CreateSlaInput!) { createSla(input: $i) { id } }",
        json!({ "i": { "name": "Gold", "customerId": org, "serviceId": svc, "calendarId": cal,
            "validFrom": "2020-01-01T00:00:00Z", "availabilityTarget": 99.9,
            "targets": [
                { "priority": "P1", "respondMinutes": 15, "resolveMinutes": 240 },
                { "priority": "P2", "respondMinutes": 30, "resolveMinutes": 480 },
                { "priority": "P3", "respondMinutes": 60, "resolveMinutes": 960 },
                { "priority": "P4", "respondMinutes": 240, "resolveMinutes": 2400 }] } }),
    )
    .await?;
    let secret = gql(
        "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { secret } }",
        json!({ "i": { "organizationId": org, "name": "prometheus", "kind": "ALERTMANAGER",
            "defaultServiceId": svc,
            "rules": [{ "matchers": [{ "label": "severity", "op": "EQUALS", "value": "critical" }], "impact": 1, "urgency": 1 }] } }),
    )
    .await?["createIntegration"]["secret"]
        .as_str()
        .ok_or("no secret")?
        .to_owned();

    if let Some(sql) = &args.setup_sql {
        Database::connect(&db_url)
            .await?
            .execute_unprepared(sql)
            .await?;
    }

    // --- load ----------------------------------------------------------------
    let repeats = ((args.batch as f64) * args.repeat).round() as usize;
    let fresh = args.batch - repeats;
    let interval = if args.rate == 0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            args.batch as f64 * args.senders as f64 / args.rate as f64,
        ))
    };
    let url = Arc::new(format!("{base_url}/ingest/alertmanager"));
    let measure_from = Instant::now() + Duration::from_secs(args.warmup);
    let deadline = measure_from + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    let start = Instant::now();
    let senders = args.senders as u32;
    for s in 0..args.senders {
        let client = client.clone();
        let url = url.clone();
        let secret = secret.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut raised: Vec<String> = Vec::new();
            let mut seq = 0u64;
            let mut batch_no = 0u64;
            let mut accepted = 0u64;
            // Senders spread evenly over one interval, as independent
            // Alertmanagers would be, not started together in a burst.
            let mut next = start + interval.map_or(Duration::ZERO, |iv| iv * s as u32 / senders);
            while Instant::now() < deadline {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let mut body = format!(
                    r#"{{"version":"4","groupKey":"{{}}:{{sender=\"{s}\"}}","truncatedAlerts":0,"status":"firing","receiver":"servicegraph","groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager:9093","alerts":["#
                );
                let mut count = 0u64;
                let mut new_fps = Vec::with_capacity(fresh);
                for _ in 0..fresh {
                    let fp = format!("s{s}-a{seq}");
                    alert(&mut body, &fp, seq);
                    count += 1;
                    new_fps.push(fp);
                    seq += 1;
                }
                if !raised.is_empty() {
                    for r in 0..repeats {
                        let i = (batch_no as usize * 31 + r * 7919) % raised.len();
                        alert(&mut body, &raised[i], i as u64);
                        count += 1;
                    }
                }
                body.push_str("]}");
                batch_no += 1;
                let t = Instant::now();
                let resp = client
                    .post(url.as_str())
                    .bearer_auth(&secret)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                let measured = t >= measure_from;
                if measured {
                    lat.push(t.elapsed());
                }
                if ok {
                    if measured {
                        accepted += count;
                    }
                    raised.extend(new_fps);
                } else {
                    // Counted in the warm-up too: no failure goes unseen.
                    errors += 1;
                }
            }
            (lat, errors, raised.len() as u64, accepted)
        }));
    }
    let pg_db = admin_url.as_ref().map(|(_, name)| name.clone());
    let cpu_db = pg_db.clone();
    let analyze_url = db_url.clone();
    let warmup = args.warmup;
    // The end of the warm-up: the alert tables have grown from nothing,
    // faster than autovacuum (one look a minute) analyzes them. Analyze them
    // as it would on a live database, so that statements are planned for
    // their size; see "Plans on a database that starts empty" in
    // BENCHMARKS.md.
    let analyzed = tokio::spawn(async move {
        if warmup < 3 {
            return;
        }
        tokio::time::sleep_until((measure_from - Duration::from_secs(2)).into()).await;
        if let Ok(db) = Database::connect(analyze_url).await {
            let _ = db
                .execute_unprepared("ANALYZE incidents, incident_alerts")
                .await;
        }
    });
    let wal_url = db_url.clone();
    let cpu_from = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu = cpu_ticks(cpu_db.as_deref());
        (cpu, wal_lsn(&wal_url).await)
    });
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut new_alerts = 0;
    let mut alerts_sent = 0u64;
    for t in tasks {
        let (l, e, n, a) = t.await?;
        lat.extend(l);
        errors += e;
        new_alerts += n;
        alerts_sent += a;
    }
    let elapsed = measure_from.elapsed().as_secs_f64();
    let cpu_to = cpu_ticks(pg_db.as_deref());
    let wal_to = wal_lsn(&db_url).await;
    let (cpu_from, wal_from) = cpu_from.await?;
    analyzed.await?;
    lat.sort();

    // --- checks ----------------------------------------------------------------
    let db = Database::connect(&db_url).await?;
    let scalar = |sql: &str| {
        let db = &db;
        let sql = sql.to_owned();
        async move {
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await?
                .ok_or("no row")?;
            Ok::<i64, Box<dyn std::error::Error>>(row.try_get_by_index::<i64>(0)?)
        }
    };
    let duplicates = scalar(
        "SELECT COUNT(*) FROM (SELECT customer_id, dedup_key FROM incidents WHERE dedup_key IS NOT NULL \
         AND state NOT IN ('resolved', 'closed') GROUP BY customer_id, dedup_key HAVING COUNT(*) > 1) d",
    )
    .await?;
    let incidents = scalar("SELECT COUNT(*) FROM incidents WHERE dedup_key IS NOT NULL").await?;
    let clocks = scalar("SELECT COUNT(*) FROM sla_clocks").await?;

    // --- ceiling: a plain single-row INSERT loop ----------------------------------
    let backend = db.get_database_backend();
    db.execute_unprepared(if backend == DbBackend::Postgres {
        "CREATE TABLE bench_ceiling (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL)"
    } else {
        "CREATE TABLE bench_ceiling (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL, v TEXT NOT NULL)"
    })
    .await?;
    let ceiling_deadline = Instant::now() + Duration::from_secs(args.seconds.min(10));
    let ceiling_start = Instant::now();
    let mut options = sea_orm::ConnectOptions::new(db_url.clone());
    options
        .max_connections(args.max_connections)
        .sqlx_logging(false);
    let pool = Database::connect(options).await?;
    let mut inserters = Vec::new();
    for s in 0..args.senders {
        let pool = pool.clone();
        inserters.push(tokio::spawn(async move {
            let mut n = 0u64;
            let sql = if pool.get_database_backend() == DbBackend::Postgres {
                "INSERT INTO bench_ceiling (k, v) VALUES ($1, $2)"
            } else {
                "INSERT INTO bench_ceiling (k, v) VALUES (?, ?)"
            };
            while Instant::now() < ceiling_deadline {
                let stmt = Statement::from_sql_and_values(
                    pool.get_database_backend(),
                    sql,
                    [format!("s{s}-{n}").into(), "firing".into()],
                );
                if pool.execute_raw(stmt).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut rows = 0;
    for t in inserters {
        rows += t.await?;
    }
    let ceiling = rows as f64 / ceiling_start.elapsed().as_secs_f64();

    let rate = alerts_sent as f64 / elapsed;
    println!(
        "\n{label}: {} senders, batches of {} ({} new + {} repeats), offered {} alerts/s, {} s after {} s of warm-up",
        args.senders,
        args.batch,
        fresh,
        repeats,
        if args.rate == 0 {
            "max".to_owned()
        } else {
            args.rate.to_string()
        },
        args.seconds,
        args.warmup
    );
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| deliveries | {} ({} errors, warm-up included) |",
        lat.len(),
        errors
    );
    println!("| alerts/s accepted | {rate:.0} |");
    println!(
        "| delivery latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    let per = |t: u64| t as f64 * 10.0 / lat.len().max(1) as f64;
    println!(
        "| CPU per delivery: this process (server + senders) / PostgreSQL | {:.1} / {:.1} ms |",
        per(cpu_to.0 - cpu_from.0),
        per(cpu_to.1.saturating_sub(cpu_from.1))
    );
    if let (Some(from), Some(to)) = (wal_from, wal_to) {
        println!(
            "| WAL written per delivery (whole server) | {:.0} kB |",
            to.saturating_sub(from) as f64 / 1024.0 / lat.len().max(1) as f64
        );
    }
    println!("| incidents (expected {new_alerts}) / clocks | {incidents} / {clocks} |");
    println!("| open incidents sharing a key | {duplicates} |");
    println!(
        "| ceiling: single-row INSERTs/s ({} tasks) | {ceiling:.0} (alerts/s = {:.2} x) |",
        args.senders,
        rate / ceiling
    );
    let _ = stop.send(());
    let _ = server.await;
    drop((db, pool));
    if let Some((admin, name)) = admin_url.filter(|_| !args.keep) {
        Database::connect(admin)
            .await?
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}
