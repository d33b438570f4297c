//! ServiceGraph: a GraphQL API server for IT service management (ISO/IEC 20000-1).

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod ingest;
pub mod relay;
pub mod seed;
pub mod telemetry;

/// mimalloc instead of the system allocator for every binary built on this
/// crate (the server, its tests and benchmarks): a monitoring delivery
/// allocates and frees thousands of short-lived strings and JSON values,
/// and glibc's malloc spent about half the server's CPU there (perf, see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
