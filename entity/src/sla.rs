use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::enums::{AgreementKind, AgreementStatus};

/// A service level agreement (or OLA): customer, service, calendar, validity
/// period, and targets per priority in business seconds.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "slas")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub kind: AgreementKind,
    pub status: AgreementStatus,
    /// The customer organization (for an OLA, the internal organization).
    pub customer_id: i64,
    pub service_id: i64,
    pub calendar_id: i64,
    pub valid_from: DateTimeUtc,
    /// Exclusive end; open-ended when null.
    pub valid_to: Option<DateTimeUtc>,
    pub respond_p1: i64,
    pub respond_p2: i64,
    pub respond_p3: i64,
    pub respond_p4: i64,
    pub resolve_p1: i64,
    pub resolve_p2: i64,
    pub resolve_p3: i64,
    pub resolve_p4: i64,
    /// Agreed availability in percent, e.g. 99.9.
    pub availability_target: f64,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
