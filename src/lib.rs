//! ServiceGraph: a GraphQL API server for IT service management (ISO/IEC 20000-1).

/// mimalloc instead of the system allocator, for everything linking this
/// crate (the server, its tests and benchmarks): allocation is about a
/// quarter of the server's CPU under load, and glibc's malloc spent most of
/// that merging and splitting free chunks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
