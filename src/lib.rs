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
