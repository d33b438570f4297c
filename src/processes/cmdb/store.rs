//! Configuration management (ISO/IEC 20000-1 8.2.5-8.2.6): CI classes and their
//! attribute schemas, configuration items, typed relationships, which CIs each
//! service consists of, impact analysis over the graph, the bulk upsert that
//! discovery tools call, and CIs as they were at a point in time.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use entity::{
    audit_event, ci_class, ci_relationship, configuration_item,
    enums::{CiEnvironment, CiStatus, OrganizationKind, RelationshipKind},
    organization, service, service_configuration_item, service_subscription, support_group,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, FromQueryResult, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder, Set,
    Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::processes::catalogue;
use crate::records::conflict_on_unique;
use crate::records::{Store, audit, check_version, clean_name, clean_text, now, save_versioned};
use crate::{
    auth::Principal,
    db::begin_write,
    error::{AppError, AppResult},
    events::{ChangeKind, CiChanged, DomainEvent},
};

/// The most CIs one `upsertConfigurationItems` call may carry.
pub const MAX_UPSERT_ITEMS: usize = 1_000;
/// The most relationships one `upsertConfigurationItems` call may carry.
pub const MAX_UPSERT_RELATIONSHIPS: usize = 5_000;
/// Impact analysis depth: the default and the ceiling.
pub const DEFAULT_IMPACT_DEPTH: i32 = 10;
pub const MAX_IMPACT_DEPTH: i32 = 50;
/// Rows per multi-row INSERT or IN list: well under both backends' bind limits.
const CHUNK: usize = 500;

// ---------------------------------------------------------------------------
// Attribute schemas
// ---------------------------------------------------------------------------

/// The type of a class attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeType {
    String,
    Integer,
    Decimal,
    Boolean,
    /// An RFC 3339 date-time string.
    DateTime,
    /// A string from `values`.
    Enum,
}

/// One typed attribute of a CI class, as stored in `ci_classes.attributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttributeType,
    #[serde(default)]
    pub required: bool,
    /// The allowed values of an `enum` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The attribute schema of a stored class (an unreadable one counts as empty).
pub fn class_schema(class: &ci_class::Model) -> Vec<AttributeDefinition> {
    serde_json::from_value(class.attributes.clone()).unwrap_or_default()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a class's attribute definitions: identifier names, unique, enum values only on enums.
pub fn check_definitions(defs: Vec<AttributeDefinition>) -> AppResult<Vec<AttributeDefinition>> {
    if defs.len() > 200 {
        return Err(AppError::invalid_field(
            "attributes",
            "a class may define at most 200 attributes",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(defs.len());
    for (i, mut d) in defs.into_iter().enumerate() {
        let field = format!("attributes[{i}].name");
        if !is_identifier(&d.name) {
            return Err(AppError::invalid_field(
                &field,
                format!(
                    "attribute name {:?} must start with a letter and hold only letters, digits and '_' (at most 64)",
                    d.name
                ),
            ));
        }
        if !seen.insert(d.name.clone()) {
            return Err(AppError::invalid_field(
                &field,
                format!("attribute {:?} is defined twice", d.name),
            ));
        }
        match (d.kind, &d.values) {
            (AttributeType::Enum, Some(v)) if !v.is_empty() && v.iter().all(|s| !s.is_empty()) => {}
            (AttributeType::Enum, _) => {
                return Err(AppError::invalid_field(
                    &format!("attributes[{i}].values"),
                    format!(
                        "enum attribute {:?} needs a non-empty list of values",
                        d.name
                    ),
                ));
            }
            (_, Some(_)) => {
                return Err(AppError::invalid_field(
                    &format!("attributes[{i}].values"),
                    format!("only enum attributes take values ({:?} does not)", d.name),
                ));
            }
            _ => {}
        }
        d.description = clean_text("description", d.description, 1_000)?;
        out.push(d);
    }
    Ok(out)
}

/// Validates a CI's attributes against its class. Unknown attributes, a wrong
/// type and a missing required attribute are `VALIDATION` errors whose field is
/// `attributes.<name>`. `null` values are dropped (an absent optional attribute).
pub fn validate_attributes(
    class: &ci_class::Model,
    defs: &[AttributeDefinition],
    value: Option<Value>,
) -> AppResult<Value> {
    let given = match value {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(AppError::invalid_field(
                "attributes",
                "attributes must be a JSON object of attribute name to value",
            ));
        }
    };
    let mut out = Map::new();
    for (name, v) in given {
        let field = format!("attributes.{name}");
        let Some(def) = defs.iter().find(|d| d.name == name) else {
            return Err(AppError::invalid_field(
                &field,
                format!(
                    "attribute {name:?} is not defined for class {:?}",
                    class.code
                ),
            ));
        };
        if v.is_null() {
            continue;
        }
        let ok = match def.kind {
            AttributeType::String => v.as_str().is_some_and(|s| s.chars().count() <= 4_000),
            AttributeType::Integer => v.is_i64(),
            AttributeType::Decimal => v.is_number(),
            AttributeType::Boolean => v.is_boolean(),
            AttributeType::DateTime => v
                .as_str()
                .is_some_and(|s| DateTime::parse_from_rfc3339(s).is_ok()),
            AttributeType::Enum => v.as_str().is_some_and(|s| {
                def.values
                    .as_ref()
                    .is_some_and(|vals| vals.iter().any(|x| x == s))
            }),
        };
        if !ok {
            let expected = match def.kind {
                AttributeType::String => "a string (at most 4000 characters)".to_owned(),
                AttributeType::Integer => "an integer".to_owned(),
                AttributeType::Decimal => "a number".to_owned(),
                AttributeType::Boolean => "true or false".to_owned(),
                AttributeType::DateTime => "an RFC 3339 date-time string".to_owned(),
                AttributeType::Enum => format!(
                    "one of {}",
                    def.values.as_deref().unwrap_or_default().join(", ")
                ),
            };
            return Err(AppError::invalid_field(
                &field,
                format!("attribute {name:?} must be {expected}, got {v}"),
            ));
        }
        out.insert(name, v);
    }
    if let Some(missing) = defs
        .iter()
        .find(|d| d.required && !out.contains_key(&d.name))
    {
        return Err(AppError::invalid_field(
            &format!("attributes.{}", missing.name),
            format!(
                "attribute {:?} is required for class {:?}",
                missing.name, class.code
            ),
        ));
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// CI classes
// ---------------------------------------------------------------------------

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

fn def(name: &str, kind: AttributeType, required: bool) -> AttributeDefinition {
    AttributeDefinition {
        name: name.into(),
        kind,
        required,
        values: None,
        description: None,
    }
}

fn enum_def(name: &str, required: bool, values: &[&str]) -> AttributeDefinition {
    AttributeDefinition {
        values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        ..def(name, AttributeType::Enum, required)
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

pub async fn find_class<C: ConnectionTrait>(db: &C, id: i64) -> AppResult<ci_class::Model> {
    ci_class::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("configuration item class"))
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

async fn class_by_code<C: ConnectionTrait>(db: &C, code: &str) -> AppResult<ci_class::Model> {
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

// ---------------------------------------------------------------------------
// Configuration items
// ---------------------------------------------------------------------------

/// The CIs a principal may see: those of its organizations.
pub fn ci_visibility(p: &Principal) -> Condition {
    crate::records::scope_to(p, configuration_item::Column::OrganizationId)
}

/// A CI by id, or `NOT_FOUND` when it does not exist or belongs to another tenant.
pub async fn find_ci<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<configuration_item::Model> {
    match configuration_item::Entity::find_by_id(id).one(db).await? {
        Some(ci) if p.can_see(ci.organization_id) => Ok(ci),
        _ => Err(AppError::not_found("configuration item")),
    }
}

/// A CI named in an input (`field`): missing or invisible is a `VALIDATION` error on that field.
async fn referenced_ci<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
    field: &str,
) -> AppResult<configuration_item::Model> {
    find_ci(db, p, id)
        .await
        .map_err(|_| AppError::invalid_field(field, "configuration item not found"))
}

/// Legal lifecycle moves: any non-retired status to any other; retired is final.
fn check_ci_transition(from: CiStatus, to: CiStatus) -> AppResult<()> {
    if from == CiStatus::Retired && to != CiStatus::Retired {
        return Err(AppError::invalid_field(
            "status",
            "a retired configuration item cannot change status (retired is final)",
        ));
    }
    Ok(())
}

fn clean_identity(
    source: Option<String>,
    external_id: Option<String>,
) -> AppResult<(Option<String>, Option<String>)> {
    let source = clean_text("source", source, 64)?;
    let external_id = clean_text("externalId", external_id, 200)?;
    match (&source, &external_id) {
        (Some(_), None) => Err(AppError::invalid_field(
            "externalId",
            "externalId is required with source",
        )),
        (None, Some(_)) => Err(AppError::invalid_field(
            "source",
            "source is required with externalId",
        )),
        _ => Ok((source, external_id)),
    }
}

/// The owner group must exist in an organization the caller may see (another tenant's looks missing).
async fn check_owner_group<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    group: Option<i64>,
) -> AppResult<()> {
    if let Some(g) = group
        && !support_group::Entity::find_by_id(g)
            .one(db)
            .await?
            .is_some_and(|g| p.can_see(g.organization_id))
    {
        return Err(AppError::invalid_field(
            "ownerGroupId",
            "support group not found",
        ));
    }
    Ok(())
}

async fn ensure_free_identity<C: ConnectionTrait>(
    db: &C,
    org: i64,
    source: &Option<String>,
    external_id: &Option<String>,
    except: Option<i64>,
) -> AppResult<()> {
    let (Some(source), Some(external_id)) = (source, external_id) else {
        return Ok(());
    };
    let clash = configuration_item::Entity::find()
        .filter(configuration_item::Column::OrganizationId.eq(org))
        .filter(configuration_item::Column::Source.eq(source))
        .filter(configuration_item::Column::ExternalId.eq(external_id))
        .one(db)
        .await?;
    match clash {
        Some(c) if Some(c.id) != except => Err(AppError::Conflict(format!(
            "a configuration item with source {source:?} and externalId {external_id:?} already exists in this organization"
        ))),
        _ => Ok(()),
    }
}

const IDENTITY_CLASH: &str =
    "a configuration item with this source and externalId already exists in this organization";

fn publish(store: &Store, kind: ChangeKind, ci: &configuration_item::Model, changed: Vec<String>) {
    store
        .events
        .publish(DomainEvent::ConfigurationItemChanged(CiChanged {
            kind,
            ci: ci.clone(),
            changed_fields: changed,
        }));
}

pub struct NewCi {
    pub organization_id: Option<i64>,
    pub class_code: String,
    pub name: String,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<i64>,
    pub attributes: Option<Value>,
    pub source: Option<String>,
    pub external_id: Option<String>,
}

/// Creates a CI (staff), its attributes validated against its class.
pub async fn create_ci(
    store: &Store,
    p: &Principal,
    input: NewCi,
) -> AppResult<configuration_item::Model> {
    let organization_id = input.organization_id.unwrap_or(p.organization_id);
    if !p.can_see(organization_id) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let (name, name_key) = clean_name("name", &input.name, 200)?;
    let (source, external_id) = clean_identity(input.source, input.external_id)?;
    let status = input.status.unwrap_or(CiStatus::InProduction);
    if status == CiStatus::Retired {
        return Err(AppError::invalid_field(
            "status",
            "a new configuration item cannot start retired",
        ));
    }
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(organization_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    let class = class_by_code(&txn, &input.class_code).await?;
    let attributes = validate_attributes(&class, &class_schema(&class), input.attributes)?;
    check_owner_group(&txn, p, input.owner_group_id).await?;
    ensure_free_identity(&txn, organization_id, &source, &external_id, None).await?;
    let at = now();
    let created = audit::insert(
        &txn,
        p,
        configuration_item::ActiveModel {
            organization_id: Set(organization_id),
            class_id: Set(class.id),
            name: Set(name),
            name_key: Set(name_key),
            status: Set(status),
            environment: Set(input.environment.unwrap_or(CiEnvironment::Production)),
            owner_group_id: Set(input.owner_group_id),
            attributes: Set(attributes),
            source: Set(source),
            external_id: Set(external_id),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| conflict_on_unique(e, IDENTITY_CLASH))?;
    txn.commit().await?;
    publish(store, ChangeKind::Created, &created, Vec::new());
    Ok(created)
}

pub struct CiPatch {
    pub id: i64,
    pub version: i32,
    pub name: Option<String>,
    pub class_code: Option<String>,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<Option<i64>>,
    /// Replaces all attributes (validated against the class, new or current).
    pub attributes: Option<Value>,
    pub source: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
}

impl CiPatch {
    pub fn retire(id: i64, version: i32) -> Self {
        Self {
            id,
            version,
            name: None,
            class_code: None,
            status: Some(CiStatus::Retired),
            environment: None,
            owner_group_id: None,
            attributes: None,
            source: None,
            external_id: None,
        }
    }
}

/// Updates a CI (staff) with a version check. Retiring it removes its
/// relationships and service links (each audited): a retired CI leaves the graph.
pub async fn update_ci(
    store: &Store,
    p: &Principal,
    input: CiPatch,
) -> AppResult<configuration_item::Model> {
    let txn = begin_write(&store.db).await?;
    let before = find_ci(&txn, p, input.id).await?;
    check_version("configuration item", input.version, before.version)?;
    if before.status == CiStatus::Retired && input.status != Some(CiStatus::Retired) {
        return Err(AppError::invalid_field(
            "status",
            "a retired configuration item cannot be changed",
        ));
    }
    let mut next = before.clone();
    if let Some(name) = &input.name {
        (next.name, next.name_key) = clean_name("name", name, 200)?;
    }
    let class = match &input.class_code {
        Some(code) => class_by_code(&txn, code).await?,
        None => find_class(&txn, before.class_id).await?,
    };
    next.class_id = class.id;
    if input.attributes.is_some() || input.class_code.is_some() {
        let given = input
            .attributes
            .clone()
            .unwrap_or_else(|| before.attributes.clone());
        next.attributes = validate_attributes(&class, &class_schema(&class), Some(given))?;
    }
    if let Some(status) = input.status {
        check_ci_transition(before.status, status)?;
        next.status = status;
    }
    crate::records::patch(&mut next.environment, input.environment);
    if let Some(group) = input.owner_group_id {
        check_owner_group(&txn, p, group).await?;
        next.owner_group_id = group;
    }
    if input.source.is_some() || input.external_id.is_some() {
        (next.source, next.external_id) = clean_identity(
            input.source.unwrap_or(before.source.clone()),
            input.external_id.unwrap_or(before.external_id.clone()),
        )?;
        ensure_free_identity(
            &txn,
            before.organization_id,
            &next.source,
            &next.external_id,
            Some(before.id),
        )
        .await?;
    }
    let retiring = before.status != CiStatus::Retired && next.status == CiStatus::Retired;
    let updated = save_versioned(&txn, p, &before, next)
        .await
        .map_err(|e| conflict_on_unique(e, IDENTITY_CLASH))?;
    if retiring {
        detach(&txn, p, before.id).await?;
    }
    txn.commit().await?;
    if updated != before {
        let kind = if retiring {
            ChangeKind::Retired
        } else {
            ChangeKind::Updated
        };
        publish(
            store,
            kind,
            &updated,
            audit::changed_fields(&before, &updated),
        );
    }
    Ok(updated)
}

/// Removes a CI's relationships and service links, with a `delete` audit event each.
async fn detach<C: ConnectionTrait>(db: &C, p: &Principal, ci_id: i64) -> AppResult<()> {
    let edges = ci_relationship::Entity::find()
        .filter(
            Condition::any()
                .add(ci_relationship::Column::SourceId.eq(ci_id))
                .add(ci_relationship::Column::TargetId.eq(ci_id)),
        )
        .all(db)
        .await?;
    for edge in edges {
        edge.clone().delete(db).await?;
        audit::record(db, p, "delete", Some(&edge), None).await?;
    }
    let links = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::CiId.eq(ci_id))
        .all(db)
        .await?;
    for link in links {
        link.clone().delete(db).await?;
        audit::record(db, p, "delete", Some(&link), None).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Relationships
// ---------------------------------------------------------------------------

/// The readable names of a relationship type: from the source, and from the target.
pub fn relationship_names(kind: RelationshipKind) -> (&'static str, &'static str) {
    match kind {
        RelationshipKind::DependsOn => ("depends on", "used by"),
        RelationshipKind::RunsOn => ("runs on", "runs"),
        RelationshipKind::HostedOn => ("hosted on", "hosts"),
        RelationshipKind::ConnectsTo => ("connects to", "connected from"),
        RelationshipKind::Contains => ("contains", "contained in"),
    }
}

/// `(dependent, dependency)` of an edge: the dependent goes down when the dependency does.
/// For `contains` the contained CI depends on its container; for every other type
/// the source depends on the target.
pub fn dependency_of(kind: RelationshipKind, source: i64, target: i64) -> (i64, i64) {
    match kind {
        RelationshipKind::Contains => (target, source),
        _ => (source, target),
    }
}

pub async fn find_relationship<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<ci_relationship::Model> {
    match ci_relationship::Entity::find_by_id(id).one(db).await? {
        Some(r) if p.can_see(r.organization_id) => Ok(r),
        _ => Err(AppError::not_found("relationship")),
    }
}

/// The edge-level rules shared by the single and the bulk path.
fn check_edge(
    source: &configuration_item::Model,
    target: &configuration_item::Model,
    source_field: &str,
    target_field: &str,
) -> AppResult<()> {
    if source.id == target.id {
        return Err(AppError::invalid_field(
            target_field,
            "a configuration item cannot relate to itself",
        ));
    }
    if source.organization_id != target.organization_id {
        return Err(AppError::invalid_field(
            target_field,
            "the configuration items belong to different organizations; relationships join CIs of one organization",
        ));
    }
    for (ci, field) in [(source, source_field), (target, target_field)] {
        if ci.status == CiStatus::Retired {
            return Err(AppError::invalid_field(
                field,
                format!("configuration item {:?} is retired", ci.name),
            ));
        }
    }
    Ok(())
}

fn new_edge(
    source: &configuration_item::Model,
    target_id: i64,
    kind: RelationshipKind,
    redundant: bool,
    at: DateTime<Utc>,
) -> ci_relationship::ActiveModel {
    let (dependent, dependency) = dependency_of(kind, source.id, target_id);
    ci_relationship::ActiveModel {
        organization_id: Set(source.organization_id),
        source_id: Set(source.id),
        target_id: Set(target_id),
        kind: Set(kind),
        redundant: Set(redundant),
        dependent_id: Set(dependent),
        dependency_id: Set(dependency),
        created_at: Set(at),
        ..Default::default()
    }
}

const DUPLICATE_EDGE: &str = "this relationship already exists";

pub struct NewRelationship {
    pub source_id: i64,
    pub target_id: i64,
    pub kind: RelationshipKind,
    pub redundant: bool,
}

/// Adds a relationship (staff): no self edge, no duplicate, one tenant, no retired end.
pub async fn add_relationship(
    store: &Store,
    p: &Principal,
    input: NewRelationship,
) -> AppResult<ci_relationship::Model> {
    let txn = begin_write(&store.db).await?;
    let source = referenced_ci(&txn, p, input.source_id, "sourceId").await?;
    let target = referenced_ci(&txn, p, input.target_id, "targetId").await?;
    check_edge(&source, &target, "sourceId", "targetId")?;
    let existing = ci_relationship::Entity::find()
        .filter(ci_relationship::Column::SourceId.eq(source.id))
        .filter(ci_relationship::Column::TargetId.eq(target.id))
        .filter(ci_relationship::Column::Kind.eq(input.kind))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(DUPLICATE_EDGE.into()));
    }
    let created = audit::insert(
        &txn,
        p,
        new_edge(&source, target.id, input.kind, input.redundant, now()),
    )
    .await
    .map_err(|e| conflict_on_unique(e, DUPLICATE_EDGE))?;
    txn.commit().await?;
    Ok(created)
}

/// Removes a relationship (staff).
pub async fn remove_relationship(store: &Store, p: &Principal, id: i64) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    let edge = find_relationship(&txn, p, id).await?;
    edge.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&edge), None).await?;
    txn.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Services and their CIs
// ---------------------------------------------------------------------------

/// Links a CI to a service it is part of (staff). The CI belongs to the
/// service's organization or to a customer subscribed to the service.
pub async fn link_service_ci(
    store: &Store,
    p: &Principal,
    service_id: i64,
    ci_id: i64,
) -> AppResult<service_configuration_item::Model> {
    let txn = begin_write(&store.db).await?;
    let svc = catalogue::find_service(&txn, p, service_id)
        .await
        .map_err(|_| AppError::invalid_field("serviceId", "service not found"))?;
    if !p.can_see(svc.organization_id) {
        return Err(AppError::invalid_field("serviceId", "service not found"));
    }
    let ci = referenced_ci(&txn, p, ci_id, "configurationItemId").await?;
    if ci.status == CiStatus::Retired {
        return Err(AppError::invalid_field(
            "configurationItemId",
            "a retired configuration item cannot join a service",
        ));
    }
    if ci.organization_id != svc.organization_id {
        let subscribed = service_subscription::Entity::find()
            .filter(service_subscription::Column::ServiceId.eq(svc.id))
            .filter(service_subscription::Column::CustomerId.eq(ci.organization_id))
            .one(&txn)
            .await?;
        if subscribed.is_none() {
            return Err(AppError::invalid_field(
                "configurationItemId",
                "the configuration item belongs to an organization that neither delivers nor subscribes to this service",
            ));
        }
    }
    let existing = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::ServiceId.eq(svc.id))
        .filter(service_configuration_item::Column::CiId.eq(ci.id))
        .one(&txn)
        .await?;
    if existing.is_some() {
        return Err(AppError::Conflict(
            "this configuration item is already part of this service".into(),
        ));
    }
    let created = audit::insert(
        &txn,
        p,
        service_configuration_item::ActiveModel {
            service_id: Set(svc.id),
            ci_id: Set(ci.id),
            organization_id: Set(ci.organization_id),
            created_at: Set(now()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        conflict_on_unique(e, "this configuration item is already part of this service")
    })?;
    txn.commit().await?;
    Ok(created)
}

pub async fn unlink_service_ci(
    store: &Store,
    p: &Principal,
    service_id: i64,
    ci_id: i64,
) -> AppResult<()> {
    let txn = begin_write(&store.db).await?;
    catalogue::find_service(&txn, p, service_id).await?;
    let link = service_configuration_item::Entity::find()
        .filter(service_configuration_item::Column::ServiceId.eq(service_id))
        .filter(service_configuration_item::Column::CiId.eq(ci_id))
        .one(&txn)
        .await?
        .filter(|l| p.can_see(l.organization_id))
        .ok_or_else(|| AppError::not_found("service configuration item"))?;
    link.clone().delete(&txn).await?;
    audit::record(&txn, p, "delete", Some(&link), None).await?;
    txn.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Impact analysis
// ---------------------------------------------------------------------------

/// Which way impact analysis walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImpactDirection {
    /// Everything that depends on the CI, transitively: what goes down when it does.
    Downstream,
    /// Everything the CI depends on, transitively: what could have caused its failure.
    Upstream,
}

#[derive(Debug, Clone)]
pub struct ImpactedCi {
    pub ci_id: i64,
    pub depth: i32,
    /// CI ids from the root to this CI, both included.
    pub path: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct ImpactedService {
    pub service_id: i64,
    /// The smallest depth of the service's CIs that were reached.
    pub depth: i32,
    /// The reached CI of the service at that depth.
    pub via_ci_id: i64,
}

#[derive(Debug, Clone)]
pub struct Impact {
    pub root: configuration_item::Model,
    pub direction: ImpactDirection,
    pub max_depth: i32,
    pub consider_redundancy: bool,
    /// Ordered by depth, then id; the root comes first at depth 0.
    pub cis: Vec<ImpactedCi>,
    /// Ordered by depth, then id.
    pub services: Vec<ImpactedService>,
    /// Customer organizations affected: subscribers of the services, and the
    /// owners of reached CIs that are customers. Ordered by id.
    pub customer_ids: Vec<i64>,
}

#[derive(Debug, FromQueryResult)]
struct ImpactRow {
    /// 0: a reached CI (a = ci, b = min depth, d = tenant); 1: a service link
    /// (a = service, b = ci); 2: an edge into a reached CI, in walking direction
    /// (a = from, b = to, c = 1 when redundant, tag = kind).
    row_kind: i32,
    a: i64,
    b: i64,
    c: Option<i64>,
    d: Option<i64>,
    tag: Option<String>,
}

/// The one statement of impact analysis. The recursive CTE walks the
/// relationship index from the root; it terminates on cycles because `UNION`
/// keeps a `(ci, depth)` pair once and the depth is bounded, so each CI is
/// expanded at most once per depth: no path strings, whose number explodes on
/// dense graphs. The same statement answers the service links of the reached
/// CIs and, when paths or redundancy are wanted, the edges into them, from
/// which the paths (one shortest per CI) are rebuilt without another round trip.
fn impact_sql(
    backend: DbBackend,
    direction: ImpactDirection,
    with_edges: bool,
    with_kinds: bool,
) -> String {
    let (from, to) = match direction {
        ImpactDirection::Downstream => ("dependency_id", "dependent_id"),
        ImpactDirection::Upstream => ("dependent_id", "dependency_id"),
    };
    let (root, max, org) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?1", "?2", "?3"),
    };
    let mut sql = format!(
        "WITH RECURSIVE walk(ci_id, depth, org) AS ( \
           SELECT CAST({root} AS BIGINT), 0, CAST({org} AS BIGINT) \
           UNION \
           SELECT r.{to}, w.depth + 1, r.organization_id FROM walk w \
           JOIN ci_relationships r ON r.{from} = w.ci_id \
           WHERE w.depth < {max} \
         ), \
         reached AS (SELECT ci_id, MIN(depth) AS depth, MIN(org) AS org FROM walk GROUP BY ci_id) \
         SELECT 0 AS row_kind, ci_id AS a, CAST(depth AS BIGINT) AS b, CAST(NULL AS BIGINT) AS c, \
                org AS d, CAST(NULL AS VARCHAR(16)) AS tag FROM reached \
         UNION ALL \
         SELECT 1, s.service_id, s.ci_id, NULL, NULL, NULL \
         FROM service_configuration_items s JOIN reached c ON c.ci_id = s.ci_id"
    );
    if with_edges {
        // For paths alone the walk index covers the columns (no table reads);
        // redundancy needs each edge's type and flag.
        let (flag, kind) = if with_kinds {
            (
                "CAST(CASE WHEN r.redundant THEN 1 ELSE 0 END AS BIGINT)",
                "r.kind",
            )
        } else {
            ("NULL", "NULL")
        };
        sql.push_str(&format!(
            " UNION ALL \
             SELECT 2, r.{from}, r.{to}, {flag}, NULL, {kind} \
             FROM reached c JOIN ci_relationships r ON r.{to} = c.ci_id"
        ));
    }
    sql
}

/// Impact analysis from a CI, in the database. Only CIs, services and customers
/// the caller may see are answered. `with_paths` asks for one shortest path per
/// CI (it costs the edges into the reached CIs).
///
/// With `consider_redundancy` (downstream only), a CI reached only through
/// redundant edges stays up while any other member of its redundancy group
/// survives. A redundancy group is the set of redundant edges of one dependent
/// CI and one relationship type; the dependent goes down when every member of
/// the group is down (within `max_depth`), or when any non-redundant dependency is.
pub async fn impact(
    db: &DatabaseConnection,
    p: &Principal,
    root_id: i64,
    direction: ImpactDirection,
    max_depth: Option<i32>,
    consider_redundancy: bool,
    with_paths: bool,
) -> AppResult<Impact> {
    let max_depth = max_depth.unwrap_or(DEFAULT_IMPACT_DEPTH);
    if !(1..=MAX_IMPACT_DEPTH).contains(&max_depth) {
        return Err(AppError::invalid_field(
            "maxDepth",
            format!("maxDepth must be between 1 and {MAX_IMPACT_DEPTH}"),
        ));
    }
    let root = find_ci(db, p, root_id).await?;
    let redundancy = consider_redundancy && direction == ImpactDirection::Downstream;
    let with_edges = redundancy || with_paths;
    let backend = db.get_database_backend();
    let stmt = Statement::from_sql_and_values(
        backend,
        impact_sql(backend, direction, with_edges, redundancy),
        [
            root.id.into(),
            max_depth.into(),
            root.organization_id.into(),
        ],
    );
    let rows = ImpactRow::find_by_statement(stmt).all(db).await?;

    let mut reached: HashMap<i64, (i32, Option<i64>, i64)> = HashMap::new();
    let mut links: Vec<(i64, i64)> = Vec::new();
    let mut edges: Vec<(i64, i64, bool, String)> = Vec::new();
    for r in rows {
        match r.row_kind {
            0 => {
                reached.insert(r.a, (r.b as i32, None, r.d.unwrap_or_default()));
            }
            1 => links.push((r.a, r.b)),
            _ => edges.push((r.a, r.b, r.c == Some(1), r.tag.unwrap_or_default())),
        }
    }
    // depth and parent of every CI that goes down.
    let down: HashMap<i64, (i32, Option<i64>)> = if with_edges {
        walk_edges(root.id, max_depth, &reached, &edges, redundancy)
    } else {
        reached
            .iter()
            .map(|(id, (depth, parent, _))| (*id, (*depth, *parent)))
            .collect()
    };
    let visible = |id: &i64| reached.get(id).is_some_and(|(_, _, org)| p.can_see(*org));
    let mut cis: Vec<ImpactedCi> = down
        .iter()
        .filter(|(id, _)| visible(id))
        .map(|(id, (depth, _))| {
            let mut path = vec![*id];
            let mut at = *id;
            while let Some((_, Some(parent))) = down.get(&at).filter(|_| with_paths) {
                if path.len() > MAX_IMPACT_DEPTH as usize + 1 {
                    break;
                }
                path.push(*parent);
                at = *parent;
            }
            path.reverse();
            if !with_paths {
                path.clear();
            }
            ImpactedCi {
                ci_id: *id,
                depth: *depth,
                path,
            }
        })
        .collect();
    cis.sort_by_key(|c| (c.depth, c.ci_id));

    let mut best: HashMap<i64, (i32, i64)> = HashMap::new();
    for (service_id, ci_id) in links {
        if !visible(&ci_id) {
            continue;
        }
        if let Some((depth, _)) = down.get(&ci_id) {
            let entry = best.entry(service_id).or_insert((*depth, ci_id));
            if (*depth, ci_id) < *entry {
                *entry = (*depth, ci_id);
            }
        }
    }
    let visible_services: HashSet<i64> = if best.is_empty() {
        HashSet::new()
    } else {
        service::Entity::find()
            .filter(service::Column::Id.is_in(best.keys().copied()))
            .filter(catalogue::service_visibility(p))
            .all(db)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect()
    };
    let mut services: Vec<ImpactedService> = best
        .into_iter()
        .filter(|(id, _)| visible_services.contains(id))
        .map(|(service_id, (depth, via))| ImpactedService {
            service_id,
            depth,
            via_ci_id: via,
        })
        .collect();
    services.sort_by_key(|s| (s.depth, s.service_id));

    let mut candidates: HashSet<i64> = cis
        .iter()
        .filter_map(|c| reached.get(&c.ci_id).map(|(_, _, org)| *org))
        .collect();
    if !services.is_empty() {
        let subscribers: Vec<service_subscription::Model> = service_subscription::Entity::find()
            .filter(
                service_subscription::Column::ServiceId
                    .is_in(services.iter().map(|s| s.service_id)),
            )
            .all(db)
            .await?;
        candidates.extend(subscribers.into_iter().map(|s| s.customer_id));
    }
    candidates.retain(|org| p.can_see(*org));
    let mut customer_ids: Vec<i64> = if candidates.is_empty() {
        Vec::new()
    } else {
        organization::Entity::find()
            .filter(organization::Column::Id.is_in(candidates))
            .filter(organization::Column::Kind.eq(OrganizationKind::Customer))
            .all(db)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect()
    };
    customer_ids.sort_unstable();
    Ok(Impact {
        root,
        direction,
        max_depth,
        consider_redundancy: redundancy,
        cis,
        services,
        customer_ids,
    })
}

/// The walk again, breadth first over the edges the statement returned (in
/// walking direction), for one shortest path per CI and, downstream, for
/// redundancy groups: depths are the levels at which CIs go down.
fn walk_edges(
    root: i64,
    max_depth: i32,
    reached: &HashMap<i64, (i32, Option<i64>, i64)>,
    edges: &[(i64, i64, bool, String)],
    redundancy: bool,
) -> HashMap<i64, (i32, Option<i64>)> {
    let mut remaining: HashMap<(i64, &str), usize> = HashMap::new();
    let mut out_edges: HashMap<i64, Vec<(i64, bool, &str)>> = HashMap::new();
    for (from, to, redundant, kind) in edges {
        let redundant = *redundant && redundancy;
        if redundant {
            *remaining.entry((*to, kind.as_str())).or_default() += 1;
        }
        if reached.contains_key(from) {
            out_edges
                .entry(*from)
                .or_default()
                .push((*to, redundant, kind.as_str()));
        }
    }
    for list in out_edges.values_mut() {
        // Deterministic parents: the lowest id first.
        list.sort_unstable_by_key(|(to, ..)| *to);
    }
    let mut down: HashMap<i64, (i32, Option<i64>)> = HashMap::new();
    down.insert(root, (0, None));
    let mut queue = VecDeque::from([(root, 0)]);
    while let Some((u, depth)) = queue.pop_front() {
        if depth >= max_depth {
            continue;
        }
        for (v, redundant, kind) in out_edges.get(&u).map(Vec::as_slice).unwrap_or_default() {
            if down.contains_key(v) {
                continue;
            }
            let falls = if *redundant {
                let left = remaining.entry((*v, *kind)).or_insert(1);
                *left = left.saturating_sub(1);
                *left == 0
            } else {
                true
            };
            if falls {
                down.insert(*v, (depth + 1, Some(u)));
                queue.push_back((*v, depth + 1));
            }
        }
    }
    down
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

/// A CI as it was at `at`, rebuilt from the snapshot of its latest audit event
/// at or before that time. `NOT_FOUND` when it did not exist then, or the
/// caller may not see it (now or then).
pub async fn ci_as_of<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
    at: DateTime<Utc>,
) -> AppResult<configuration_item::Model> {
    let event = audit_event::Entity::find()
        .filter(
            audit_event::Column::RecordType
                .eq(<configuration_item::Model as audit::Audited>::RECORD_TYPE),
        )
        .filter(audit_event::Column::RecordId.eq(id))
        .filter(audit_event::Column::OccurredAt.lte(at))
        .order_by_desc(audit_event::Column::Id)
        .one(db)
        .await?;
    let snapshot = event
        .and_then(|e| e.snapshot)
        .and_then(|s| serde_json::from_value::<configuration_item::Model>(s).ok());
    match snapshot {
        Some(ci) if p.can_see(ci.organization_id) => Ok(ci),
        _ => Err(AppError::not_found("configuration item")),
    }
}

// ---------------------------------------------------------------------------
// Bulk upsert by external identity
// ---------------------------------------------------------------------------

/// A CI by external identity, for discovery tools.
#[derive(Debug, Clone)]
pub struct UpsertItem {
    pub source: String,
    pub external_id: String,
    pub class_code: String,
    pub name: String,
    pub status: Option<CiStatus>,
    pub environment: Option<CiEnvironment>,
    pub owner_group_id: Option<i64>,
    pub attributes: Option<Value>,
}

/// A relationship between CIs named by external identity (in the call or already stored).
#[derive(Debug, Clone)]
pub struct UpsertRelationship {
    pub source: (String, String),
    pub target: (String, String),
    pub kind: RelationshipKind,
    pub redundant: bool,
}

pub struct UpsertBatch {
    pub organization_id: Option<i64>,
    pub items: Vec<UpsertItem>,
    pub relationships: Vec<UpsertRelationship>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertStatus {
    Created,
    Updated,
    Unchanged,
    Error,
}

pub struct ItemOutcome {
    pub source: String,
    pub external_id: String,
    pub status: UpsertStatus,
    pub error: Option<AppError>,
    pub ci: Option<configuration_item::Model>,
}

pub struct RelationshipOutcome {
    pub status: UpsertStatus,
    pub error: Option<AppError>,
    pub relationship: Option<ci_relationship::Model>,
}

pub struct UpsertResult {
    pub items: Vec<ItemOutcome>,
    pub relationships: Vec<RelationshipOutcome>,
}

type Identity = (String, String);

struct Prepared {
    class_id: i64,
    name: String,
    name_key: String,
    status: Option<CiStatus>,
    environment: Option<CiEnvironment>,
    owner_group_id: Option<i64>,
    attributes: Value,
}

fn prepare_item(
    item: &UpsertItem,
    classes: &HashMap<String, (ci_class::Model, Vec<AttributeDefinition>)>,
) -> AppResult<Prepared> {
    let (name, name_key) = clean_name("name", &item.name, 200)?;
    let Some((class, defs)) = classes.get(&item.class_code.trim().to_ascii_lowercase()) else {
        return Err(AppError::invalid_field(
            "classCode",
            format!("unknown configuration item class {:?}", item.class_code),
        ));
    };
    let attributes = validate_attributes(class, defs, item.attributes.clone())?;
    Ok(Prepared {
        class_id: class.id,
        name,
        name_key,
        status: item.status,
        environment: item.environment,
        owner_group_id: item.owner_group_id,
        attributes,
    })
}

/// Existing CIs of a tenant by external identity, in chunked queries.
async fn cis_by_identity<C: ConnectionTrait>(
    db: &C,
    org: i64,
    identities: &[Identity],
) -> AppResult<HashMap<Identity, configuration_item::Model>> {
    let mut out = HashMap::new();
    let wanted: HashSet<&Identity> = identities.iter().collect();
    let mut ext_ids: Vec<&str> = identities.iter().map(|(_, e)| e.as_str()).collect();
    ext_ids.sort_unstable();
    ext_ids.dedup();
    for chunk in ext_ids.chunks(CHUNK) {
        let rows = configuration_item::Entity::find()
            .filter(configuration_item::Column::OrganizationId.eq(org))
            .filter(configuration_item::Column::ExternalId.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        for ci in rows {
            if let (Some(s), Some(e)) = (&ci.source, &ci.external_id) {
                let key = (s.clone(), e.clone());
                if wanted.contains(&key) {
                    out.insert(key, ci);
                }
            }
        }
    }
    Ok(out)
}

/// Inserts many rows with `create` audit events in one savepoint. `None` when
/// anything failed (the savepoint is rolled back and the caller goes row by row).
async fn insert_all<A>(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    rows: Vec<A>,
) -> AppResult<Option<Vec<<A::Entity as EntityTrait>::Model>>>
where
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send + Clone,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + audit::Audited + Sync,
{
    let sp = txn.begin().await?;
    let mut created = Vec::with_capacity(rows.len());
    let mut failed = false;
    let postgres = sp.get_database_backend() == DbBackend::Postgres;
    for chunk in rows.chunks(if postgres { rows.len().max(1) } else { CHUNK }) {
        let inserted = if postgres {
            crate::records::insert_many_unnest(&sp, chunk, true).await
        } else {
            <A::Entity as EntityTrait>::insert_many(chunk.to_vec())
                .exec_with_returning(&sp)
                .await
        };
        match inserted {
            Ok(models) => created.extend(models),
            Err(e) => {
                tracing::debug!(error = %e, "batch insert failed; going row by row");
                failed = true;
                break;
            }
        }
    }
    if failed || created.len() != rows.len() {
        sp.rollback().await?;
        return Ok(None);
    }
    audit::record_many(&sp, p, "create", &created).await?;
    sp.commit().await?;
    Ok(Some(created))
}

/// Inserts one row with its audit event in its own savepoint; an error leaves nothing behind.
async fn insert_one<A>(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    row: A,
    conflict: &str,
) -> AppResult<<A::Entity as EntityTrait>::Model>
where
    A: ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A> + audit::Audited,
{
    let sp = txn.begin().await?;
    match audit::insert(&sp, p, row).await {
        Ok(m) => {
            sp.commit().await?;
            Ok(m)
        }
        Err(e) => {
            sp.rollback().await?;
            Err(conflict_on_unique(e, conflict))
        }
    }
}

/// Creates or updates up to [`MAX_UPSERT_ITEMS`] CIs of one tenant by external
/// identity, then their relationships, in one transaction. Each item answers
/// for itself: an item in error writes nothing of itself while the others are
/// written. Unchanged items write nothing at all, so a repeated call is idempotent.
/// Relationships are only added or updated (their `redundant` flag), never removed.
pub async fn upsert(store: &Store, p: &Principal, batch: UpsertBatch) -> AppResult<UpsertResult> {
    if batch.items.len() > MAX_UPSERT_ITEMS {
        return Err(AppError::invalid_field(
            "items",
            format!(
                "at most {MAX_UPSERT_ITEMS} configuration items per call, this one has {}",
                batch.items.len()
            ),
        ));
    }
    if batch.relationships.len() > MAX_UPSERT_RELATIONSHIPS {
        return Err(AppError::invalid_field(
            "relationships",
            format!(
                "at most {MAX_UPSERT_RELATIONSHIPS} relationships per call, this one has {}",
                batch.relationships.len()
            ),
        ));
    }
    let org = batch.organization_id.unwrap_or(p.organization_id);
    if !p.can_see(org) {
        return Err(AppError::invalid_field(
            "organizationId",
            "organization not found",
        ));
    }
    let txn = begin_write(&store.db).await?;
    organization::Entity::find_by_id(org)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::invalid_field("organizationId", "organization not found"))?;
    let classes: HashMap<String, (ci_class::Model, Vec<AttributeDefinition>)> =
        ci_class::Entity::find()
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| {
                let defs = class_schema(&c);
                (c.code.clone(), (c, defs))
            })
            .collect();
    let groups: Vec<i64> = batch
        .items
        .iter()
        .filter_map(|i| i.owner_group_id)
        .collect();
    let known_groups: HashSet<i64> = if groups.is_empty() {
        HashSet::new()
    } else {
        support_group::Entity::find()
            .filter(support_group::Column::Id.is_in(groups))
            .all(&txn)
            .await?
            .into_iter()
            .filter(|g| p.can_see(g.organization_id))
            .map(|g| g.id)
            .collect()
    };

    // Validate every item without touching the database.
    let mut seen: HashSet<Identity> = HashSet::new();
    let mut prepared: Vec<AppResult<(Identity, Prepared)>> = Vec::with_capacity(batch.items.len());
    for item in &batch.items {
        let result = (|| {
            let (source, external_id) =
                clean_identity(Some(item.source.clone()), Some(item.external_id.clone()))?;
            let (Some(source), Some(external_id)) = (source, external_id) else {
                return Err(AppError::invalid_field(
                    "externalId",
                    "source and externalId are required",
                ));
            };
            let key = (source, external_id);
            if !seen.insert(key.clone()) {
                return Err(AppError::invalid_field(
                    "externalId",
                    "this source and externalId appear twice in this call",
                ));
            }
            let prep = prepare_item(item, &classes)?;
            if let Some(g) = prep.owner_group_id
                && !known_groups.contains(&g)
            {
                return Err(AppError::invalid_field(
                    "ownerGroupId",
                    "support group not found",
                ));
            }
            Ok((key, prep))
        })();
        prepared.push(result);
    }
    let identities: Vec<Identity> = prepared
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(k, _)| k.clone()))
        .collect();
    let existing = cis_by_identity(&txn, org, &identities).await?;

    let at = now();
    let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(batch.items.len());
    let mut to_create: Vec<(usize, configuration_item::ActiveModel)> = Vec::new();
    let mut events: Vec<(ChangeKind, configuration_item::Model, Vec<String>)> = Vec::new();
    for (i, result) in prepared.into_iter().enumerate() {
        let item = &batch.items[i];
        let mut outcome = ItemOutcome {
            source: item.source.clone(),
            external_id: item.external_id.clone(),
            status: UpsertStatus::Error,
            error: None,
            ci: None,
        };
        let (key, prep) = match result {
            Ok(ok) => ok,
            Err(e) => {
                outcome.error = Some(e);
                outcomes.push(outcome);
                continue;
            }
        };
        (outcome.source, outcome.external_id) = key.clone();
        match existing.get(&key) {
            None => {
                let status = prep.status.unwrap_or(CiStatus::InProduction);
                if status == CiStatus::Retired {
                    outcome.error = Some(AppError::invalid_field(
                        "status",
                        "a new configuration item cannot start retired",
                    ));
                } else {
                    to_create.push((
                        i,
                        configuration_item::ActiveModel {
                            organization_id: Set(org),
                            class_id: Set(prep.class_id),
                            name: Set(prep.name),
                            name_key: Set(prep.name_key),
                            status: Set(status),
                            environment: Set(prep.environment.unwrap_or(CiEnvironment::Production)),
                            owner_group_id: Set(prep.owner_group_id),
                            attributes: Set(prep.attributes),
                            source: Set(Some(key.0)),
                            external_id: Set(Some(key.1)),
                            version: Set(1),
                            created_at: Set(at),
                            updated_at: Set(at),
                            ..Default::default()
                        },
                    ));
                }
            }
            Some(before) => {
                let mut next = before.clone();
                next.class_id = prep.class_id;
                next.name = prep.name;
                next.name_key = prep.name_key;
                crate::records::patch(&mut next.status, prep.status);
                crate::records::patch(&mut next.environment, prep.environment);
                next.owner_group_id = prep.owner_group_id;
                next.attributes = prep.attributes;
                if next == *before {
                    outcome.status = UpsertStatus::Unchanged;
                    outcome.ci = Some(next);
                } else if let Err(e) =
                    check_ci_transition(before.status, next.status).and_then(|_| {
                        if before.status == CiStatus::Retired {
                            Err(AppError::invalid_field(
                                "status",
                                "a retired configuration item cannot be changed",
                            ))
                        } else {
                            Ok(())
                        }
                    })
                {
                    outcome.error = Some(e);
                } else {
                    let retiring = next.status == CiStatus::Retired;
                    let sp = txn.begin().await?;
                    let saved = async {
                        let updated = save_versioned(&sp, p, before, next).await?;
                        if retiring {
                            detach(&sp, p, before.id).await?;
                        }
                        Ok::<_, AppError>(updated)
                    }
                    .await;
                    match saved {
                        Ok(updated) => {
                            sp.commit().await?;
                            events.push((
                                if retiring {
                                    ChangeKind::Retired
                                } else {
                                    ChangeKind::Updated
                                },
                                updated.clone(),
                                audit::changed_fields(before, &updated),
                            ));
                            outcome.status = UpsertStatus::Updated;
                            outcome.ci = Some(updated);
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            outcome.error = Some(conflict_on_unique(e, IDENTITY_CLASH));
                        }
                    }
                }
            }
        }
        outcomes.push(outcome);
    }

    // New CIs: one multi-row insert per chunk; row by row only when that fails.
    if !to_create.is_empty() {
        let rows: Vec<_> = to_create.iter().map(|(_, r)| r.clone()).collect();
        match insert_all(&txn, p, rows).await? {
            Some(created) => {
                let by_key: HashMap<Identity, configuration_item::Model> = created
                    .into_iter()
                    .filter_map(|c| Some(((c.source.clone()?, c.external_id.clone()?), c)))
                    .collect();
                for (i, _) in &to_create {
                    let o = &mut outcomes[*i];
                    if let Some(ci) = by_key.get(&(o.source.clone(), o.external_id.clone())) {
                        o.status = UpsertStatus::Created;
                        o.ci = Some(ci.clone());
                    }
                }
            }
            None => {
                for (i, row) in to_create {
                    match insert_one(&txn, p, row, IDENTITY_CLASH).await {
                        Ok(ci) => {
                            outcomes[i].status = UpsertStatus::Created;
                            outcomes[i].ci = Some(ci);
                        }
                        Err(e) => outcomes[i].error = Some(e),
                    }
                }
            }
        }
        for o in &outcomes {
            if o.status == UpsertStatus::Created
                && let Some(ci) = &o.ci
            {
                events.push((ChangeKind::Created, ci.clone(), Vec::new()));
            }
        }
    }

    let relationships = upsert_relationships(&txn, p, org, &outcomes, batch.relationships).await?;
    txn.commit().await?;
    for (kind, ci, changed) in events {
        publish(store, kind, &ci, changed);
    }
    Ok(UpsertResult {
        items: outcomes,
        relationships,
    })
}

async fn upsert_relationships(
    txn: &sea_orm::DatabaseTransaction,
    p: &Principal,
    org: i64,
    items: &[ItemOutcome],
    rels: Vec<UpsertRelationship>,
) -> AppResult<Vec<RelationshipOutcome>> {
    if rels.is_empty() {
        return Ok(Vec::new());
    }
    let mut cis: HashMap<Identity, configuration_item::Model> = HashMap::new();
    let mut failed: HashSet<Identity> = HashSet::new();
    for o in items {
        let key = (o.source.clone(), o.external_id.clone());
        match &o.ci {
            Some(ci) => {
                cis.insert(key, ci.clone());
            }
            None => {
                failed.insert(key);
            }
        }
    }
    let unknown: Vec<Identity> = rels
        .iter()
        .flat_map(|r| [r.source.clone(), r.target.clone()])
        .filter(|k| !cis.contains_key(k) && !failed.contains(k))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    cis.extend(cis_by_identity(txn, org, &unknown).await?);

    let resolve = |key: &Identity, field: &str| -> AppResult<&configuration_item::Model> {
        if failed.contains(key) {
            return Err(AppError::invalid_field(
                field,
                format!(
                    "configuration item {}/{} was not written (see its item error)",
                    key.0, key.1
                ),
            ));
        }
        cis.get(key).ok_or_else(|| {
            AppError::invalid_field(
                field,
                format!(
                    "no configuration item with source {:?} and externalId {:?} in this organization",
                    key.0, key.1
                ),
            )
        })
    };
    let mut checked: Vec<AppResult<(i64, i64, RelationshipKind, bool)>> = Vec::new();
    let mut seen = HashSet::new();
    for r in &rels {
        checked.push((|| {
            let source = resolve(&r.source, "source")?;
            let target = resolve(&r.target, "target")?;
            check_edge(source, target, "source", "target")?;
            if !seen.insert((source.id, target.id, r.kind)) {
                return Err(AppError::invalid_field(
                    "target",
                    "this relationship appears twice in this call",
                ));
            }
            Ok((source.id, target.id, r.kind, r.redundant))
        })());
    }
    let mut sources: Vec<i64> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().map(|t| t.0))
        .collect();
    sources.sort_unstable();
    sources.dedup();
    let mut stored: HashMap<(i64, i64, RelationshipKind), ci_relationship::Model> = HashMap::new();
    for chunk in sources.chunks(CHUNK) {
        for e in ci_relationship::Entity::find()
            .filter(ci_relationship::Column::SourceId.is_in(chunk.iter().copied()))
            .all(txn)
            .await?
        {
            stored.insert((e.source_id, e.target_id, e.kind), e);
        }
    }
    let at = now();
    let by_id: HashMap<i64, &configuration_item::Model> = cis.values().map(|c| (c.id, c)).collect();
    let mut out: Vec<RelationshipOutcome> = Vec::with_capacity(rels.len());
    let mut to_create: Vec<(usize, ci_relationship::ActiveModel)> = Vec::new();
    for (i, c) in checked.into_iter().enumerate() {
        let mut o = RelationshipOutcome {
            status: UpsertStatus::Error,
            error: None,
            relationship: None,
        };
        match c {
            Err(e) => o.error = Some(e),
            Ok((s, t, kind, redundant)) => match stored.get(&(s, t, kind)) {
                Some(edge) if edge.redundant == redundant => {
                    o.status = UpsertStatus::Unchanged;
                    o.relationship = Some(edge.clone());
                }
                Some(edge) => {
                    let mut active: ci_relationship::ActiveModel = edge.clone().into();
                    active.redundant = Set(redundant);
                    let updated = audit::update(txn, p, "update", edge, active).await?;
                    o.status = UpsertStatus::Updated;
                    o.relationship = Some(updated);
                }
                None => {
                    if let Some(source) = by_id.get(&s) {
                        to_create.push((i, new_edge(source, t, kind, redundant, at)));
                    }
                }
            },
        }
        out.push(o);
    }
    if !to_create.is_empty() {
        let rows: Vec<_> = to_create.iter().map(|(_, r)| r.clone()).collect();
        match insert_all(txn, p, rows).await? {
            Some(created) => {
                let by_key: HashMap<(i64, i64, RelationshipKind), ci_relationship::Model> = created
                    .into_iter()
                    .map(|e| ((e.source_id, e.target_id, e.kind), e))
                    .collect();
                for (i, row) in &to_create {
                    let key = (
                        *row.source_id.as_ref(),
                        *row.target_id.as_ref(),
                        *row.kind.as_ref(),
                    );
                    if let Some(e) = by_key.get(&key) {
                        out[*i].status = UpsertStatus::Created;
                        out[*i].relationship = Some(e.clone());
                    }
                }
            }
            None => {
                for (i, row) in to_create {
                    match insert_one(txn, p, row, DUPLICATE_EDGE).await {
                        Ok(e) => {
                            out[i].status = UpsertStatus::Created;
                            out[i].relationship = Some(e);
                        }
                        Err(e) => out[i].error = Some(e),
                    }
                }
            }
        }
    }
    Ok(out)
}
