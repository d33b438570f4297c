//! Organizations, users, support groups and memberships; who may see and change them.

use serde_json::{Value, json};

use crate::helpers::*;

const CREATE_ORG: &str = "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id code name kind active version } }";
const CREATE_USER: &str = "mutation($i: CreateUserInput!) { createUser(input: $i) { id subject displayName email organization { code } } }";
const CREATE_GROUP: &str = "mutation($i: CreateSupportGroupInput!) { createSupportGroup(input: $i) { id name email organization { code } members { subject } } }";
const ADD_MEMBER: &str = "mutation($g: ID!, $u: ID!) { addGroupMember(groupId: $g, userId: $u) { id members { subject displayName } } }";
const REMOVE_MEMBER: &str = "mutation($g: ID!, $u: ID!) { removeGroupMember(groupId: $g, userId: $u) { id members { subject } } }";
const ORG: &str = "query($id: ID!) { organization(id: $id) { code } }";

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn count(app: &TestApp, list: &str) -> i64 {
    let data = app
        .ok(
            &app.admin(),
            &format!("{{ {list} {{ totalCount }} }}"),
            json!({}),
        )
        .await;
    data[list]["totalCount"].as_i64().unwrap()
}

/// Organization codes of a connection, in order.
fn codes(data: &Value) -> Vec<&str> {
    data["organizations"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn organizations_users_and_groups_are_created_and_members_added_and_removed() {
    let app = TestApp::spawn().await;
    let data = app
        .ok(
            &app.admin(),
            CREATE_ORG,
            json!({ "i": { "code": "acme", "name": "ACME Corp" } }),
        )
        .await;
    let org = &data["createOrganization"];
    assert_eq!(org["code"], "acme");
    assert_eq!(org["name"], "ACME Corp");
    assert_eq!(org["kind"], "CUSTOMER");
    assert_eq!(org["active"], true);
    assert_eq!(org["version"], 1);

    let data = app
        .ok(
            &app.admin(),
            CREATE_USER,
            json!({ "i": { "organizationId": id(org), "subject": "alice@acme", "displayName": "Alice", "email": "alice@acme.example" } }),
        )
        .await;
    let user = data["createUser"].clone();
    assert_eq!(user["subject"], "alice@acme");
    assert_eq!(user["email"], "alice@acme.example");
    assert_eq!(user["organization"]["code"], "acme");

    let data = app
        .ok(
            &app.admin(),
            CREATE_GROUP,
            json!({ "i": { "name": "Service Desk", "email": "desk@provider.example" } }),
        )
        .await;
    let group = data["createSupportGroup"].clone();
    assert_eq!(
        group["organization"]["code"], "provider",
        "defaults to the caller's organization"
    );
    assert_eq!(group["members"], json!([]));
    let vars = json!({ "g": id(&group), "u": id(&user) });

    let data = app.ok(&app.admin(), ADD_MEMBER, vars.clone()).await;
    assert_eq!(
        data["addGroupMember"]["members"],
        json!([{ "subject": "alice@acme", "displayName": "Alice" }])
    );
    let read = app
        .ok(
            &app.agent(),
            "query($id: ID!) { supportGroup(id: $id) { members { subject } } }",
            json!({ "id": id(&group) }),
        )
        .await;
    assert_eq!(
        read["supportGroup"]["members"],
        json!([{ "subject": "alice@acme" }])
    );

    let body = app.gql(&app.admin(), ADD_MEMBER, vars.clone()).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    let data = app.ok(&app.admin(), REMOVE_MEMBER, vars.clone()).await;
    assert_eq!(data["removeGroupMember"]["members"], json!([]));
    let body = app.gql(&app.admin(), REMOVE_MEMBER, vars).await;
    assert_eq!(code(&body), "NOT_FOUND", "removing a non-member: {body}");
}

#[tokio::test]
async fn a_malformed_email_is_a_validation_error_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let users = count(&app, "users").await;
    for email in [
        "not-an-email",
        "@acme.example",
        "bob@localhost",
        "bob smith@acme.example",
    ] {
        let body = app
            .gql(
                &app.admin(),
                CREATE_USER,
                json!({ "i": { "organizationId": acme, "subject": "bob@acme", "displayName": "Bob", "email": email } }),
            )
            .await;
        assert_eq!(code(&body), "VALIDATION", "{email}: {body}");
        assert_eq!(field(&body), "email", "{email}: {body}");
    }
    assert_eq!(count(&app, "users").await, users, "nothing written");

    let body = app
        .gql(
            &app.admin(),
            CREATE_GROUP,
            json!({ "i": { "name": "Desk", "email": "desk" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "email");
    assert_eq!(count(&app, "supportGroups").await, 0, "nothing written");
}

#[tokio::test]
async fn organization_codes_are_checked_and_unique() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let before = count(&app, "organizations").await;
    for bad in [
        "a",
        "",
        "has space",
        "-leading",
        "dots.not.allowed",
        "ünicode",
        &"x".repeat(65),
    ] {
        let body = app
            .gql(
                &app.admin(),
                CREATE_ORG,
                json!({ "i": { "code": bad, "name": format!("Org {bad}") } }),
            )
            .await;
        assert_eq!(code(&body), "VALIDATION", "{bad:?}: {body}");
        assert_eq!(field(&body), "code", "{bad:?}: {body}");
    }
    for duplicate in ["acme", "ACME"] {
        let body = app
            .gql(
                &app.admin(),
                CREATE_ORG,
                json!({ "i": { "code": duplicate, "name": "Another Acme" } }),
            )
            .await;
        assert_eq!(code(&body), "CONFLICT", "{duplicate}: {body}");
    }
    assert_eq!(
        count(&app, "organizations").await,
        before,
        "nothing written"
    );
}

#[tokio::test]
async fn only_an_admin_creates_organizations() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let before = count(&app, "organizations").await;
    for token in [app.token("rita@acme", "acme", &["requester"]), app.agent()] {
        let body = app
            .gql(
                &token,
                CREATE_ORG,
                json!({ "i": { "code": "globex", "name": "Globex" } }),
            )
            .await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
    assert_eq!(
        count(&app, "organizations").await,
        before,
        "nothing written"
    );
}

#[tokio::test]
async fn a_requester_sees_only_its_own_organization() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let requester = app.token("rita@acme", "acme", &["requester"]);

    let data = app
        .ok(
            &requester,
            "{ organizations { totalCount nodes { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&data), ["acme"]);
    assert_eq!(data["organizations"]["totalCount"], 1);
    let data = app
        .ok(
            &app.admin(),
            "{ organizations { totalCount nodes { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["organizations"]["totalCount"], 3,
        "the admin sees all: {data}"
    );

    let data = app.ok(&requester, ORG, json!({ "id": acme })).await;
    assert_eq!(data["organization"]["code"], "acme");
    let missing = app
        .gql(&requester, ORG, json!({ "id": unknown_id("Organization") }))
        .await;
    let hidden = app.gql(&requester, ORG, json!({ "id": globex })).await;
    assert_eq!(code(&hidden), "NOT_FOUND", "{hidden}");
    assert_eq!(message(&hidden), message(&missing));
}

#[tokio::test]
async fn an_agent_sees_its_own_organization_and_those_it_serves() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let agent = token_with("sam@provider", "provider", &["agent"], &["acme"]);

    let data = app
        .ok(
            &agent,
            "{ organizations { totalCount nodes { code } } }",
            json!({}),
        )
        .await;
    let mut seen = codes(&data);
    seen.sort();
    assert_eq!(seen, ["acme", "provider"]);
    assert_eq!(data["organizations"]["totalCount"], 2);

    let data = app.ok(&agent, ORG, json!({ "id": acme })).await;
    assert_eq!(data["organization"]["code"], "acme");
    let missing = app
        .gql(&agent, ORG, json!({ "id": unknown_id("Organization") }))
        .await;
    for query in [ORG, "query($id: ID!) { node(id: $id) { id } }"] {
        let hidden = app.gql(&agent, query, json!({ "id": globex })).await;
        assert_eq!(code(&hidden), "NOT_FOUND", "{hidden}");
        assert_eq!(message(&hidden), message(&missing), "{hidden}");
    }
}

#[tokio::test]
async fn me_returns_the_subject_roles_and_organization() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    app.ok(
        &app.admin(),
        CREATE_USER,
        json!({ "i": { "organizationId": acme, "subject": "rita@acme", "displayName": "Rita" } }),
    )
    .await;
    const ME: &str = "{ me { subject roles organization { code kind } user { displayName } } }";

    let data = app
        .ok(
            &app.token("rita@acme", "acme", &["requester"]),
            ME,
            json!({}),
        )
        .await;
    assert_eq!(
        data["me"],
        json!({ "subject": "rita@acme", "roles": ["requester"], "organization": { "code": "acme", "kind": "CUSTOMER" }, "user": { "displayName": "Rita" } })
    );
    let data = app.ok(&app.admin(), ME, json!({})).await;
    assert_eq!(data["me"]["subject"], "admin@provider");
    assert_eq!(data["me"]["roles"], json!(["admin"]));
    assert_eq!(
        data["me"]["organization"],
        json!({ "code": "provider", "kind": "PROVIDER" })
    );
    assert_eq!(
        data["me"]["user"],
        Value::Null,
        "no user record with this subject"
    );
}

#[tokio::test]
async fn searches_ignore_case_and_treat_wildcards_literally() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    for name in ["Jane Doe", "JOHN 100% Smith", "Ann_Lee", "Annelee"] {
        app.ok(
            &app.admin(),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "organizationId": acme, "subject": name.to_lowercase().replace(' ', "."), "displayName": name } }),
        )
        .await;
    }
    let search = |term: &'static str| {
        let app = &app;
        async move {
            let data = app
                .ok(
                    &app.admin(),
                    "query($s: String) { users(filter: {search: $s}) { nodes { displayName } } }",
                    json!({ "s": term }),
                )
                .await;
            let mut names: Vec<String> = data["users"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["displayName"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        search("jane").await,
        vec!["Jane Doe"],
        "case-insensitive on a mixed-case column"
    );
    assert_eq!(
        search("100%").await,
        vec!["JOHN 100% Smith"],
        "% is literal"
    );
    assert_eq!(
        search("n_l").await,
        vec!["Ann_Lee"],
        "_ is literal, not any character"
    );
    assert_eq!(search("ANN").await, vec!["Ann_Lee", "Annelee"]);
}

#[tokio::test]
async fn me_finds_the_user_record_only_in_the_callers_organization() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    app.customer("globex").await;
    app.ok(
        &app.admin(),
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
        json!({ "i": { "organizationId": acme, "subject": "shared-subject", "displayName": "Acme Person" } }),
    )
    .await;
    let own = app.token("shared-subject", "acme", &["requester"]);
    let data = app
        .ok(&own, "{ me { user { displayName } } }", json!({}))
        .await;
    assert_eq!(data["me"]["user"]["displayName"], "Acme Person");
    let foreign = app.token("shared-subject", "globex", &["requester"]);
    let data = app
        .ok(&foreign, "{ me { user { displayName } } }", json!({}))
        .await;
    assert!(
        data["me"]["user"].is_null(),
        "another tenant's user record is not the caller's: {data}"
    );
}
