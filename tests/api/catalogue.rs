//! The service catalogue: creation rules, lifecycle, optimistic concurrency,
//! offerings, subscriptions, filters and sorting, and what customers may see.

use serde_json::{Value, json};

use crate::helpers::*;

const CREATE: &str = "mutation($i: CreateServiceInput!) {
    createService(input: $i) { id name description status criticality version organization { code } }
}";
const UPDATE: &str =
    "mutation($i: UpdateServiceInput!) { updateService(input: $i) { id name status version } }";
const RETIRE: &str =
    "mutation($id: ID!, $v: Int!) { retireService(id: $id, version: $v) { id status version } }";
const CREATE_OFFERING: &str = "mutation($i: CreateServiceOfferingInput!) {
    createServiceOffering(input: $i) { id name status version requestable }
}";
const UPDATE_OFFERING: &str = "mutation($i: UpdateServiceOfferingInput!) {
    updateServiceOffering(input: $i) { id status version requestable }
}";
const GET: &str =
    "query($id: ID!) { service(id: $id) { id name status version offerings { name status } } }";

async fn service_count(app: &TestApp) -> i64 {
    let data = app
        .ok(&app.admin(), "{ services { totalCount } }", json!({}))
        .await;
    data["services"]["totalCount"].as_i64().unwrap()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"))
}

fn names(connection: &Value) -> Vec<&str> {
    connection["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect()
}

/// Names of the services the admin sees with `filter` and `sort`.
async fn listed(app: &TestApp, filter: Value, sort: Value) -> Vec<String> {
    let data = app
        .ok(
            &app.admin(),
            "query($f: ServiceFilter, $s: ServiceSort) { services(filter: $f, sort: $s) { totalCount nodes { name } } }",
            json!({ "f": filter, "s": sort }),
        )
        .await;
    let out: Vec<String> = names(&data["services"])
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        data["services"]["totalCount"],
        out.len(),
        "totalCount matches the single page: {data}"
    );
    out
}

#[tokio::test]
async fn a_new_service_starts_in_the_pipeline_with_medium_criticality_at_version_one() {
    let app = TestApp::spawn().await;
    let data = app
        .ok(
            &app.admin(),
            CREATE,
            json!({ "i": { "name": "  E-mail  " } }),
        )
        .await;
    let s = &data["createService"];
    assert_eq!(s["name"], "E-mail", "the name is trimmed");
    assert_eq!(s["status"], "PIPELINE");
    assert_eq!(s["criticality"], "MEDIUM");
    assert_eq!(s["version"], 1);
    assert_eq!(s["description"], Value::Null);
    assert_eq!(
        s["organization"]["code"], "provider",
        "delivered by the caller's organization"
    );
    // What was returned is what is stored.
    let read = app.ok(&app.agent(), GET, json!({ "id": id(s) })).await;
    assert_eq!(read["service"]["name"], "E-mail");
    assert_eq!(read["service"]["status"], "PIPELINE");
    assert_eq!(read["service"]["version"], 1);
}

#[tokio::test]
async fn invalid_service_input_names_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let me = app
        .ok(&app.admin(), "{ me { organization { id } } }", json!({}))
        .await;
    let provider = me["me"]["organization"]["id"].clone();
    let data = app
        .ok(
            &app.admin(),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "organizationId": provider, "subject": "ann@provider", "displayName": "Ann" } }),
        )
        .await;
    let user = data["createUser"]["id"].as_str().unwrap().to_owned();
    let cases = [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "   " }), "name"),
        (json!({ "name": "x".repeat(201) }), "name"),
        (
            json!({ "name": "Valid", "ownerGroupId": "not-an-id" }),
            "ownerGroupId",
        ),
        (
            json!({ "name": "Valid", "ownerGroupId": user }),
            "ownerGroupId",
        ),
        (
            json!({ "name": "Valid", "ownerGroupId": unknown_id("SupportGroup") }),
            "ownerGroupId",
        ),
        (
            json!({ "name": "Valid", "ownerUserId": unknown_id("User") }),
            "ownerUserId",
        ),
    ];
    for (input, expected_field) in cases {
        let body = app.gql(&app.admin(), CREATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "VALIDATION", "{input} -> {body}");
        assert_eq!(field(&body), expected_field, "{input} -> {body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        assert_eq!(service_count(&app).await, 0, "nothing written for {input}");
    }
    // The limit is inclusive.
    let ok = app.service(json!({ "name": "y".repeat(200) })).await;
    assert_eq!(ok["name"].as_str().unwrap().chars().count(), 200);
    assert_eq!(service_count(&app).await, 1);
}

#[tokio::test]
async fn service_names_are_unique_per_organization_ignoring_case() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    app.service(json!({ "name": "Email" })).await;
    let other = app.service(json!({ "name": "Payroll" })).await;

    let body = app
        .gql(&app.admin(), CREATE, json!({ "i": { "name": " EMAIL " } }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(service_count(&app).await, 2, "nothing written");

    // Renaming onto an existing name is refused too, and leaves the record as it was.
    let body = app
        .gql(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": id(&other), "version": 1, "name": "email" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let read = app.ok(&app.admin(), GET, json!({ "id": id(&other) })).await;
    assert_eq!(read["service"]["name"], "Payroll");
    assert_eq!(read["service"]["version"], 1);

    // Another organization may use the same name.
    let data = app
        .ok(
            &app.admin(),
            CREATE,
            json!({ "i": { "name": "Email", "organizationId": acme } }),
        )
        .await;
    assert_eq!(data["createService"]["organization"]["code"], "acme");
    assert_eq!(service_count(&app).await, 3);
}

#[tokio::test]
async fn the_lifecycle_moves_forward_only_and_retiring_retires_the_offerings() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let sid = id(&s).to_owned();

    let data = app
        .ok(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 1, "status": "LIVE" } }),
        )
        .await;
    assert_eq!(data["updateService"]["status"], "LIVE");
    assert_eq!(data["updateService"]["version"], 2);

    let body = app
        .gql(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 2, "status": "PIPELINE" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "status");
    let msg = message(&body);
    assert!(
        msg.contains("LIVE") && msg.contains("PIPELINE"),
        "names the refused move: {msg}"
    );
    assert!(
        msg.contains("allowed from LIVE: RETIRED"),
        "names the allowed moves: {msg}"
    );

    for (name, status) in [("Mailbox", "LIVE"), ("Archive", "PIPELINE")] {
        app.ok(
            &app.admin(),
            CREATE_OFFERING,
            json!({ "i": { "serviceId": sid, "name": name, "status": status } }),
        )
        .await;
    }
    let data = app
        .ok(&app.admin(), RETIRE, json!({ "id": sid, "v": 2 }))
        .await;
    assert_eq!(data["retireService"]["status"], "RETIRED");
    assert_eq!(data["retireService"]["version"], 3);
    let read = app.ok(&app.admin(), GET, json!({ "id": sid })).await;
    assert_eq!(read["service"]["status"], "RETIRED");
    assert_eq!(
        read["service"]["offerings"],
        json!([{ "name": "Archive", "status": "RETIRED" }, { "name": "Mailbox", "status": "RETIRED" }])
    );

    let body = app
        .gql(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 3, "status": "LIVE" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "retired is final: {body}");
    assert_eq!(field(&body), "status");
    let read = app.ok(&app.admin(), GET, json!({ "id": sid })).await;
    assert_eq!(read["service"]["status"], "RETIRED");
    assert_eq!(read["service"]["version"], 3);

    // PIPELINE -> RETIRED directly is allowed.
    let p = app.service(json!({ "name": "Never launched" })).await;
    let data = app
        .ok(&app.admin(), RETIRE, json!({ "id": id(&p), "v": 1 }))
        .await;
    assert_eq!(data["retireService"]["status"], "RETIRED");
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_leaves_the_record_unchanged() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let sid = id(&s).to_owned();
    let data = app
        .ok(
            &app.admin(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 1, "name": "Mail" } }),
        )
        .await;
    assert_eq!(data["updateService"]["version"], 2);

    let body = app
        .gql(
            &app.agent(),
            UPDATE,
            json!({ "i": { "id": sid, "version": 1, "name": "Post", "status": "LIVE" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let body = app
        .gql(&app.agent(), RETIRE, json!({ "id": sid, "v": 1 }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    let read = app.ok(&app.admin(), GET, json!({ "id": sid })).await;
    assert_eq!(read["service"]["name"], "Mail");
    assert_eq!(read["service"]["status"], "PIPELINE");
    assert_eq!(read["service"]["version"], 2);
}

#[tokio::test]
async fn an_offering_is_live_only_while_its_service_is_live() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let sid = id(&s).to_owned();

    let body = app
        .gql(
            &app.admin(),
            CREATE_OFFERING,
            json!({ "i": { "serviceId": sid, "name": "Mailbox", "status": "LIVE" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "status");

    let data = app
        .ok(
            &app.admin(),
            CREATE_OFFERING,
            json!({ "i": { "serviceId": sid, "name": "Mailbox" } }),
        )
        .await;
    let offering = &data["createServiceOffering"];
    assert_eq!(offering["status"], "PIPELINE");
    assert_eq!(offering["requestable"], false);
    let oid = id(offering).to_owned();

    let body = app
        .gql(
            &app.admin(),
            UPDATE_OFFERING,
            json!({ "i": { "id": oid, "version": 1, "status": "LIVE" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "status");

    app.ok(
        &app.admin(),
        UPDATE,
        json!({ "i": { "id": sid, "version": 1, "status": "LIVE" } }),
    )
    .await;
    let data = app
        .ok(
            &app.admin(),
            UPDATE_OFFERING,
            json!({ "i": { "id": oid, "version": 1, "status": "LIVE" } }),
        )
        .await;
    assert_eq!(data["updateServiceOffering"]["status"], "LIVE");
    assert_eq!(data["updateServiceOffering"]["requestable"], true);
    assert_eq!(data["updateServiceOffering"]["version"], 2);
}

#[tokio::test]
async fn services_filter_by_status_search_customer_and_criticality_and_sort() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let email = app
        .service(json!({ "name": "Email", "status": "LIVE", "criticality": "HIGH" }))
        .await;
    app.service(json!({ "name": "Payroll", "status": "LIVE", "criticality": "CRITICAL" }))
        .await;
    app.service(json!({ "name": "Webmail Archive", "criticality": "LOW" }))
        .await;
    let backup = app.service(json!({ "name": "Backup" })).await;
    app.subscribe(id(&email), &acme).await;
    app.subscribe(id(&backup), &acme).await;

    assert_eq!(
        listed(&app, json!(null), json!(null)).await,
        ["Backup", "Email", "Payroll", "Webmail Archive"]
    );
    assert_eq!(
        listed(&app, json!({ "status": ["LIVE"] }), json!(null)).await,
        ["Email", "Payroll"]
    );
    assert_eq!(
        listed(&app, json!({ "status": ["PIPELINE"] }), json!(null)).await,
        ["Backup", "Webmail Archive"]
    );
    assert_eq!(
        listed(&app, json!({ "search": "MAIL" }), json!(null)).await,
        ["Email", "Webmail Archive"]
    );
    assert_eq!(
        listed(&app, json!({ "customerId": acme }), json!(null)).await,
        ["Backup", "Email"]
    );
    assert_eq!(
        listed(
            &app,
            json!({ "criticality": ["HIGH", "CRITICAL"] }),
            json!(null)
        )
        .await,
        ["Email", "Payroll"]
    );
    assert_eq!(
        listed(
            &app,
            json!({ "status": ["LIVE"], "search": "mail" }),
            json!(null)
        )
        .await,
        ["Email"]
    );
    assert!(
        listed(&app, json!({ "search": "nothing like it" }), json!(null))
            .await
            .is_empty()
    );

    assert_eq!(
        listed(
            &app,
            json!(null),
            json!({ "field": "NAME", "direction": "DESC" })
        )
        .await,
        ["Webmail Archive", "Payroll", "Email", "Backup"]
    );
    assert_eq!(
        listed(&app, json!(null), json!({ "field": "CREATED_AT" })).await,
        ["Email", "Payroll", "Webmail Archive", "Backup"]
    );
    assert_eq!(
        listed(
            &app,
            json!(null),
            json!({ "field": "CREATED_AT", "direction": "DESC" })
        )
        .await,
        ["Backup", "Webmail Archive", "Payroll", "Email"]
    );
}

#[tokio::test]
async fn subscribing_twice_is_a_conflict_and_a_retired_service_takes_no_subscriptions() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let s = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let sid = id(&s).to_owned();
    const SUBSCRIBE: &str = "mutation($s: ID!, $c: ID!) { subscribeCustomer(serviceId: $s, customerId: $c) { service { name } customer { code } } }";

    let data = app
        .ok(&app.admin(), SUBSCRIBE, json!({ "s": sid, "c": acme }))
        .await;
    assert_eq!(
        data["subscribeCustomer"],
        json!({ "service": { "name": "Email" }, "customer": { "code": "acme" } })
    );
    let body = app
        .gql(&app.admin(), SUBSCRIBE, json!({ "s": sid, "c": acme }))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");

    app.ok(&app.admin(), RETIRE, json!({ "id": sid, "v": 1 }))
        .await;
    let body = app
        .gql(&app.admin(), SUBSCRIBE, json!({ "s": sid, "c": globex }))
        .await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(field(&body), "serviceId");

    let data = app
        .ok(
            &app.admin(),
            "query($id: ID!) { service(id: $id) { customers { code } } }",
            json!({ "id": sid }),
        )
        .await;
    assert_eq!(
        data["service"]["customers"],
        json!([{ "code": "acme" }]),
        "one subscription, no more"
    );
}

#[tokio::test]
async fn node_returns_the_service_with_its_typename() {
    let app = TestApp::spawn().await;
    let s = app.service(json!({ "name": "Email" })).await;
    let data = app
        .ok(
            &app.agent(),
            "query($id: ID!) { node(id: $id) { __typename id ... on Service { name status } } }",
            json!({ "id": id(&s) }),
        )
        .await;
    assert_eq!(
        data["node"],
        json!({ "__typename": "Service", "id": id(&s), "name": "Email", "status": "PIPELINE" })
    );
}

#[tokio::test]
async fn a_requester_cannot_create_services() {
    let app = TestApp::spawn().await;
    app.customer("acme").await;
    let requester = app.token("rita@acme", "acme", &["requester"]);
    let body = app
        .gql(&requester, CREATE, json!({ "i": { "name": "Shadow IT" } }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(service_count(&app).await, 0, "nothing written");
}

#[tokio::test]
async fn a_requester_sees_only_non_pipeline_services_its_organization_subscribes_to() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let acme_live = app
        .service(json!({ "name": "Acme Mail", "status": "LIVE" }))
        .await;
    let acme_pipeline = app.service(json!({ "name": "Acme Portal" })).await;
    let globex_live = app
        .service(json!({ "name": "Globex Payroll", "status": "LIVE" }))
        .await;
    let unsubscribed = app
        .service(json!({ "name": "Internal Wiki", "status": "LIVE" }))
        .await;
    app.subscribe(id(&acme_live), &acme).await;
    app.subscribe(id(&acme_pipeline), &acme).await;
    app.subscribe(id(&globex_live), &globex).await;

    let requester = app.token("rita@acme", "acme", &["requester"]);
    let data = app
        .ok(
            &requester,
            "{ services { totalCount nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(names(&data["services"]), ["Acme Mail"], "{data}");
    assert_eq!(data["services"]["totalCount"], 1);
    // The admin sees all four, so the narrowing above is the requester's view.
    assert_eq!(service_count(&app).await, 4);

    let data = app
        .ok(&requester, GET, json!({ "id": id(&acme_live) }))
        .await;
    assert_eq!(data["service"]["name"], "Acme Mail");

    const BY_SERVICE: &str = "query($id: ID!) { service(id: $id) { name } }";
    const BY_NODE: &str = "query($id: ID!) { node(id: $id) { id } }";
    for query in [BY_SERVICE, BY_NODE] {
        let missing = app
            .gql(&requester, query, json!({ "id": unknown_id("Service") }))
            .await;
        assert_eq!(code(&missing), "NOT_FOUND", "{missing}");
        for hidden in [&globex_live, &acme_pipeline, &unsubscribed] {
            let body = app
                .gql(&requester, query, json!({ "id": id(hidden) }))
                .await;
            assert_eq!(body["data"], Value::Null, "{body}");
            assert_eq!(
                code(&body),
                code(&missing),
                "{} looks missing: {body}",
                hidden["name"]
            );
            assert_eq!(
                message(&body),
                message(&missing),
                "{} looks missing: {body}",
                hidden["name"]
            );
        }
    }
}

#[tokio::test]
async fn a_requester_sees_only_the_live_offerings_of_a_service() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let s = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let sid = id(&s).to_owned();
    app.subscribe(&sid, &acme).await;
    let mut offering_ids = Vec::new();
    for (name, status) in [("Mailbox", "LIVE"), ("Shared Calendar", "PIPELINE")] {
        let data = app
            .ok(
                &app.admin(),
                CREATE_OFFERING,
                json!({ "i": { "serviceId": sid, "name": name, "status": status } }),
            )
            .await;
        offering_ids.push(id(&data["createServiceOffering"]).to_owned());
    }

    let admin = app.ok(&app.admin(), GET, json!({ "id": sid })).await;
    assert_eq!(
        admin["service"]["offerings"],
        json!([{ "name": "Mailbox", "status": "LIVE" }, { "name": "Shared Calendar", "status": "PIPELINE" }])
    );
    let requester = app.token("rita@acme", "acme", &["requester"]);
    let data = app.ok(&requester, GET, json!({ "id": sid })).await;
    assert_eq!(
        data["service"]["offerings"],
        json!([{ "name": "Mailbox", "status": "LIVE" }])
    );
    let data = app
        .ok(
            &requester,
            "query($id: ID!) { service(id: $id) { offerings(status: PIPELINE) { name } } }",
            json!({ "id": sid }),
        )
        .await;
    assert_eq!(data["service"]["offerings"], json!([]));

    const OFFERING: &str = "query($id: ID!) { serviceOffering(id: $id) { name } }";
    let data = app
        .ok(&requester, OFFERING, json!({ "id": offering_ids[0] }))
        .await;
    assert_eq!(data["serviceOffering"]["name"], "Mailbox");
    let missing = app
        .gql(
            &requester,
            OFFERING,
            json!({ "id": unknown_id("ServiceOffering") }),
        )
        .await;
    let hidden = app
        .gql(&requester, OFFERING, json!({ "id": offering_ids[1] }))
        .await;
    assert_eq!(code(&hidden), "NOT_FOUND", "{hidden}");
    assert_eq!(message(&hidden), message(&missing));
}

#[tokio::test]
async fn filtering_by_another_tenants_customer_id_reveals_nothing() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let shared = app
        .service(json!({ "name": "Shared Mail", "status": "LIVE" }))
        .await;
    let acme_only = app
        .service(json!({ "name": "Acme Wiki", "status": "LIVE" }))
        .await;
    app.subscribe(id(&shared), &acme).await;
    app.subscribe(id(&shared), &globex).await;
    app.subscribe(id(&acme_only), &acme).await;
    const BY_CUSTOMER: &str =
        "query($c: ID!) { services(filter: { customerId: $c }) { totalCount nodes { name } } }";

    let requester = app.token("rita@acme", "acme", &["requester"]);
    let agent = token_with("sam@provider", "provider", &["agent"], &["acme"]);
    for token in [&requester, &agent] {
        let own = app.ok(token, BY_CUSTOMER, json!({ "c": acme })).await;
        assert_eq!(names(&own["services"]), ["Acme Wiki", "Shared Mail"]);
        // Which services globex subscribes to is globex's business.
        let missing = app
            .ok(
                token,
                BY_CUSTOMER,
                json!({ "c": unknown_id("Organization") }),
            )
            .await;
        let other = app.ok(token, BY_CUSTOMER, json!({ "c": globex })).await;
        assert_eq!(
            other, missing,
            "another tenant's id answers like a missing one"
        );
        assert_eq!(other["services"]["totalCount"], 0);
    }
    // The admin sees globex's subscriptions.
    let data = app
        .ok(&app.admin(), BY_CUSTOMER, json!({ "c": globex }))
        .await;
    assert_eq!(names(&data["services"]), ["Shared Mail"]);
}

#[tokio::test]
async fn an_owner_group_of_an_organization_the_agent_does_not_serve_looks_missing() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    const GROUP: &str =
        "mutation($i: CreateSupportGroupInput!) { createSupportGroup(input: $i) { id } }";
    let mut groups = Vec::new();
    for org in [&acme, &globex] {
        let data = app
            .ok(
                &app.admin(),
                GROUP,
                json!({ "i": { "organizationId": org, "name": "Desk" } }),
            )
            .await;
        groups.push(
            data["createSupportGroup"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let agent = token_with("sam@provider", "provider", &["agent"], &["acme"]);

    let missing = app
        .gql(
            &agent,
            CREATE,
            json!({ "i": { "name": "Email", "ownerGroupId": unknown_id("SupportGroup") } }),
        )
        .await;
    let hidden = app
        .gql(
            &agent,
            CREATE,
            json!({ "i": { "name": "Email", "ownerGroupId": groups[1] } }),
        )
        .await;
    assert_eq!(code(&hidden), "VALIDATION", "{hidden}");
    assert_eq!(field(&hidden), "ownerGroupId");
    assert_eq!(message(&hidden), message(&missing));
    assert_eq!(service_count(&app).await, 0, "nothing written");

    let data = app
        .ok(
            &agent,
            "mutation($i: CreateServiceInput!) { createService(input: $i) { ownerGroup { organization { code } } } }",
            json!({ "i": { "name": "Email", "ownerGroupId": groups[0] } }),
        )
        .await;
    assert_eq!(
        data["createService"]["ownerGroup"]["organization"]["code"],
        "acme"
    );
}
