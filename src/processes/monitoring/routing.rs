//! Routing rules: which service, group, priority and CIs an alert goes to,
//! decided from its labels (pure: no database, no GraphQL).

use std::collections::BTreeMap;

use entity::integration;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchOp {
    Equals,
    NotEquals,
    /// A regular expression matching the whole value (as Alertmanager's `=~`).
    Matches,
    NotMatches,
}

/// A test on one label; a missing label has the empty value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

/// Where matching alerts go. The first rule whose matchers all hold wins;
/// unset fields fall back to the integration's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoutingRule {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub service_id: Option<i64>,
    pub assignment_group_id: Option<i64>,
    pub impact: Option<i32>,
    pub urgency: Option<i32>,
    /// Labels whose values name the affected CIs (by name or external id).
    pub ci_labels: Vec<String>,
    pub category: Option<String>,
}

pub fn rules_of(i: &integration::Model) -> AppResult<Vec<RoutingRule>> {
    serde_json::from_value(i.rules.clone()).map_err(AppError::internal)
}

pub fn dedup_labels_of(i: &integration::Model) -> Vec<String> {
    serde_json::from_value(i.dedup_labels.clone()).unwrap_or_default()
}

pub(super) fn anchored(field: &str, pattern: &str) -> AppResult<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| AppError::invalid_field(field, format!("not a valid regular expression: {e}")))
}

/// Rules with their regular expressions compiled, once per delivery.
pub(super) struct Routing {
    rules: Vec<(RoutingRule, Vec<Option<Regex>>)>,
    /// What an alert no rule matches gets: the integration's defaults.
    fallback: RoutingRule,
}

impl Routing {
    pub(super) fn new(i: &integration::Model) -> AppResult<Self> {
        let mut rules = Vec::new();
        for (n, rule) in rules_of(i)?.into_iter().enumerate() {
            let mut compiled = Vec::with_capacity(rule.matchers.len());
            for (m, matcher) in rule.matchers.iter().enumerate() {
                compiled.push(match matcher.op {
                    MatchOp::Matches | MatchOp::NotMatches => Some(anchored(
                        &format!("rules[{n}].matchers[{m}].value"),
                        &matcher.value,
                    )?),
                    _ => None,
                });
            }
            rules.push((rule, compiled));
        }
        Ok(Self {
            rules,
            fallback: RoutingRule::default(),
        })
    }

    /// The first rule whose matchers all hold for `labels`, else the fallback.
    pub(super) fn route(&self, labels: &BTreeMap<String, String>) -> &RoutingRule {
        self.rules
            .iter()
            .find(|(rule, regexes)| {
                rule.matchers
                    .iter()
                    .zip(regexes)
                    .all(|(m, re)| holds(m, re.as_ref(), labels))
            })
            .map_or(&self.fallback, |(rule, _)| rule)
    }
}

/// Whether one matcher holds; a missing label has the empty value.
fn holds(m: &Matcher, re: Option<&Regex>, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&m.label).map_or("", String::as_str);
    match (m.op, re) {
        (MatchOp::Equals, _) => value == m.value,
        (MatchOp::NotEquals, _) => value != m.value,
        (MatchOp::Matches, Some(re)) => re.is_match(value),
        (MatchOp::NotMatches, Some(re)) => !re.is_match(value),
        _ => false,
    }
}

impl RoutingRule {
    /// Impact and urgency of an alert this rule routes: the rule's, else from
    /// the alert's severity, else the integration's `defaults`.
    pub(super) fn levels(&self, severity: Option<&str>, defaults: (i32, i32)) -> (i32, i32) {
        let from_severity = severity.and_then(severity_levels);
        (
            self.impact
                .or(from_severity.map(|s| s.0))
                .unwrap_or(defaults.0),
            self.urgency
                .or(from_severity.map(|s| s.1))
                .unwrap_or(defaults.1),
        )
    }
}

/// Impact and urgency from a conventional severity, when no rule sets them.
fn severity_levels(severity: &str) -> Option<(i32, i32)> {
    match severity.to_ascii_lowercase().as_str() {
        "critical" | "fatal" | "page" => Some((1, 1)),
        "error" | "high" | "major" => Some((1, 2)),
        "warning" | "warn" | "minor" | "medium" => Some((2, 2)),
        "info" | "informational" | "low" | "none" => Some((3, 3)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn matcher(label: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher {
            label: label.into(),
            op,
            value: value.into(),
        }
    }

    fn routing(rules: Vec<RoutingRule>) -> Routing {
        let model = integration::Model {
            rules: serde_json::to_value(rules).unwrap(),
            ..crate::processes::monitoring::integrations::blank_integration()
        };
        Routing::new(&model).unwrap()
    }

    fn rule(name: &str, matchers: Vec<Matcher>) -> RoutingRule {
        RoutingRule {
            name: Some(name.into()),
            matchers,
            ..RoutingRule::default()
        }
    }

    fn routed<'a>(r: &'a Routing, pairs: &[(&str, &str)]) -> Option<&'a str> {
        r.route(&labels(pairs)).name.as_deref()
    }

    #[test]
    fn equals_and_not_equals_treat_a_missing_label_as_empty() {
        let r = routing(vec![
            rule("db", vec![matcher("team", MatchOp::Equals, "db")]),
            rule("unlabelled", vec![matcher("team", MatchOp::Equals, "")]),
            rule("other", vec![matcher("team", MatchOp::NotEquals, "db")]),
        ]);
        assert_eq!(routed(&r, &[("team", "db")]), Some("db"));
        assert_eq!(routed(&r, &[]), Some("unlabelled"));
        assert_eq!(routed(&r, &[("team", "web")]), Some("other"));
    }

    #[test]
    fn regular_expressions_match_the_whole_value() {
        let r = routing(vec![
            rule("prod", vec![matcher("env", MatchOp::Matches, "prod|live")]),
            rule(
                "not-test",
                vec![matcher("env", MatchOp::NotMatches, "test.*")],
            ),
        ]);
        assert_eq!(routed(&r, &[("env", "prod")]), Some("prod"));
        // Anchored: "production" is not "prod".
        assert_eq!(routed(&r, &[("env", "production")]), Some("not-test"));
        assert_eq!(routed(&r, &[("env", "testing")]), None);
    }

    #[test]
    fn the_first_rule_whose_matchers_all_hold_wins_else_the_fallback() {
        let r = routing(vec![
            rule(
                "both",
                vec![
                    matcher("team", MatchOp::Equals, "db"),
                    matcher("severity", MatchOp::Equals, "critical"),
                ],
            ),
            rule("team", vec![matcher("team", MatchOp::Equals, "db")]),
            rule("any", vec![]),
        ]);
        assert_eq!(
            routed(&r, &[("team", "db"), ("severity", "critical")]),
            Some("both")
        );
        assert_eq!(routed(&r, &[("team", "db")]), Some("team"));
        assert_eq!(routed(&r, &[("team", "web")]), Some("any"));
        assert_eq!(routing(vec![]).route(&labels(&[])), &RoutingRule::default());
    }

    #[test]
    fn an_invalid_expression_names_its_rule_and_matcher() {
        let model = integration::Model {
            rules: serde_json::to_value(vec![rule(
                "bad",
                vec![matcher("env", MatchOp::Matches, "(")],
            )])
            .unwrap(),
            ..crate::processes::monitoring::integrations::blank_integration()
        };
        match Routing::new(&model) {
            Err(AppError::Validation { field, .. }) => {
                assert_eq!(field.as_deref(), Some("rules[0].matchers[0].value"));
            }
            _ => panic!("expected a validation error"),
        }
    }

    #[test]
    fn severities_map_to_impact_and_urgency() {
        assert_eq!(severity_levels("CRITICAL"), Some((1, 1)));
        assert_eq!(severity_levels("error"), Some((1, 2)));
        assert_eq!(severity_levels("warning"), Some((2, 2)));
        assert_eq!(severity_levels("info"), Some((3, 3)));
        assert_eq!(severity_levels("whatever"), None);
    }

    #[test]
    fn levels_come_from_the_rule_then_the_severity_then_the_defaults() {
        let rule = RoutingRule {
            impact: Some(3),
            ..RoutingRule::default()
        };
        assert_eq!(rule.levels(Some("critical"), (2, 2)), (3, 1));
        assert_eq!(
            RoutingRule::default().levels(Some("warning"), (3, 3)),
            (2, 2)
        );
        assert_eq!(
            RoutingRule::default().levels(Some("unknown"), (3, 1)),
            (3, 1)
        );
        assert_eq!(RoutingRule::default().levels(None, (1, 3)), (1, 3));
    }
}
