//! The helper of `bench/run.sh`, the load benchmark against the release
//! binary: generates the data set, reads the ids the wrk scripts need, counts
//! the SQL statements of a request through a wire-protocol proxy, opens the
//! WebSocket subscribers, sets up the Alertmanager integration and times the
//! start-up on SQLite. Each subcommand prints `KEY=value` lines for the script
//! (and progress on standard error).
//!
//! ```text
//! cargo run --release --example loadbench -- generate --postgres postgres://postgres:postgres@127.0.0.1:5432 --name sg_loadbench
//! cargo run --release --example loadbench -- params --database-url postgres://.../sg_loadbench
//! ```

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{Datelike, TimeZone, Utc};
use clap::{Parser, Subcommand};
use common::{Result, SECRET, WireCounts, graphql, scalar, start_proxy};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;
use servicegraph::{app::Application, config::Config, graphql::ids::encode};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates database `name` and writes the data set into it (incidents first, then the CI graph).
    Generate {
        /// PostgreSQL server URL without database.
        #[arg(long)]
        postgres: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 1_000_000)]
        incidents: i64,
        #[arg(long, default_value_t = 10_000)]
        open: i64,
        /// All CIs: 25 per customer plus the provider's CI graph.
        #[arg(long, default_value_t = 100_000)]
        cis: usize,
        #[arg(long, default_value_t = 300_000)]
        relationships: usize,
    },
    /// Prints the ids and ranges the load scripts use.
    Params {
        #[arg(long)]
        database_url: String,
    },
    /// Starts the binary through a counting proxy and prints the SQL statements per list request.
    Statements {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        postgres: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 18090)]
        port: u16,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Comma-separated support group ids (as in `params`).
        #[arg(long)]
        groups: String,
    },
    /// Opens WebSocket subscribers to `incidentChanged`, updates the incident and times the delivery.
    Ws {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        incident: String,
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The server's pid, for its RSS.
        #[arg(long)]
        pid: u32,
    },
    /// Creates the Alertmanager integration, or reports the endpoint missing.
    AlertSetup {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        organization: String,
        #[arg(long)]
        service: String,
    },
    /// Start-up to ready on SQLite (a new file, then the same file again).
    Startup {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value_t = 18091)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Generate {
            postgres,
            name,
            incidents,
            open,
            cis,
            relationships,
        } => generate(&postgres, &name, incidents, open, cis, relationships).await,
        Cmd::Params { database_url } => params(&database_url).await,
        Cmd::Statements {
            bin,
            postgres,
            name,
            port,
            runs,
            groups,
        } => statements(&bin, &postgres, &name, port, runs, &groups).await,
        Cmd::Ws {
            url,
            token,
            incident,
            subscribers,
            rounds,
            pid,
        } => ws(&url, &token, &incident, subscribers, rounds, pid).await,
        Cmd::AlertSetup {
            url,
            token,
            organization,
            service,
        } => alert_setup(&url, &token, &organization, &service).await,
        Cmd::Startup { bin, port } => startup(&bin, port).await,
    }
}

/// The server's resident set (VmRSS) in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn generate(
    postgres: &str,
    name: &str,
    incidents: i64,
    open: i64,
    cis: usize,
    relationships: usize,
) -> Result<()> {
    let base = postgres.trim_end_matches('/');
    let customer_cis =
        (common::incidents::CUSTOMERS * common::incidents::CIS_PER_CUSTOMER) as usize;
    let graph_cis = cis.saturating_sub(customer_cis);
    let admin = Database::connect(format!("{base}/postgres")).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = format!("{base}/{name}");
    let dir = tempfile::tempdir()?;
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.auth.hs256_secret = Some(SECRET.into());
    config.dev.seed_demo = false;
    config.sla.worker_enabled = false;
    config.database.url = Some(url.clone());
    let provider_code = config.provider.code.clone();
    let app = Application::build(config).await?;
    let base_url = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let db = Database::connect(&url).await?;
    let token = common::admin_token(&provider_code, 7200)?;
    let client = reqwest::Client::new();

    let started = Instant::now();
    common::incidents::generate(
        &db,
        &client,
        &base_url,
        &token,
        &provider_code,
        incidents,
        open,
    )
    .await?;
    let incidents_done = started.elapsed();
    eprintln!(
        "generated {incidents} incidents in {:.1} s",
        incidents_done.as_secs_f64()
    );
    let services = ids(
        &db,
        "SELECT id FROM services ORDER BY id LIMIT 20".to_owned(),
    )
    .await?;
    common::cmdb::generate(
        &db,
        graph_cis,
        relationships,
        &provider_code,
        Some(&services),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "generated the CI graph ({graph_cis} CIs, {relationships} relationships) in {:.1} s",
        seconds - incidents_done.as_secs_f64()
    );
    // The marker `bench/run.sh` looks for before reusing the database.
    db.execute_unprepared(&format!(
        "CREATE TABLE loadbench_meta AS SELECT {incidents}::bigint AS incidents, \
         {cis}::bigint AS cis, {relationships}::bigint AS relationships, \
         now() AS generated_at, {seconds:.1}::float8 AS seconds"
    ))
    .await?;
    println!("GENERATE_SECONDS={seconds:.0}");
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

async fn ids(db: &DatabaseConnection, sql: String) -> Result<Vec<i64>> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get_by_index::<i64>(0)?))
        .collect()
}

async fn params(url: &str) -> Result<()> {
    let db = Database::connect(url).await?;
    let min = scalar(&db, "SELECT MIN(id) FROM incidents").await?;
    let max = scalar(&db, "SELECT MAX(id) FROM incidents").await?;
    // The generated incidents (no alert key) hold consecutive ids; incidents
    // the ingest scenario raised leave gaps (rolled-back inserts), which
    // scenario 1 would answer NOT_FOUND.
    let generated_max =
        scalar(&db, "SELECT MAX(id) FROM incidents WHERE dedup_key IS NULL").await?;
    let groups = ids(&db, "SELECT id FROM support_groups ORDER BY id".into()).await?;
    let groups: Vec<String> = groups
        .iter()
        .map(|g| encode("SupportGroup", *g).0)
        .collect();
    let core = scalar(
        &db,
        "SELECT id FROM configuration_items WHERE source = 'bench' AND external_id = 'ci-000000'",
    )
    .await?;
    let customer = scalar(
        &db,
        "SELECT MIN(id) FROM organizations WHERE kind = 'customer'",
    )
    .await?;
    let service = scalar(&db, "SELECT MIN(id) FROM services").await?;
    // The month of 180 days ago, as incident_bench reports it.
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
    println!("INCIDENT_MIN={min}");
    println!("INCIDENT_MAX={generated_max}");
    println!("OPEN_INCIDENT={}", encode("Incident", max).0);
    println!("GROUP_IDS={}", groups.join(","));
    println!("CORE_CI={}", encode("ConfigurationItem", core).0);
    println!("CUSTOMER_ID={}", encode("Organization", customer).0);
    println!("SERVICE_ID={}", encode("Service", service).0);
    println!("REPORT_FROM={}", from.format("%Y-%m-%dT%H:%M:%SZ"));
    println!("REPORT_TO={}", to.format("%Y-%m-%dT%H:%M:%SZ"));
    println!("REPORT_MONTH={}", from.format("%Y-%m"));
    Ok(())
}

/// The portal's incident list, as `bench/wrk/list.lua` sends it.
const LIST: &str = "query($f: IncidentFilter) { incidents(first: 50, filter: $f) { edges { node { id number title state priority service { name } assignee { displayName } assignmentGroup { name } affectedCis { name status } clocks { kind targetSeconds dueAt businessElapsedSeconds remainingSeconds paused met breachedAt } } } pageInfo { hasNextPage endCursor } } }";

/// Spawns the release binary with the benchmark's settings. The SLA breach
/// worker is off: its periodic scans would be counted with the requests'
/// statements.
fn spawn_server(bin: &PathBuf, port: u16, database_url: Option<&str>, dir: &str) -> Result<Child> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("SERVICEGRAPH_SLA__WORKER_ENABLED", "false")
        .env("SERVICEGRAPH_LISTEN", format!("127.0.0.1:{port}"))
        .env("SERVICEGRAPH_DATA_DIR", dir)
        .env("SERVICEGRAPH_AUTH__HS256_SECRET", SECRET)
        .env("SERVICEGRAPH_DEV__SEED_DEMO", "false")
        .env("SERVICEGRAPH_LOG__FILTER", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("SERVICEGRAPH_DATABASE__URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    Ok(cmd.spawn()?)
}

/// Polls `/readyz` every 2 ms; the time from `since` to the first 200.
async fn wait_ready(port: u16, since: Instant, limit: Duration) -> Result<Duration> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(since.elapsed());
        }
        if since.elapsed() > limit {
            return Err("the server did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn statements(
    bin: &PathBuf,
    postgres: &str,
    name: &str,
    port: u16,
    runs: usize,
    groups: &str,
) -> Result<()> {
    let url = url::Url::parse(postgres)?;
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
    let mut child = spawn_server(
        bin,
        port,
        Some(proxied.as_str()),
        &dir.path().to_string_lossy(),
    )?;
    let result = async {
        wait_ready(port, Instant::now(), Duration::from_secs(60)).await?;
        let token = common::admin_token("provider", 3600)?;
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let groups: Vec<&str> = groups.split(',').collect();
        let mut seen = Vec::new();
        for i in 0..runs + 3 {
            let state = if i % 2 == 0 {
                "ASSIGNED"
            } else {
                "IN_PROGRESS"
            };
            let vars =
                json!({ "f": { "state": [state], "assignmentGroupId": groups[i % groups.len()] } });
            let before = counts.read();
            let (_, body) = graphql(&client, &base, &token, LIST, vars).await?;
            let n = counts.read().0 - before.0;
            let nodes = body["data"]["incidents"]["edges"]
                .as_array()
                .map_or(0, Vec::len);
            if i >= 3 {
                seen.push(n);
            }
            if nodes == 0 {
                return Err::<_, Box<dyn std::error::Error>>(
                    "the list answered no incidents".into(),
                );
            }
        }
        seen.sort_unstable();
        let (lo, hi) = (seen[0], seen[seen.len() - 1]);
        let mode = {
            let mut best = (0, 0);
            for v in &seen {
                let c = seen.iter().filter(|x| *x == v).count();
                if c > best.1 {
                    best = (*v, c);
                }
            }
            best.0
        };
        println!("STATEMENTS_MIN={lo}");
        println!("STATEMENTS_MAX={hi}");
        println!("STATEMENTS_MODE={mode}");
        println!("STATEMENTS_RUNS={}", seen.len());
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn ws(
    url: &str,
    token: &str,
    incident: &str,
    subscribers: usize,
    rounds: usize,
    pid: u32,
) -> Result<()> {
    let ws_url = format!(
        "{}/graphql/ws",
        url.replacen("http://", "ws://", 1).trim_end_matches('/')
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let sub = json!({
        "id": "1",
        "type": "subscribe",
        "payload": {
            "query": "subscription($f: IncidentChangedFilter) { incidentChanged(filter: $f) { kind changedFields incident { id number title version } } }",
            "variables": { "f": { "incidentId": incident } }
        }
    })
    .to_string();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }).to_string();
    let started = Instant::now();
    for _ in 0..subscribers {
        let (tx, ready_tx, gate) = (tx.clone(), ready_tx.clone(), gate.clone());
        let (ws_url, sub, init) = (ws_url.clone(), sub.clone(), init.clone());
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let opened = async {
                let mut req = ws_url.as_str().into_client_request().ok()?;
                req.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static("graphql-transport-ws"),
                );
                let (mut socket, _) = tokio_tungstenite::connect_async(req).await.ok()?;
                socket.send(Message::Text(init.into())).await.ok()?;
                loop {
                    match socket.next().await? {
                        Ok(Message::Text(t)) if t.contains("connection_ack") => break,
                        Ok(Message::Text(_)) | Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
                        _ => return None,
                    }
                }
                socket.send(Message::Text(sub.into())).await.ok()?;
                Some(socket)
            }
            .await;
            drop(permit);
            let Some(mut socket) = opened else {
                let _ = ready_tx.send(false);
                return;
            };
            let _ = ready_tx.send(true);
            while let Some(Ok(msg)) = socket.next().await {
                if let Message::Text(t) = msg {
                    if t.contains("\"next\"") {
                        let _ = tx.send(Instant::now());
                    } else if t.contains("\"ping\"") {
                        let _ = socket
                            .send(Message::Text(r#"{"type":"pong"}"#.into()))
                            .await;
                    }
                }
            }
        });
    }
    drop(tx);
    drop(ready_tx);
    let (mut ok, mut failed) = (0usize, 0usize);
    while ok + failed < subscribers {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(true)) => ok += 1,
            Ok(Some(false)) => failed += 1,
            _ => break,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!("{ok} subscribers connected ({failed} failed) in {connect_secs:.1} s");
    // A subscription has no acknowledgement: give the server time to register them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_connected = rss_kb(pid);
    let mut peak = rss_connected;

    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut delivered_min = usize::MAX;
    for round in 0..rounds {
        let (_, body) = graphql(
            &client,
            url,
            token,
            "query($id: ID!) { incident(id: $id) { version } }",
            json!({ "id": incident }),
        )
        .await?;
        let version = body["data"]["incident"]["version"].as_i64().unwrap_or(1);
        let sent = Instant::now();
        graphql(
            &client,
            url,
            token,
            "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { version } }",
            json!({ "i": { "id": incident, "version": version, "title": format!("loadbench round {round} {}", Utc::now().timestamp_millis()) } }),
        )
        .await?;
        let mut got = 0;
        while got < ok {
            match tokio::time::timeout_at((sent + Duration::from_secs(10)).into(), rx.recv()).await
            {
                Ok(Some(at)) => {
                    latencies.push(at.saturating_duration_since(sent));
                    got += 1;
                }
                _ => break,
            }
        }
        peak = peak.max(rss_kb(pid));
        delivered_min = delivered_min.min(got);
        eprintln!("round {round}: {got} of {ok} subscribers got the update");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(f64::NAN, |d| common::ms(*d))
    };
    println!("WS_CONNECTED={ok}");
    println!("WS_FAILED={failed}");
    println!("WS_CONNECT_SECONDS={connect_secs:.1}");
    println!("WS_ROUNDS={rounds}");
    println!("WS_DELIVERED_MIN={delivered_min}");
    println!("WS_P50_MS={:.1}", pct(0.5));
    println!("WS_P99_MS={:.1}", pct(0.99));
    println!("WS_MAX_MS={:.1}", pct(1.0));
    println!("WS_RSS_CONNECTED_KB={rss_connected}");
    println!("WS_RSS_PEAK_KB={peak}");
    Ok(())
}

/// THE ONE PLACE to adjust when the Alertmanager ingest lands on main: how an
/// admin creates the integration and what the sender authenticates with.
/// Prints `ALERT_STATUS=404` when `POST /ingest/alertmanager` does not exist,
/// otherwise `ALERT_SECRET=<secret>` for `Authorization: Bearer <secret>`.
async fn alert_setup(url: &str, token: &str, organization: &str, service: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let probe = client
        .post(format!("{url}/ingest/alertmanager"))
        .bearer_auth("probe")
        .json(&json!({ "version": "4", "alerts": [] }))
        .send()
        .await?;
    if probe.status() == reqwest::StatusCode::NOT_FOUND {
        println!("ALERT_STATUS=404");
        return Ok(());
    }
    // The default service must be one the customer subscribes to (an error
    // here means it already does).
    let _ = graphql(
        &client,
        url,
        token,
        "mutation($s: ID!, $c: ID!) { subscribeCustomer(serviceId: $s, customerId: $c) { __typename } }",
        json!({ "s": service, "c": organization }),
    )
    .await;
    let (_, body) = graphql(
        &client,
        url,
        token,
        "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { integration { id } secret } }",
        json!({ "i": { "organizationId": organization, "name": format!("loadbench {}", Utc::now().timestamp_millis()), "kind": "ALERTMANAGER", "defaultServiceId": service } }),
    )
    .await?;
    let secret = body["data"]["createIntegration"]["secret"]
        .as_str()
        .ok_or("createIntegration answered no secret")?;
    println!("ALERT_STATUS={}", probe.status().as_u16());
    println!("ALERT_SECRET={secret}");
    Ok(())
}

async fn startup(bin: &PathBuf, port: u16) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().to_string_lossy().to_string();
    let mut results = Vec::new();
    for label in ["COLD", "WARM"] {
        let since = Instant::now();
        let mut child = spawn_server(bin, port, None, &path)?;
        let ready = wait_ready(port, since, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_kb(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let ready = ready?;
        results.push((label, ready, rss));
    }
    for (label, ready, rss) in results {
        println!("STARTUP_{label}_MS={:.0}", common::ms(ready));
        println!("STARTUP_{label}_RSS_KB={rss}");
    }
    Ok(())
}
