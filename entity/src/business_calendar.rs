use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A business calendar: time zone, working windows per weekday, holidays.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "business_calendars")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The organization that keeps the calendar (usually the provider).
    pub organization_id: i64,
    pub name: String,
    pub name_key: String,
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// `[{ "weekday": "mon", "start": "09:00", "end": "17:00", "ends_next_day": false }]`
    #[sea_orm(column_type = "JsonBinary")]
    pub windows: Json,
    /// `[{ "date": "2026-12-25", "yearly": true, "name": "Christmas" }]`
    #[sea_orm(column_type = "JsonBinary")]
    pub holidays: Json,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
