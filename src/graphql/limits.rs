//! Limits the engine does not set as we need them.
//!
//! Depth: async-graphql's own `limit_depth` counts introspection like any
//! other selection, and the standard introspection queries (graphql-js's
//! `getIntrospectionQuery`, which GraphiQL, codegen tools and Apollo's rover
//! send) nest 15 fields deep (`__schema types fields args type` and nine
//! `ofType`), over the default of 12, so
//! GraphiQL's docs were empty and codegen failed. `DepthLimit` counts depth
//! the same way (each field one level, fragments inlined) but measures a
//! `__schema` or `__type` subtree against its own limit,
//! `graphql.max_introspection_depth`; every other field keeps `max_depth`.
//!
//! Directives: the number of directives in a document, counted on the text
//! before it is parsed. 50,000 `@skip(if: false)`
//! on one field (850 kB, within `http.max_body_bytes`) were accepted and cost
//! the parser and the validation rules about a second of CPU per request in a
//! debug build; refused here, the request takes ~10 ms, mostly reading the
//! body. Directives per field are async-graphql's own `limit_directives`,
//! checked after parsing.

use async_graphql::{
    ErrorExtensionValues, Positioned, Request, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{
        DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection,
        SelectionSet,
    },
};
use std::{collections::HashMap, sync::Arc};

/// The limits checked on a document as it is parsed: its directives (on the
/// text, before parsing) and its depth (on the parsed document).
#[derive(Clone, Copy)]
pub struct DocumentLimits {
    pub max_directives: usize,
    pub depth: DepthLimit,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check_directives(query, self.max_directives)?;
        let document = next.run(ctx, query, variables).await?;
        self.depth.check(&document)?;
        Ok(document)
    }
}

/// Refuses a document nested deeper than `max` fields, or deeper than
/// `max_introspection` inside a `__schema` or `__type` field.
#[derive(Clone, Copy)]
pub struct DepthLimit {
    pub max: usize,
    pub max_introspection: usize,
}

impl DepthLimit {
    /// `Err` (code `VALIDATION`, the engine's own message) when too deep.
    pub fn check(&self, document: &ExecutableDocument) -> ServerResult<()> {
        let mut depths = Depths {
            document,
            known: HashMap::new(),
            visiting: Vec::new(),
        };
        for (_, operation) in document.operations.iter() {
            for (name, depth) in depths.root_fields(&operation.node.selection_set.node) {
                let limit = if name == "__schema" || name == "__type" {
                    self.max_introspection
                } else {
                    self.max
                };
                if depth > limit {
                    return Err(validation_error("Query is nested too deep."));
                }
            }
        }
        Ok(())
    }
}

/// The depth of selection sets, fragments inlined, each fragment measured
/// once (a fragment spread many times costs nothing more), and a cycle of
/// fragments (refused later by validation) cut instead of followed.
struct Depths<'a> {
    document: &'a ExecutableDocument,
    known: HashMap<&'a str, usize>,
    visiting: Vec<&'a str>,
}

impl<'a> Depths<'a> {
    /// Each field at the root of `set` (through fragments), with its depth.
    fn root_fields(&mut self, set: &'a SelectionSet) -> Vec<(&'a str, usize)> {
        let mut out = Vec::new();
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let depth = 1 + self.of_set(&field.node.selection_set.node);
                    out.push((field.node.name.node.as_str(), depth));
                }
                Selection::InlineFragment(inline) => {
                    out.extend(self.root_fields(&inline.node.selection_set.node));
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(fragment) = self.enter(name) {
                        out.extend(self.root_fields(&fragment.node.selection_set.node));
                        self.visiting.pop();
                    }
                }
            }
        }
        out
    }

    fn of_set(&mut self, set: &'a SelectionSet) -> usize {
        let mut deepest = 0;
        for item in &set.items {
            let depth = match &item.node {
                Selection::Field(field) => 1 + self.of_set(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => self.of_set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.of_fragment(spread.node.fragment_name.node.as_str())
                }
            };
            deepest = deepest.max(depth);
        }
        deepest
    }

    fn of_fragment(&mut self, name: &'a str) -> usize {
        if let Some(depth) = self.known.get(name) {
            return *depth;
        }
        let Some(fragment) = self.enter(name) else {
            return 0;
        };
        let depth = self.of_set(&fragment.node.selection_set.node);
        self.visiting.pop();
        self.known.insert(name, depth);
        depth
    }

    /// The fragment named `name`, now being visited; `None` when it is
    /// unknown or already on the path (a cycle).
    fn enter(&mut self, name: &'a str) -> Option<&'a Positioned<FragmentDefinition>> {
        if self.visiting.contains(&name) {
            return None;
        }
        let fragment = self.document.fragments.get(name)?;
        self.visiting.push(name);
        Some(fragment)
    }
}

fn validation_error(message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "VALIDATION");
    err.extensions = Some(extensions);
    err
}

/// The request's document, parsed once and kept in the request (the engine
/// then does not parse it again); `None` when it does not parse, or when it
/// holds more than `max_directives` directives: such a document is not
/// parsed at all, and the engine refuses it before parsing.
pub fn parse_within(request: &mut Request, max_directives: usize) -> Option<&ExecutableDocument> {
    if count_directives(&request.query) > max_directives {
        return None;
    }
    request.parsed_query().ok()
}

/// The operation a request runs, as the engine selects it: the one it names,
/// or the document's only one; `None` when there is no such operation (the
/// engine then refuses the request). With its name, `None` when anonymous.
pub fn selected_operation<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<(Option<&'d str>, &'d Positioned<OperationDefinition>)> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => Some((None, op)),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get_key_value(name)
            .map(|(n, op)| (Some(n.as_str()), op)),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.iter().next().map(|(n, op)| (Some(n.as_str()), op))
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// `Err` (code `VALIDATION`) when `query` holds more than `max` directives.
pub fn check_directives(query: &str, max: usize) -> ServerResult<()> {
    let found = count_directives(query);
    if found <= max {
        return Ok(());
    }
    Err(validation_error(&format!(
        "the document has {found} directives, at most {max} are allowed"
    )))
}

/// The `@` signs of a GraphQL document outside strings and comments: each
/// starts a directive. One pass over the bytes, no allocation; every
/// delimiter is ASCII, so multi-byte UTF-8 never matches one.
pub fn count_directives(query: &str) -> usize {
    let b = query.as_bytes();
    let (mut i, mut found) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    i += if b[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < b.len() && !matches!(b[i], b'"' | b'\n' | b'\r') {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'@' => {
                found += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{DepthLimit, count_directives};

    fn depth_ok(query: &str, max: usize, max_introspection: usize) -> bool {
        let document = async_graphql::parser::parse_query(query).unwrap();
        DepthLimit {
            max,
            max_introspection,
        }
        .check(&document)
        .is_ok()
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        assert!(depth_ok("{ a { b { c } } }", 3, 0));
        assert!(!depth_ok("{ a { b { c } } }", 2, 99));
        assert!(!depth_ok(
            "{ a { ...F } } fragment F on T { b { c } }",
            2,
            99
        ));
        assert!(!depth_ok(
            "{ ... on Q { a { ... on T { b { c } } } } }",
            2,
            99
        ));
        assert!(depth_ok("{ a { ...F ...F } } fragment F on T { b }", 2, 0));
        // A cycle (refused by validation later) does not loop here.
        assert!(depth_ok(
            "{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { ...F }",
            3,
            0
        ));
    }

    #[test]
    fn introspection_has_its_own_limit_and_nothing_else_does() {
        let deep_types =
            "{ __schema { types { fields { type { ofType { ofType { name } } } } } } }";
        assert!(depth_ok(deep_types, 3, 7));
        assert!(!depth_ok(deep_types, 3, 6));
        assert!(!depth_ok(
            "{ __typename a { b { c { d } } } __type(name: \"Q\") { name } }",
            3,
            99
        ));
        // Through a root fragment too.
        assert!(!depth_ok(
            "{ ...R } fragment R on Query { __type(name: \"Q\") { ofType { ofType { name } } } }",
            99,
            3
        ));
    }

    #[test]
    fn the_standard_introspection_queries_fit_the_default_limits() {
        let config = crate::config::GraphqlConfig::default();
        for (name, text) in [
            (
                "graphql-js",
                include_str!("../../tests/fixtures/introspection/graphql-js.graphql"),
            ),
            (
                "graphql-js-all-options",
                include_str!("../../tests/fixtures/introspection/graphql-js-all-options.graphql"),
            ),
            (
                "graphiql-4",
                include_str!("../../tests/fixtures/introspection/graphiql-4.graphql"),
            ),
        ] {
            assert!(
                depth_ok(text, config.max_depth, config.max_introspection_depth),
                "{name}"
            );
            // They are deeper than ordinary queries may be: 15 fields.
            assert!(depth_ok(text, config.max_depth, 15), "{name}");
            assert!(!depth_ok(text, 99, 14), "{name}");
        }
    }

    #[test]
    fn directives_are_counted_outside_strings_and_comments() {
        assert_eq!(
            count_directives("{ a @skip(if: true) b @include(if: $x) }"),
            2
        );
        assert_eq!(
            count_directives("{ a(s: \"x@y\\\"@\") @skip(if: false) }"),
            1
        );
        assert_eq!(count_directives("# @a @b\n{ a @c }"), 1);
        assert_eq!(
            count_directives("{ a(s: \"\"\"@ \\\"\"\" @ \"\"\") @d b(s: \"é@\") }"),
            1
        );
        assert_eq!(count_directives("query Q($v: Int @x) @y { a }"), 2);
        // Unterminated strings end the scan without panicking.
        assert_eq!(count_directives("{ a(s: \"@"), 0);
        assert_eq!(count_directives("{ a(s: \"\"\"@"), 0);
        assert_eq!(count_directives("{ a(s: \"\\"), 0);
        assert_eq!(
            count_directives(&"@skip(if: false) ".repeat(50_000)),
            50_000
        );
    }
}
