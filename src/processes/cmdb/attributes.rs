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

/// An attribute without description or values.
pub(super) fn def(name: &str, kind: AttributeType, required: bool) -> AttributeDefinition {
    AttributeDefinition {
        name: name.into(),
        kind,
        required,
        values: None,
        description: None,
    }
}

/// An enum attribute taking `values`.
pub(super) fn enum_def(name: &str, required: bool, values: &[&str]) -> AttributeDefinition {
    AttributeDefinition {
        values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        ..def(name, AttributeType::Enum, required)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(defs: &[AttributeDefinition]) -> ci_class::Model {
        ci_class::Model {
            id: 1,
            code: "server".into(),
            name: "Server".into(),
            description: None,
            attributes: serde_json::to_value(defs).unwrap(),
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn server_schema() -> Vec<AttributeDefinition> {
        vec![
            def("hostname", AttributeType::String, true),
            def("cpuCount", AttributeType::Integer, false),
            def("memoryGb", AttributeType::Decimal, false),
            def("virtual", AttributeType::Boolean, false),
            def("purchasedAt", AttributeType::DateTime, false),
            enum_def("os", false, &["linux", "windows"]),
        ]
    }

    /// The field and message of a `VALIDATION` error.
    fn refusal(e: AppError) -> (String, String) {
        match e {
            AppError::Validation {
                field: Some(field),
                message,
            } => (field, message),
            other => panic!("expected a validation error on a field, got {other:?}"),
        }
    }

    fn check(value: Value) -> AppResult<Value> {
        let defs = server_schema();
        validate_attributes(&class(&defs), &defs, Some(value))
    }

    #[test]
    fn values_of_every_type_are_accepted_and_nulls_dropped() {
        let all = json!({
            "hostname": "web-01",
            "cpuCount": 8,
            "memoryGb": 15.5,
            "virtual": true,
            "purchasedAt": "2026-11-22T09:00:00Z",
            "os": "linux",
        });
        assert_eq!(check(all.clone()).unwrap(), all);
        let stored = check(json!({"hostname": "web-01", "cpuCount": null, "memoryGb": 16}));
        assert_eq!(
            stored.unwrap(),
            json!({"hostname": "web-01", "memoryGb": 16})
        );
        // An attribute the class does not define is refused, even as null.
        let e = check(json!({"hostname": "web-01", "serialNumber": null})).unwrap_err();
        assert_eq!(refusal(e).0, "attributes.serialNumber");
    }

    #[test]
    fn a_wrong_type_is_refused_on_its_attribute() {
        let (field, message) =
            refusal(check(json!({"hostname": "a", "cpuCount": "4"})).unwrap_err());
        assert_eq!(field, "attributes.cpuCount");
        assert_eq!(
            message,
            r#"attribute "cpuCount" must be an integer, got "4""#
        );

        let (field, _) = refusal(check(json!({"hostname": "a", "cpuCount": 1.5})).unwrap_err());
        assert_eq!(field, "attributes.cpuCount");
        let (field, _) = refusal(check(json!({"hostname": "a", "virtual": "yes"})).unwrap_err());
        assert_eq!(field, "attributes.virtual");
        let (field, _) = refusal(check(json!({"hostname": 7})).unwrap_err());
        assert_eq!(field, "attributes.hostname");
        let (field, message) =
            refusal(check(json!({"hostname": "a", "purchasedAt": "2026-11-22"})).unwrap_err());
        assert_eq!(field, "attributes.purchasedAt");
        assert!(message.contains("RFC 3339"), "{message}");
        let long = "x".repeat(4_001);
        let (field, _) = refusal(check(json!({ "hostname": long })).unwrap_err());
        assert_eq!(field, "attributes.hostname");
    }

    #[test]
    fn an_enum_takes_only_its_values() {
        let (field, message) = refusal(check(json!({"hostname": "a", "os": "beos"})).unwrap_err());
        assert_eq!(field, "attributes.os");
        assert_eq!(
            message,
            r#"attribute "os" must be one of linux, windows, got "beos""#
        );
        assert!(check(json!({"hostname": "a", "os": "windows"})).is_ok());
    }

    #[test]
    fn unknown_and_missing_required_attributes_are_refused() {
        let (field, message) =
            refusal(check(json!({"hostname": "a", "colour": "red"})).unwrap_err());
        assert_eq!(field, "attributes.colour");
        assert_eq!(
            message,
            r#"attribute "colour" is not defined for class "server""#
        );
        let (field, message) = refusal(check(json!({"cpuCount": 2})).unwrap_err());
        assert_eq!(field, "attributes.hostname");
        assert_eq!(
            message,
            r#"attribute "hostname" is required for class "server""#
        );
        // No attributes at all: the required one is still missing.
        let defs = server_schema();
        let e = validate_attributes(&class(&defs), &defs, None).unwrap_err();
        assert_eq!(refusal(e).0, "attributes.hostname");
    }

    #[test]
    fn attributes_must_be_an_object() {
        let (field, _) = refusal(check(json!(["hostname"])).unwrap_err());
        assert_eq!(field, "attributes");
    }

    #[test]
    fn definitions_need_identifier_names_once_each() {
        let e = check_definitions(vec![def("1st", AttributeType::String, false)]).unwrap_err();
        assert_eq!(refusal(e).0, "attributes[0].name");
        let e = check_definitions(vec![def("has space", AttributeType::String, false)]);
        assert!(e.is_err());
        let e = check_definitions(vec![
            def("rack", AttributeType::String, false),
            def("rack", AttributeType::Integer, false),
        ])
        .unwrap_err();
        let (field, message) = refusal(e);
        assert_eq!(field, "attributes[1].name");
        assert_eq!(message, r#"attribute "rack" is defined twice"#);
        let many: Vec<_> = (0..201)
            .map(|i| def(&format!("a{i}"), AttributeType::String, false))
            .collect();
        assert_eq!(
            refusal(check_definitions(many).unwrap_err()).0,
            "attributes"
        );
        assert_eq!(check_definitions(server_schema()).unwrap(), server_schema());
    }

    #[test]
    fn only_enums_take_values_and_they_need_some() {
        let e = check_definitions(vec![def("os", AttributeType::Enum, false)]).unwrap_err();
        assert_eq!(refusal(e).0, "attributes[0].values");
        let empty = AttributeDefinition {
            values: Some(vec![String::new()]),
            ..def("os", AttributeType::Enum, false)
        };
        assert!(check_definitions(vec![empty]).is_err());
        let valued_string = AttributeDefinition {
            values: Some(vec!["a".into()]),
            ..def("name", AttributeType::String, false)
        };
        let (field, message) = refusal(check_definitions(vec![valued_string]).unwrap_err());
        assert_eq!(field, "attributes[0].values");
        assert_eq!(
            message,
            r#"only enum attributes take values ("name" does not)"#
        );
    }

    #[test]
    fn a_schema_is_stored_as_snake_case_json_and_unreadable_ones_are_empty() {
        let defs = server_schema();
        let c = class(&defs);
        assert_eq!(
            c.attributes[0],
            json!({"name": "hostname", "type": "string", "required": true})
        );
        assert_eq!(c.attributes[4]["type"], "date_time");
        assert_eq!(class_schema(&c), defs);
        let broken = ci_class::Model {
            attributes: json!({"not": "a list"}),
            ..c
        };
        assert!(class_schema(&broken).is_empty());
    }
}
