//! Relay pagination over keyset cursors: paging forward and backward, stability
//! while rows are inserted, and the limits of the arguments.

use serde_json::{Value, json};

use crate::helpers::*;

const PAGE: &str =
    "query($first: Int, $after: String, $last: Int, $before: String, $sort: ServiceSort) {
    services(first: $first, after: $after, last: $last, before: $before, sort: $sort) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { name } }
    }
}";

/// Seven services, created out of name order.
const NAMES: [&str; 7] = [
    "Golf", "Charlie", "Echo", "Alpha", "Foxtrot", "Bravo", "Delta",
];

async fn seed(app: &TestApp, names: &[&str]) {
    for name in names {
        app.service(json!({ "name": name })).await;
    }
}

async fn page(app: &TestApp, vars: Value) -> Value {
    app.ok(&app.admin(), PAGE, vars).await["services"].clone()
}

fn names(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

#[tokio::test]
async fn first_and_after_page_forward_through_every_row_in_name_order() {
    let app = TestApp::spawn().await;
    seed(&app, &NAMES).await;

    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut sizes = Vec::new();
    loop {
        let p = page(&app, json!({ "first": 3, "after": after })).await;
        assert_eq!(p["totalCount"], 7, "counted across all pages: {p}");
        let got = names(&p);
        sizes.push(got.len());
        let info = &p["pageInfo"];
        assert_eq!(info["hasPreviousPage"], !after.is_null(), "{p}");
        assert_eq!(
            info["endCursor"],
            p["edges"][got.len() - 1]["cursor"],
            "{p}"
        );
        assert_eq!(info["startCursor"], p["edges"][0]["cursor"], "{p}");
        seen.extend(got);
        if info["hasNextPage"] == false {
            break;
        }
        assert!(sizes.len() < 5, "paging does not end: {seen:?}");
        after = info["endCursor"].clone();
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, sorted(&NAMES));
}

#[tokio::test]
async fn a_row_inserted_before_the_cursor_neither_repeats_nor_skips_rows() {
    let app = TestApp::spawn().await;
    let originals = [
        "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel",
    ];
    seed(&app, &originals).await;

    let first = page(&app, json!({ "first": 3 })).await;
    assert_eq!(names(&first), ["Bravo", "Charlie", "Delta"]);
    // Sorts before everything already read: an offset would now repeat "Delta".
    app.service(json!({ "name": "Alpha" })).await;

    let second = page(
        &app,
        json!({ "first": 3, "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(names(&second), ["Echo", "Foxtrot", "Golf"]);
    assert_eq!(second["pageInfo"]["hasNextPage"], true);
    assert_eq!(second["totalCount"], 8, "the new row is counted");
    let third = page(
        &app,
        json!({ "first": 3, "after": second["pageInfo"]["endCursor"] }),
    )
    .await;
    assert_eq!(names(&third), ["Hotel"]);
    assert_eq!(third["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn last_and_before_page_backward() {
    let app = TestApp::spawn().await;
    seed(&app, &NAMES).await;

    let p = page(&app, json!({ "last": 3 })).await;
    assert_eq!(
        names(&p),
        ["Echo", "Foxtrot", "Golf"],
        "the last three, in list order"
    );
    assert_eq!(p["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(p["pageInfo"]["hasNextPage"], false);
    assert_eq!(p["totalCount"], 7);

    let p = page(
        &app,
        json!({ "last": 3, "before": p["pageInfo"]["startCursor"] }),
    )
    .await;
    assert_eq!(names(&p), ["Bravo", "Charlie", "Delta"]);
    assert_eq!(p["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(p["pageInfo"]["hasNextPage"], true);

    let p = page(
        &app,
        json!({ "last": 3, "before": p["pageInfo"]["startCursor"] }),
    )
    .await;
    assert_eq!(names(&p), ["Alpha"]);
    assert_eq!(p["pageInfo"]["hasPreviousPage"], false);

    // A cursor from the middle works both ways.
    let middle = page(&app, json!({ "first": 4 })).await;
    let cursor = middle["edges"][3]["cursor"].clone(); // "Delta"
    assert_eq!(
        names(&page(&app, json!({ "first": 2, "after": cursor })).await),
        ["Echo", "Foxtrot"]
    );
    assert_eq!(
        names(&page(&app, json!({ "last": 2, "before": cursor })).await),
        ["Bravo", "Charlie"]
    );
}

#[tokio::test]
async fn pages_in_creation_order_follow_cursors_in_both_directions() {
    let app = TestApp::spawn().await;
    seed(&app, &NAMES).await;
    for direction in ["ASC", "DESC"] {
        let sort = json!({ "field": "CREATED_AT", "direction": direction });
        let mut seen = Vec::new();
        let mut after = Value::Null;
        for _ in 0..4 {
            let p = page(&app, json!({ "first": 2, "after": after, "sort": sort })).await;
            seen.extend(names(&p));
            if p["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = p["pageInfo"]["endCursor"].clone();
        }
        let mut expected: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
        if direction == "DESC" {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{direction}");
    }
}

#[tokio::test]
async fn page_sizes_and_cursors_are_checked() {
    let app = TestApp::spawn().await;
    seed(&app, &NAMES[..2]).await;

    let p = page(&app, json!({ "first": 100 })).await;
    assert_eq!(names(&p).len(), 2, "100 is the largest page");
    let cases = [
        (json!({ "first": 101 }), Some("first")),
        (json!({ "first": -1 }), Some("first")),
        (json!({ "last": 101 }), Some("last")),
        (json!({ "last": -1 }), Some("last")),
        (json!({ "first": 2, "after": "garbage" }), Some("after")),
        (
            json!({ "first": 2, "after": "eyJub3QiOiJhIGN1cnNvciJ9" }),
            Some("after"),
        ),
        (json!({ "last": 2, "before": "%%%" }), Some("before")),
        (json!({ "first": 2, "last": 2 }), None),
    ];
    for (vars, expected_field) in cases {
        let body = app.gql(&app.admin(), PAGE, vars.clone()).await;
        assert_eq!(code(&body), "VALIDATION", "{vars} -> {body}");
        if let Some(f) = expected_field {
            assert_eq!(field(&body), f, "{vars} -> {body}");
        }
        assert_eq!(body["data"], Value::Null, "{body}");
    }
}

#[tokio::test]
async fn a_cursor_of_another_sort_order_is_a_validation_error() {
    let app = TestApp::spawn().await;
    seed(&app, &NAMES).await;
    let by_name = page(&app, json!({ "first": 2 })).await;
    let by_time = page(
        &app,
        json!({ "first": 2, "sort": { "field": "CREATED_AT" } }),
    )
    .await;
    let cases = [
        (
            by_name["pageInfo"]["endCursor"].clone(),
            json!({ "field": "CREATED_AT" }),
        ),
        (
            by_time["pageInfo"]["endCursor"].clone(),
            json!({ "field": "NAME" }),
        ),
        (
            by_time["pageInfo"]["endCursor"].clone(),
            json!({ "field": "UPDATED_AT" }),
        ),
    ];
    for (cursor, sort) in cases {
        let body = app
            .gql(
                &app.admin(),
                PAGE,
                json!({ "first": 2, "after": cursor, "sort": sort }),
            )
            .await;
        assert_eq!(code(&body), "VALIDATION", "{sort}: {body}");
        assert_eq!(field(&body), "after", "{sort}: {body}");
    }
    // The same order in the other direction is still a valid position.
    let body = page(
        &app,
        json!({ "first": 2, "after": by_name["pageInfo"]["endCursor"], "sort": { "field": "NAME", "direction": "DESC" } }),
    )
    .await;
    assert_eq!(names(&body), ["Alpha"]);
}
