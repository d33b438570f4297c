//! The GraphQL API: thin resolvers per process, merged into one schema.
//! Adding a process means adding its module and one entry in each merge below.

pub mod args;
pub mod audit;
pub mod context;
pub mod cost;
pub mod ids;
pub mod limits;
pub mod loaders;
pub mod metrics;
pub mod node;
pub mod pagination;

use std::sync::Arc;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::{
    config::GraphqlConfig,
    processes::{catalogue, cmdb, directory, incident, monitoring, problem, sla},
};

#[derive(MergedObject, Default)]
pub struct Query(
    node::NodeQuery,
    directory::graphql::DirectoryQuery,
    catalogue::graphql::CatalogueQuery,
    cmdb::graphql::CmdbQuery,
    sla::graphql::SlaQuery,
    sla::graphql::SlaReportQuery,
    incident::graphql::IncidentQuery,
    monitoring::graphql::MonitoringQuery,
    problem::graphql::ProblemQuery,
    audit::AuditQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    directory::graphql::DirectoryMutation,
    catalogue::graphql::CatalogueMutation,
    cmdb::graphql::CmdbMutation,
    sla::graphql::SlaMutation,
    incident::graphql::IncidentMutation,
    monitoring::graphql::MonitoringMutation,
    problem::graphql::ProblemMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    catalogue::graphql::CatalogueSubscription,
    cmdb::graphql::CmdbSubscription,
    incident::graphql::IncidentSubscription,
    sla::graphql::SlaSubscription,
    problem::graphql::ProblemSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema with its limits, without data: enough to print the SDL.
pub fn schema_builder(config: &GraphqlConfig) -> SchemaBuilder<Query, Mutation, Subscription> {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .register_output_type::<node::Node>()
    .limit_complexity(config.max_complexity)
    .limit_directives(config.max_directives_per_field)
    .extension(limits::DocumentLimits {
        max_directives: config.max_directives,
        depth: limits::DepthLimit {
            max: config.max_depth,
            max_introspection: config.max_introspection_depth,
        },
    })
    .disable_suggestions();
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// What the serving schema records about each operation. Each costs on
/// every operation (per-field spans the most), so each is added only when on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observe {
    /// Count operations by name and outcome ([`metrics::OperationMetrics`]).
    pub metrics: bool,
    /// A span per operation step and resolved field (async-graphql's `Tracing`).
    pub traces: bool,
}

/// The serving schema, with the store and loaders every resolver shares, and
/// the budget charged for each operation a WebSocket starts.
pub fn build_schema(
    config: &GraphqlConfig,
    data: context::SchemaData,
    observe: Observe,
) -> AppSchema {
    let mut builder = schema_builder(config);
    // Its request and subscribe hooks wrap the whole operation, so a refusal
    // by the limits or the budget is counted too.
    if observe.metrics {
        builder = builder.extension(metrics::OperationMetrics);
    }
    if observe.traces {
        builder = builder.extension(async_graphql::extensions::Tracing);
    }
    builder
        .extension(crate::budget::ChargeSessionOperations)
        .data(Arc::new(data))
        .finish()
}

/// The SDL portal teams code against (`schema.graphql`).
pub fn sdl() -> String {
    schema_builder(&GraphqlConfig::default()).finish().sdl()
}
