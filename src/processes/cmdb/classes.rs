//! CI classes: the standard ones every installation starts with, and the
//! admin's additions and changes (code, name, attribute schema).

use std::collections::HashSet;

use entity::ci_class;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use super::attributes::{AttributeDefinition, AttributeType, check_definitions, def, enum_def};
use crate::records::{
    Store, audit, check_version, clean_name, clean_text, conflict_on_unique, find_where, now,
    save_versioned,
};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
};

fn clean_class_code(code: &str) -> AppResult<String> {
    let code = code.trim().to_ascii_lowercase();
    let ok = (2..=64).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(code)
    } else {
        Err(AppError::invalid_field(
            "code",
            "code must be 2 to 64 characters of letters, digits, '_' or '-', starting with a letter",
        ))
    }
}

/// The classes every installation starts with.
fn standard_classes() -> Vec<(&'static str, &'static str, Vec<AttributeDefinition>)> {
    use AttributeType::*;
    vec![
        (
            "server",
            "Server",
            vec![
                def("hostname", String, true),
                def("cpuCount", Integer, false),
                def("memoryGb", Decimal, false),
                enum_def("os", false, &["linux", "windows", "unix", "other"]),
                def("serialNumber", String, false),
                def("purchasedAt", DateTime, false),
            ],
        ),
        (
            "virtual_machine",
            "Virtual machine",
            vec![
                def("hostname", String, true),
                def("cpuCount", Integer, false),
                def("memoryGb", Decimal, false),
                enum_def("os", false, &["linux", "windows", "unix", "other"]),
            ],
        ),
        (
            "database",
            "Database",
            vec![
                enum_def(
                    "engine",
                    true,
                    &[
                        "postgresql",
                        "mysql",
                        "oracle",
                        "sqlserver",
                        "sqlite",
                        "other",
                    ],
                ),
                def("engineVersion", String, false),
                def("sizeGb", Decimal, false),
                def("replicated", Boolean, false),
            ],
        ),
        (
            "application",
            "Application",
            vec![
                def("appVersion", String, false),
                def("vendor", String, false),
                def("url", String, false),
            ],
        ),
        (
            "network_device",
            "Network device",
            vec![
                enum_def(
                    "deviceType",
                    true,
                    &[
                        "router",
                        "switch",
                        "firewall",
                        "load_balancer",
                        "access_point",
                    ],
                ),
                def("managementIp", String, false),
                def("portCount", Integer, false),
            ],
        ),
        (
            "storage",
            "Storage",
            vec![
                enum_def("storageType", false, &["san", "nas", "object", "block"]),
                def("capacityTb", Decimal, false),
            ],
        ),
        (
            "cloud_resource",
            "Cloud resource",
            vec![
                enum_def("provider", true, &["aws", "azure", "gcp", "other"]),
                def("region", String, false),
                def("resourceId", String, false),
            ],
        ),
        (
            "business_service_component",
            "Business service component",
            vec![def("businessOwner", String, false)],
        ),
    ]
}

/// Creates the standard classes that do not exist yet (an admin's changes to them are kept).
pub async fn ensure_standard_classes(db: &DatabaseConnection, provider_id: i64) -> AppResult<()> {
    let existing: HashSet<String> = ci_class::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.code)
        .collect();
    let missing: Vec<_> = standard_classes()
        .into_iter()
        .filter(|(code, ..)| !existing.contains(*code))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let p = crate::processes::directory::system_principal(provider_id);
    let txn = begin_write(db).await?;
    let at = now();
    for (code, name, defs) in missing {
        audit::insert(
            &txn,
            &p,
            ci_class::ActiveModel {
                code: Set(code.into()),
                name: Set(name.into()),
                description: Set(None),
                attributes: Set(serde_json::to_value(defs).map_err(AppError::internal)?),
                version: Set(1),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// A class by id, or `NOT_FOUND` (classes are shared by every tenant).
pub async fn find_class<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<ci_class::Model> {
    find_where::<ci_class::Entity, _>(db, id, "configuration item class", |_| true).await
}

pub struct NewCiClass {
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub attributes: Vec<AttributeDefinition>,
}

/// Adds a CI class (admin).
pub async fn create_class(
    store: &Store,
    p: &Principal,
    input: NewCiClass,
) -> AppResult<ci_class::Model> {
    let code = clean_class_code(&input.code)?;
    let (name, _) = clean_name("name", &input.name, 200)?;
    let description = clean_text("description", input.description, 10_000)?;
    let defs = check_definitions(input.attributes)?;
    let txn = begin_write(&store.db).await?;
    if ci_class::Entity::find()
        .filter(ci_class::Column::Code.eq(&code))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "a configuration item class with code {code:?} already exists"
        )));
    }
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        ci_class::ActiveModel {
            code: Set(code),
            name: Set(name),
            description: Set(description),
            attributes: Set(serde_json::to_value(defs).map_err(AppError::internal)?),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        conflict_on_unique(
            e,
            "a configuration item class with this code already exists",
        )
    })?;
    txn.commit().await?;
    Ok(created)
}

pub struct CiClassPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    /// Replaces the whole schema. Existing CIs are validated against it on their next change.
    pub attributes: Option<Vec<AttributeDefinition>>,
}

/// Changes a CI class (admin).
pub async fn update_class(
    store: &Store,
    p: &Principal,
    input: CiClassPatch,
) -> AppResult<ci_class::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_class(&txn, input.id).await?;
    check_version("configuration item class", input.version, before.version)?;
    let mut next = before.clone();
    if let Some(name) = &input.name {
        next.name = clean_name("name", name, 200)?.0;
    }
    if let Some(description) = input.description {
        next.description = clean_text("description", description, 10_000)?;
    }
    if let Some(defs) = input.attributes {
        next.attributes =
            serde_json::to_value(check_definitions(defs)?).map_err(AppError::internal)?;
    }
    let updated = save_versioned(&txn, p, &before, next).await?;
    txn.commit().await?;
    Ok(updated)
}

pub(super) async fn class_by_code<C: ConnectionTrait>(
    db: &C,
    code: &str,
) -> AppResult<ci_class::Model> {
    ci_class::Entity::find()
        .filter(ci_class::Column::Code.eq(code.trim().to_ascii_lowercase()))
        .one(db)
        .await?
        .ok_or_else(|| {
            AppError::invalid_field(
                "classCode",
                format!("unknown configuration item class {code:?}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_codes_are_lowercased_identifiers() {
        assert_eq!(
            clean_class_code("  Load_Balancer-2 ").unwrap(),
            "load_balancer-2"
        );
        for bad in ["s", "2server", "web server", "_server", &"x".repeat(65)] {
            assert!(clean_class_code(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_standard_classes_follow_the_rules_they_impose() {
        let classes = standard_classes();
        let mut codes = HashSet::new();
        for (code, _, defs) in classes {
            assert_eq!(clean_class_code(code).unwrap(), code);
            assert!(codes.insert(code), "{code} twice");
            assert_eq!(check_definitions(defs.clone()).unwrap(), defs);
        }
        assert!(codes.contains("server") && codes.contains("database"));
    }
}
