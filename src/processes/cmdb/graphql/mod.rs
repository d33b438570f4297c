//! Configuration management API: CI classes, configuration items,
//! relationships, service composition, impact analysis, bulk upsert, history
//! and `ciChanged`, one file per concern, merged here into the process's
//! query, mutation and subscription roots.

mod cis;
mod classes;
mod history;
mod impact;
mod relationships;
mod service_links;
mod subscription;
mod upsert;

use async_graphql::MergedObject;

pub use cis::*;
pub use classes::*;
pub use history::*;
pub use impact::*;
pub use relationships::*;
pub use service_links::*;
pub use subscription::*;
pub use upsert::*;

/// The process's queries; the merge order is the field order of the SDL.
#[derive(MergedObject, Default)]
pub struct CmdbQuery(ClassQuery, CiQuery, ImpactQuery, HistoryQuery);

/// The process's mutations; the merge order is the field order of the SDL.
#[derive(MergedObject, Default)]
pub struct CmdbMutation(
    ClassMutation,
    CiMutation,
    RelationshipMutation,
    ServiceLinkMutation,
    UpsertMutation,
);
