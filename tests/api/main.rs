//! Integration tests: the real server over real HTTP and WebSocket, each test on
//! its own database (SQLite, or PostgreSQL with SERVICEGRAPH_TEST_POSTGRES).
//! One binary with a module per process or concern, so the suite links once.

mod fixtures;
mod helpers;
mod proxy;

mod audit;
mod auth;
mod budget;
mod catalogue;
mod cmdb;
mod directory;
mod faults;
mod graphiql;
mod http;
mod idempotency;
mod incident;
mod ingest;
mod limits;
mod metrics;
mod pagination;
mod problem;
mod schema;
mod server;
mod sla;
mod subscriptions;
mod traces;
