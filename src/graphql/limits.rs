//! Limits the engine does not set on its own: the number of directives in a
//! document, counted on the text before it is parsed. 50,000 `@skip(if: false)`
//! on one field (850 kB, within `http.max_body_bytes`) were accepted and cost
//! the parser and the validation rules about a second of CPU per request in a
//! debug build; refused here, the request takes ~10 ms, mostly reading the
//! body. Directives per field are async-graphql's own `limit_directives`,
//! checked after parsing.

use async_graphql::{
    ErrorExtensionValues, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};
use std::sync::Arc;

/// Refuses a document with more than `max` directives before parsing it.
pub struct DirectiveLimit {
    pub max: usize,
}

impl ExtensionFactory for DirectiveLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DirectiveLimit { max: self.max })
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DirectiveLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check_directives(query, self.max)?;
        next.run(ctx, query, variables).await
    }
}

/// `Err` (code `VALIDATION`) when `query` holds more than `max` directives.
pub fn check_directives(query: &str, max: usize) -> ServerResult<()> {
    let found = count_directives(query);
    if found <= max {
        return Ok(());
    }
    let mut err = ServerError::new(
        format!("the document has {found} directives, at most {max} are allowed"),
        None,
    );
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "VALIDATION");
    err.extensions = Some(extensions);
    Err(err)
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
    use super::count_directives;

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
