//! One folder per ISO/IEC 20000-1 process: its rules and store (no GraphQL),
//! its GraphQL API (`graphql`), and its registrations (`mod.rs`).

pub mod catalogue;
pub mod cmdb;
pub mod directory;
pub mod incident;
pub mod monitoring;
pub mod problem;
pub mod sla;
