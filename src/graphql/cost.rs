//! What a GraphQL request costs, estimated from its document before it runs
//! (GitHub's node count): every field selected costs 1, times the page sizes
//! of the connections around it. Inside a connection field, `edges` and
//! `nodes` count `first` / `last` times (the default page when neither is
//! given), so 100 aliases of `incidents(first: 100) { nodes { 20 fields } }`
//! cost about 100 × 100 × 21 and `{ __typename }` costs 1. A mutation's root
//! field costs [`MUTATION_COST`] more: it writes. Fragments count wherever
//! they are spread; aliases count each. The per-request complexity limit
//! stays the engine's; this is what the caller's budget is charged.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Request, Value, Variables,
    parser::{
        parse_schema,
        types::{
            BaseType, ExecutableDocument, Field, OperationDefinition, OperationType, Selection,
            SelectionSet, Type, TypeKind, TypeSystemDefinition,
        },
    },
};

use super::limits::parse_within;

/// What a mutation's root field costs on top of its selection.
pub const MUTATION_COST: u64 = 10;

/// Deeper than this the engine refuses the document anyway (its recursion
/// limit is 32, fragment spreads included), so the walk stops counting.
const MAX_DEPTH: usize = 64;

/// The schema's fields as the estimate needs them: what each returns, and
/// whether it is a connection (declares `first` or `last`).
pub struct CostModel {
    fields: HashMap<String, HashMap<String, Returns>>,
    roots: [String; 3],
    default_page: u64,
    max_page: u64,
}

struct Returns {
    ty: String,
    connection: bool,
}

impl CostModel {
    /// From the schema's SDL; `default_page` and `max_page` as the connections apply them.
    pub fn new(sdl: &str, default_page: usize, max_page: usize) -> Self {
        let mut model = Self {
            fields: HashMap::new(),
            roots: ["Query".into(), "Mutation".into(), "Subscription".into()],
            default_page: default_page as u64,
            max_page: max_page as u64,
        };
        let doc = parse_schema(sdl).expect("the schema's own SDL parses");
        for definition in doc.definitions {
            match definition {
                TypeSystemDefinition::Schema(s) => {
                    let s = s.node;
                    for (slot, name) in [s.query, s.mutation, s.subscription]
                        .into_iter()
                        .enumerate()
                    {
                        if let Some(name) = name {
                            model.roots[slot] = name.node.to_string();
                        }
                    }
                }
                TypeSystemDefinition::Type(t) => {
                    let fields = match t.node.kind {
                        TypeKind::Object(o) => o.fields,
                        TypeKind::Interface(i) => i.fields,
                        _ => continue,
                    };
                    let fields = fields
                        .into_iter()
                        .map(|f| {
                            let f = f.node;
                            let connection = f
                                .arguments
                                .iter()
                                .any(|a| matches!(a.node.name.node.as_str(), "first" | "last"));
                            let ty = named(&f.ty.node).to_owned();
                            (f.name.node.to_string(), Returns { ty, connection })
                        })
                        .collect();
                    model.fields.insert(t.node.name.node.to_string(), fields);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        model
    }

    /// The request's cost (at least 1). The document is parsed once and kept
    /// in the request ([`parse_within`]), so the engine does not parse it
    /// again. A document the engine will refuse before running it (too many
    /// directives, bad syntax) costs 1.
    pub fn of_request(&self, request: &mut Request, max_directives: usize) -> u64 {
        // Moved out while the document borrows the request, then put back.
        let operation_name = request.operation_name.take();
        let variables = std::mem::take(&mut request.variables);
        let cost = parse_within(request, max_directives).map_or(1, |doc| {
            self.of_document(doc, operation_name.as_deref(), &variables)
        });
        request.operation_name = operation_name;
        request.variables = variables;
        cost
    }

    /// The cost of the operation `operation_name` would run (all of them when
    /// it names none, or none of them: the engine then refuses the request).
    pub fn of_document(
        &self,
        doc: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
    ) -> u64 {
        let mut operations: Vec<&OperationDefinition> = doc
            .operations
            .iter()
            .filter(|(name, _)| {
                operation_name.is_none() || name.map(|n| n.as_str()) == operation_name
            })
            .map(|(_, op)| &op.node)
            .collect();
        if operations.is_empty() {
            operations = doc.operations.iter().map(|(_, op)| &op.node).collect();
        }
        let cost = operations
            .into_iter()
            .map(|op| {
                let mut walk = Walk {
                    model: self,
                    doc,
                    variables,
                    operation: op,
                    memo: HashMap::new(),
                    active: HashSet::new(),
                };
                let root = match op.ty {
                    OperationType::Query => &self.roots[0],
                    OperationType::Mutation => &self.roots[1],
                    OperationType::Subscription => &self.roots[2],
                };
                let mut cost = walk.set(&op.selection_set.node, Some(root), None, 0);
                if op.ty == OperationType::Mutation {
                    let writes = op
                        .selection_set
                        .node
                        .items
                        .iter()
                        .filter(|s| matches!(s.node, Selection::Field(_)))
                        .count() as u64;
                    cost = cost.saturating_add(writes.saturating_mul(MUTATION_COST));
                }
                cost
            })
            .max()
            .unwrap_or(0);
        cost.max(1)
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

struct Walk<'a> {
    model: &'a CostModel,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
    operation: &'a OperationDefinition,
    /// A fragment's cost per (name, enclosing page): each is walked once, so
    /// fragments spreading fragments cannot make the walk exponential.
    memo: HashMap<(&'a str, Option<u64>), u64>,
    /// Fragments being walked: a cycle (refused by validation) counts nothing.
    active: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    /// The cost of a selection set on type `ty` (`None`: unknown, as inside
    /// introspection), with `page` set when `ty` is a connection.
    fn set(
        &mut self,
        set: &'a SelectionSet,
        ty: Option<&'a str>,
        page: Option<u64>,
        depth: usize,
    ) -> u64 {
        if depth > MAX_DEPTH {
            return 0;
        }
        let mut cost = 0u64;
        for selection in &set.items {
            let add = match &selection.node {
                Selection::Field(field) => self.field(&field.node, ty, page, depth),
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    let on = inline
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str())
                        .or(ty);
                    self.set(&inline.selection_set.node, on, page, depth + 1)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), page, depth)
                }
            };
            cost = cost.saturating_add(add);
        }
        cost
    }

    fn field(
        &mut self,
        field: &'a Field,
        ty: Option<&'a str>,
        page: Option<u64>,
        depth: usize,
    ) -> u64 {
        let name = field.name.node.as_str();
        let returns = ty
            .and_then(|t| self.model.fields.get(t))
            .and_then(|fields| fields.get(name));
        let times = match page {
            Some(page) if name == "edges" || name == "nodes" => page,
            _ => 1,
        };
        let inner_page = returns
            .filter(|r| r.connection)
            .map(|_| self.page_size(field));
        let inner = self.set(
            &field.selection_set.node,
            returns.map(|r| r.ty.as_str()),
            inner_page,
            depth + 1,
        );
        times.saturating_mul(inner.saturating_add(1))
    }

    fn fragment(&mut self, name: &'a str, page: Option<u64>, depth: usize) -> u64 {
        if let Some(cost) = self.memo.get(&(name, page)) {
            return *cost;
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return 0;
        };
        if !self.active.insert(name) {
            return 0;
        }
        let fragment = &fragment.node;
        let on = fragment.type_condition.node.on.node.as_str();
        let cost = self.set(&fragment.selection_set.node, Some(on), page, depth + 1);
        self.active.remove(name);
        self.memo.insert((name, page), cost);
        cost
    }

    /// `first` or `last` (the larger when both), else the default page; at
    /// most the largest page, as the connection refuses anything larger.
    fn page_size(&self, field: &Field) -> u64 {
        let size = match (self.int(field, "first"), self.int(field, "last")) {
            (None, None) => self.model.default_page,
            (first, last) => first.unwrap_or(0).max(last.unwrap_or(0)),
        };
        size.min(self.model.max_page)
    }

    /// An integer argument, literal or from a variable (or its default).
    fn int(&self, field: &Field, name: &str) -> Option<u64> {
        let value = field.get_argument(name)?.node.clone();
        let value = value
            .into_const_with(|var| {
                self.variables
                    .get(&var)
                    .or_else(|| {
                        self.operation
                            .variable_definitions
                            .iter()
                            .find(|d| d.node.name.node == var)
                            .and_then(|d| d.node.default_value.as_ref())
                            .map(|v| &v.node)
                    })
                    .cloned()
                    .ok_or(())
            })
            .ok()?;
        match value {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Variables;
    use async_graphql::parser::parse_query;
    use serde_json::json;

    use super::CostModel;

    fn model() -> CostModel {
        CostModel::new(&crate::graphql::sdl(), 20, 100)
    }

    fn cost(model: &CostModel, query: &str, variables: serde_json::Value) -> u64 {
        let doc = parse_query(query).unwrap();
        model.of_document(&doc, None, &Variables::from_json(variables))
    }

    #[test]
    fn a_connection_counts_its_page_size_times() {
        let m = model();
        assert_eq!(cost(&m, "{ __typename }", json!({})), 1);
        assert_eq!(cost(&m, "{ me { subject } }", json!({})), 2);
        // incidents + nodes × 100 × (1 + id + number)
        assert_eq!(
            cost(
                &m,
                "{ incidents(first: 100) { nodes { id number } } }",
                json!({})
            ),
            1 + 100 * 3
        );
        // totalCount and pageInfo once; edges and node per row.
        assert_eq!(
            cost(
                &m,
                "{ incidents(last: 10) { totalCount pageInfo { hasNextPage } edges { node { id } } } }",
                json!({})
            ),
            1 + 1 + 2 + 10 * (1 + 2)
        );
        // No first/last: the default page; a variable, or its default.
        assert_eq!(
            cost(&m, "{ incidents { nodes { id } } }", json!({})),
            1 + 20 * 2
        );
        assert_eq!(
            cost(
                &m,
                "query($n: Int) { incidents(first: $n) { nodes { id } } }",
                json!({ "n": 5 })
            ),
            1 + 5 * 2
        );
        assert_eq!(
            cost(
                &m,
                "query($n: Int = 7) { incidents(first: $n) { nodes { id } } }",
                json!({})
            ),
            1 + 7 * 2
        );
        // Beyond the largest page: charged as the largest page.
        assert_eq!(
            cost(&m, "{ incidents(first: 5000) { nodes { id } } }", json!({})),
            1 + 100 * 2
        );
    }

    #[test]
    fn aliases_and_fragments_count_wherever_they_appear() {
        let m = model();
        let one = cost(
            &m,
            "{ incidents(first: 100) { nodes { id number } } }",
            json!({}),
        );
        let aliases: String = (0..100)
            .map(|i| format!("a{i}: incidents(first: 100) {{ nodes {{ id number }} }} "))
            .collect();
        assert_eq!(cost(&m, &format!("{{ {aliases} }}"), json!({})), 100 * one);
        let spread = "query { a: incidents(first: 100) { ...Page } b: incidents(first: 100) { ...Page } } \
                      fragment Page on IncidentConnection { nodes { ...Fields } } \
                      fragment Fields on Incident { id number }";
        assert_eq!(cost(&m, spread, json!({})), 2 * one);
        let inline = "{ node(id: \"x\") { ... on Incident { number } } }";
        assert_eq!(cost(&m, inline, json!({})), 2);
        // Fragments spreading fragments: walked once each, saturating, not exponential.
        let mut doc = String::from("{ me { ...F0 } } fragment F0 on Me { subject }");
        for i in 1..40 {
            doc.push_str(&format!(
                " fragment F{i} on Me {{ a: me {{ ...F{p} }} b: me {{ ...F{p} }} }}",
                p = i - 1
            ));
        }
        doc = doc.replacen("...F0 } }", "...F39 } }", 1);
        assert!(cost(&m, &doc, json!({})) > 1 << 30);
        // A cycle (refused later by validation) ends.
        let cycle = "{ me { ...A } } fragment A on Me { ...B } fragment B on Me { ...A }";
        assert_eq!(cost(&m, cycle, json!({})), 1);
    }

    #[test]
    fn a_mutation_costs_more_than_a_read() {
        let m = model();
        let c = cost(
            &m,
            "mutation { retireService(id: \"x\") { id } }",
            json!({}),
        );
        assert_eq!(c, 2 + super::MUTATION_COST);
    }
}
