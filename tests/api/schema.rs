//! `schema.graphql` is the contract portal teams code against: it must equal the code's schema.

#[test]
fn schema_file_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let on_disk = std::fs::read_to_string(path).expect("schema.graphql exists");
    let from_code = servicegraph::graphql::sdl();
    assert!(
        on_disk == from_code,
        "schema.graphql differs from the code's schema; regenerate it with `cargo run -- schema -o schema.graphql` and review the diff"
    );
}

#[test]
fn schema_has_the_relay_node_interface() {
    let sdl = servicegraph::graphql::sdl();
    assert!(sdl.contains("interface Node"));
    assert!(sdl.contains("type Service implements Node"));
    assert!(sdl.contains("node(id: ID!): Node!"));
}
