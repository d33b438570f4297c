//! Times the SLA breach worker on an existing database (PostgreSQL or
//! SQLite): migrates it (timed), then runs passes of `worker::pass` at the
//! current time until one finds nothing due, and, with `--recheck`, the
//! one-off recomputation a change of the warning thresholds causes (which
//! reads every running clock by id, as every pass used to).
//!
//! ```text
//! DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/sg_worker_copy \
//!     cargo run --release --example worker_pass -- --passes 3 --recheck
//! ```
//! Do not point it at a database you want to keep unchanged: the migration
//! and the passes write to it.

use std::time::{Duration, Instant};

use clap::Parser;
use servicegraph::{
    config::Config,
    db,
    events::EventBus,
    processes::{directory, sla::worker},
    records::{Store, now},
};

#[derive(Parser)]
struct Args {
    /// Passes to run after the migration.
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Then time the recomputation after a change of thresholds.
    #[arg(long)]
    recheck: bool,
}

fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = Config::load(None)?;
    let database = db::connect(&config).await?;
    let wall = Instant::now();
    db::migrate_up(&database).await?;
    println!(
        "migrations: {:.1} s (load {})",
        wall.elapsed().as_secs_f64(),
        load()
    );
    let provider =
        directory::ensure_provider(&database, &config.provider.code, &config.provider.name)
            .await
            .map_err(|e| e.message())?;
    let actor = directory::system_principal(provider);
    let (_running, never_stop) = tokio::sync::watch::channel(false);
    let store = Store::new(database, EventBus::default(), &config.sla);
    // As a worker starting: records the thresholds (or recomputes).
    worker::reschedule_for_thresholds(&store, now())
        .await
        .map_err(|e| e.message())?;
    for i in 1..=args.passes {
        let (wall, cpu) = (Instant::now(), cpu_time());
        let fired = worker::pass(&store, &actor, now(), &never_stop)
            .await
            .map_err(|e| e.message())?;
        println!(
            "pass {i}: {fired} events, wall {:.0} ms, CPU {:.0} ms (load {})",
            wall.elapsed().as_secs_f64() * 1000.0,
            cpu_time().saturating_sub(cpu).as_secs_f64() * 1000.0,
            load()
        );
    }
    if args.recheck {
        let mut other = store.clone();
        let mut changed: Vec<u32> = config.sla.warning_thresholds.clone();
        changed.insert(0, 50);
        changed.dedup();
        other.sla_thresholds = changed.as_slice().into();
        for (label, s) in [("to 50,75,90", &other), ("back", &store)] {
            let (wall, cpu) = (Instant::now(), cpu_time());
            let moved = worker::reschedule_for_thresholds(s, now())
                .await
                .map_err(|e| e.message())?;
            println!(
                "threshold change {label}: {moved} clocks moved, wall {:.0} ms, CPU {:.0} ms (load {})",
                wall.elapsed().as_secs_f64() * 1000.0,
                cpu_time().saturating_sub(cpu).as_secs_f64() * 1000.0,
                load()
            );
        }
    }
    Ok(())
}
