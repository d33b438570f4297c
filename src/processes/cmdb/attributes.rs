//! Attribute schemas of CI classes: the typed attribute definitions a class
//! holds, and the check of a CI's attribute values against them.

use std::collections::HashSet;

use chrono::DateTime;
use entity::ci_class;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AppError, AppResult};
use crate::records::clean_text;

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
