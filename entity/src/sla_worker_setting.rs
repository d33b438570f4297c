use sea_orm::entity::prelude::*;

/// What the breach worker's stored instants (`sla_clocks.next_check_at`) were
/// computed with: one row, id 1.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sla_worker_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// The warning thresholds (percent), comma-separated, ascending.
    pub warning_thresholds: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
