//! `servicegraph`: the command line. Parses arguments, loads configuration,
//! starts tracing, and runs the chosen subcommand.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use servicegraph::{
    app::Application,
    auth::{Claims, mint_hs256},
    config::Config,
    db, dev,
    events::EventBus,
    processes::directory,
    records::Store,
    telemetry,
};

#[derive(Parser)]
#[command(
    name = "servicegraph",
    version,
    about = "A GraphQL API server for IT service management (ISO/IEC 20000-1)"
)]
struct Cli {
    /// A TOML configuration file (also SERVICEGRAPH_CONFIG).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply or inspect database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Mint a JWT signed with the configured HS256 secret (or the development secret).
    Token {
        /// The `sub` claim.
        #[arg(long, default_value = "dev-admin")]
        subject: String,
        /// Organization code (`tenant` claim); defaults to the provider's.
        #[arg(long)]
        tenant: Option<String>,
        /// A role: admin, agent, requester, integration. Repeatable.
        #[arg(long = "role", default_value = "admin")]
        roles: Vec<String>,
        /// For agents: organization codes served (`*` for all). Repeatable.
        #[arg(long = "org")]
        orgs: Vec<String>,
        /// Lifetime, e.g. `1h`, `30m`, `7d`.
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The server's data directory, where development mode keeps its
        /// secret (overrides `data_dir`; the default is `data` in the current directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Load data into the database.
    Seed {
        /// The demo data set (only into a database without services).
        #[arg(long, required = true)]
        demo: bool,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back the last migration (or N).
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("servicegraph: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("servicegraph: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // Set up before the runtime: the trace exporter's HTTP client is a blocking one.
    let telemetry = match &command {
        Command::Serve => match telemetry::init_serving(&config.log, &config.traces) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("servicegraph: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let result = runtime.block_on(run(command, config));
    drop(runtime);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("servicegraph: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => serve(config).await,
        Command::Schema { output } => {
            let sdl = servicegraph::graphql::sdl();
            match output {
                Some(path) => std::fs::write(&path, sdl)
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{sdl}");
                    Ok(())
                }
            }
        }
        Command::Migrate { action } => {
            telemetry::init(&config.log);
            let database = db::connect(&config).await?;
            use migration::MigratorTrait;
            match action {
                MigrateAction::Up => migration::Migrator::up(&database, None)
                    .await
                    .map_err(|e| e.to_string())?,
                MigrateAction::Down { steps } => migration::Migrator::down(&database, Some(steps))
                    .await
                    .map_err(|e| e.to_string())?,
                MigrateAction::Status => {
                    for m in migration::Migrator::get_migration_with_status(&database)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        println!("{:<40} {}", m.name(), m.status());
                    }
                }
            }
            Ok(())
        }
        Command::Token {
            subject,
            tenant,
            roles,
            orgs,
            ttl,
            data_dir,
        } => {
            let secret = match &config.auth.hs256_secret {
                Some(s) => s.clone(),
                None if config.auth.is_unconfigured() => {
                    dev::token_secret(data_dir.as_ref().unwrap_or(&config.data_dir))?
                }
                None => return Err("`token` signs with HS256: set auth.hs256_secret (SERVICEGRAPH_AUTH__HS256_SECRET)".into()),
            };
            let now = dev::unix_now();
            let claims = Claims {
                sub: subject,
                tenant: tenant.unwrap_or_else(|| config.provider.code.clone()),
                roles,
                orgs,
                exp: now + ttl.as_secs(),
                iat: Some(now),
                iss: config.auth.issuer.clone(),
                aud: config.auth.audience.clone(),
            };
            println!("{}", mint_hs256(&secret, &claims)?);
            Ok(())
        }
        Command::Seed { demo: _ } => {
            telemetry::init(&config.log);
            let database = db::connect(&config).await?;
            db::migrate_up(&database).await.map_err(|e| e.to_string())?;
            let provider =
                directory::ensure_provider(&database, &config.provider.code, &config.provider.name)
                    .await
                    .map_err(|e| e.message())?;
            let store = Store::new(database, EventBus::default(), &config.sla);
            if servicegraph::seed::seed_demo_if_empty(&store, provider)
                .await
                .map_err(|e| e.message())?
            {
                println!("demo data loaded");
            } else {
                println!("the database already has services; demo data not loaded");
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, elapsed_ms = started.elapsed().as_millis() as u64, "servicegraph is listening");
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!(addr = %metrics, "metrics are served at /metrics on this address");
    }
    if let Some(token) = &app.dev_admin_token {
        println!();
        println!("  ServiceGraph is running in DEVELOPMENT MODE.");
        println!("  GraphiQL:    http://{addr}/graphql");
        println!("  Admin token (add as header  Authorization: Bearer <token>):");
        println!();
        println!("  {token}");
        println!();
    }
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
