//! ServiceGraph: a GraphQL API server for IT service management (ISO/IEC 20000-1).

pub mod app;
pub mod auth;
pub mod budget;
pub mod config;
pub mod db;
pub mod dev;
pub mod error;
pub mod events;
pub mod graphql;
pub mod ingest;
pub mod processes;
pub mod records;
pub mod relay;
pub mod seed;
pub mod telemetry;

/// jemalloc on Linux: glibc's malloc spent about a third of the server's CPU
/// time under monitoring ingestion (consolidating and splitting free chunks).
/// Tuned for a small idle footprint (`.cargo/config.toml`): one arena per
/// core, freed pages returned within a second.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
