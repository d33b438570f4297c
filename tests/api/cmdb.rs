//! Configuration management over HTTP: class validation, relationships, impact
//! analysis (cycles, depth, redundancy, tenancy), bulk upsert and `ciAsOf`.

use serde_json::{Value, json};

use crate::helpers::*;

const CREATE_CI: &str = "mutation($i: CreateConfigurationItemInput!) { createConfigurationItem(input: $i) { id version name status organization { code } } }";
const ADD_REL: &str = "mutation($i: AddCiRelationshipInput!) { addCiRelationship(input: $i) { id kind name reverseName redundant } }";
const IMPACT: &str = "query($id: ID!, $d: ImpactDirection!, $max: Int, $r: Boolean!) {
  ciImpact(id: $id, direction: $d, maxDepth: $max, considerRedundancy: $r) {
    reachedCount maxDepth
    configurationItems { depth path configurationItem { id name } }
    services { depth service { name } via { name } }
    customers { code }
  } }";
const UPSERT: &str = "mutation($i: UpsertConfigurationItemsInput!) { upsertConfigurationItems(input: $i) {
  created updated unchanged errors
  items { source externalId status error { code field message } configurationItem { id name version } }
  relationships { index status error { code field message } relationship { kind redundant } }
} }";

async fn ci(app: &TestApp, name: &str, class: &str, attributes: Value) -> String {
    ci_in(app, &app.admin(), name, class, attributes, None).await
}

async fn ci_in(
    app: &TestApp,
    token: &str,
    name: &str,
    class: &str,
    attributes: Value,
    org: Option<&str>,
) -> String {
    let mut input = json!({ "name": name, "classCode": class, "attributes": attributes });
    if let Some(org) = org {
        input["organizationId"] = json!(org);
    }
    let data = app.ok(token, CREATE_CI, json!({ "i": input })).await;
    data["createConfigurationItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn app_ci(app: &TestApp, name: &str) -> String {
    ci(app, name, "application", json!({})).await
}

async fn relate(app: &TestApp, source: &str, kind: &str, target: &str, redundant: bool) -> Value {
    let i = json!({ "sourceId": source, "targetId": target, "kind": kind, "redundant": redundant });
    app.ok(&app.admin(), ADD_REL, json!({ "i": i })).await["addCiRelationship"].clone()
}

async fn impact(
    app: &TestApp,
    token: &str,
    id: &str,
    direction: &str,
    max: Option<i32>,
    redundancy: bool,
) -> Value {
    let vars = json!({ "id": id, "d": direction, "max": max, "r": redundancy });
    app.ok(token, IMPACT, vars).await["ciImpact"].clone()
}

/// `name -> depth` of the reached CIs.
fn depths(impact: &Value) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = impact["configurationItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["configurationItem"]["name"].as_str().unwrap().to_owned(),
                c["depth"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = list.iter().map(|(n, d)| (n.to_string(), *d)).collect();
    out.sort();
    out
}

#[tokio::test]
async fn attributes_are_validated_against_the_class_naming_the_attribute() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let classes = app.ok(&admin, "{ configurationItemClasses(first: 50) { nodes { code attributes { name type required } } } }", json!({})).await;
    let codes: Vec<&str> = classes["configurationItemClasses"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    for standard in [
        "application",
        "business_service_component",
        "cloud_resource",
        "database",
        "network_device",
        "server",
        "storage",
        "virtual_machine",
    ] {
        assert!(codes.contains(&standard), "{standard} is seeded: {codes:?}");
    }

    let cases = [
        (
            json!({ "name": "web-01", "classCode": "server", "attributes": { "cpuCount": 4 } }),
            "attributes.hostname",
        ),
        (
            json!({ "name": "web-01", "classCode": "server", "attributes": { "hostname": "web-01", "cpuCount": "four" } }),
            "attributes.cpuCount",
        ),
        (
            json!({ "name": "web-01", "classCode": "server", "attributes": { "hostname": "web-01", "os": "beos" } }),
            "attributes.os",
        ),
        (
            json!({ "name": "web-01", "classCode": "server", "attributes": { "hostname": "web-01", "colour": "red" } }),
            "attributes.colour",
        ),
        (
            json!({ "name": "web-01", "classCode": "server", "attributes": { "hostname": "web-01", "purchasedAt": "yesterday" } }),
            "attributes.purchasedAt",
        ),
        (
            json!({ "name": "web-01", "classCode": "toaster", "attributes": {} }),
            "classCode",
        ),
    ];
    for (input, field) in cases {
        let body = app.gql(&admin, CREATE_CI, json!({ "i": input })).await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(field.trim_start_matches("attributes."))
                || field == "classCode",
            "{body}"
        );
    }
    let count = app
        .ok(&admin, "{ configurationItems { totalCount } }", json!({}))
        .await;
    assert_eq!(
        count["configurationItems"]["totalCount"], 0,
        "nothing written"
    );

    let ok = app
        .ok(&admin, CREATE_CI, json!({ "i": { "name": "web-01", "classCode": "server", "attributes": { "hostname": "web-01", "cpuCount": 4, "memoryGb": 15.5, "os": "linux", "purchasedAt": "2025-01-31T10:00:00Z" } } }))
        .await;
    assert_eq!(ok["createConfigurationItem"]["status"], "IN_PRODUCTION");

    // Admins add classes; agents may not; requesters may not record CIs.
    let class = json!({ "code": "printer", "name": "Printer", "attributes": [
        { "name": "colour", "type": "BOOLEAN", "required": true },
        { "name": "paper", "type": "ENUM", "values": ["a4", "letter"] } ] });
    let create_class = "mutation($i: CreateConfigurationItemClassInput!) { createConfigurationItemClass(input: $i) { id code attributes { name type required values } } }";
    let body = app
        .gql(&app.agent(), create_class, json!({ "i": class }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let created = app.ok(&admin, create_class, json!({ "i": class })).await;
    assert_eq!(
        created["createConfigurationItemClass"]["attributes"][1]["values"],
        json!(["a4", "letter"])
    );
    let body = app.gql(&admin, create_class, json!({ "i": { "code": "bad", "name": "Bad", "attributes": [{ "name": "x", "type": "ENUM" }] } })).await;
    assert_eq!(code(&body), "VALIDATION");
    let body = app.gql(&admin, CREATE_CI, json!({ "i": { "name": "p1", "classCode": "printer", "attributes": { "colour": "yes" } } })).await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "attributes.colour"
    );
    ci(
        &app,
        "p1",
        "printer",
        json!({ "colour": true, "paper": "a4" }),
    )
    .await;

    app.customer("acme").await;
    let requester = app.token("rita@acme", "acme", &["requester"]);
    let body = app
        .gql(
            &requester,
            CREATE_CI,
            json!({ "i": { "name": "x", "classCode": "application" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Filters: class, attribute equality (typed), text search.
    let q = "query($f: ConfigurationItemFilter) { configurationItems(filter: $f) { totalCount nodes { name } } }";
    let by_attr = app
        .ok(
            &admin,
            q,
            json!({ "f": { "attributes": [{ "name": "cpuCount", "value": 4 }] } }),
        )
        .await;
    assert_eq!(by_attr["configurationItems"]["totalCount"], 1, "{by_attr}");
    let by_bool = app
        .ok(
            &admin,
            q,
            json!({ "f": { "attributes": [{ "name": "colour", "value": true }] } }),
        )
        .await;
    assert_eq!(
        by_bool["configurationItems"]["nodes"][0]["name"], "p1",
        "{by_bool}"
    );
    let by_str = app.ok(&admin, q, json!({ "f": { "classCodes": ["server"], "attributes": [{ "name": "os", "value": "linux" }] } })).await;
    assert_eq!(by_str["configurationItems"]["totalCount"], 1);
    let none = app
        .ok(
            &admin,
            q,
            json!({ "f": { "attributes": [{ "name": "cpuCount", "value": "4" }] } }),
        )
        .await;
    assert_eq!(
        none["configurationItems"]["totalCount"], 0,
        "typed comparison"
    );
    let search = app.ok(&admin, q, json!({ "f": { "search": "WEB" } })).await;
    assert_eq!(search["configurationItems"]["totalCount"], 1);
}

#[tokio::test]
async fn relationships_read_from_both_ends_and_bad_edges_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let web = app_ci(&app, "shop-web").await;
    let host = ci(
        &app,
        "vm-17",
        "virtual_machine",
        json!({ "hostname": "vm-17" }),
    )
    .await;
    let rel = relate(&app, &web, "RUNS_ON", &host, false).await;
    assert_eq!(rel["name"], "runs on");
    assert_eq!(rel["reverseName"], "runs");

    let q = "query($id: ID!) { node(id: $id) { ... on ConfigurationItem { name relationships { direction name kind configurationItem { name } } } } }";
    let from_web = app.ok(&admin, q, json!({ "id": web })).await;
    assert_eq!(
        from_web["node"]["relationships"],
        json!([{ "direction": "OUTGOING", "name": "runs on", "kind": "RUNS_ON", "configurationItem": { "name": "vm-17" } }])
    );
    let from_host = app.ok(&admin, q, json!({ "id": host })).await;
    assert_eq!(from_host["node"]["relationships"][0]["name"], "runs");
    assert_eq!(
        from_host["node"]["relationships"][0]["configurationItem"]["name"],
        "shop-web"
    );

    let add =
        |s: &str, t: &str| json!({ "i": { "sourceId": s, "targetId": t, "kind": "RUNS_ON" } });
    let body = app.gql(&admin, ADD_REL, add(&web, &web)).await;
    assert_eq!(code(&body), "VALIDATION", "self edge: {body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "targetId");
    let body = app.gql(&admin, ADD_REL, add(&web, &host)).await;
    assert_eq!(code(&body), "CONFLICT", "duplicate edge: {body}");

    let globex = app.customer("globex").await;
    let foreign = ci_in(
        &app,
        &admin,
        "globex-db",
        "database",
        json!({ "engine": "oracle" }),
        Some(&globex),
    )
    .await;
    let body = app.gql(&admin, ADD_REL, add(&web, &foreign)).await;
    assert_eq!(code(&body), "VALIDATION", "cross-tenant edge: {body}");
    // An agent who cannot see the other tenant gets the same answer as for a missing CI.
    app.customer("acme").await;
    let acme_agent = token_with("agent@provider", "provider", &["agent"], &["acme"]);
    let body = app.gql(&acme_agent, ADD_REL, add(&web, &foreign)).await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(body["errors"][0]["message"], "configuration item not found");
    let body = app
        .gql(
            &acme_agent,
            "query($id: ID!) { configurationItem(id: $id) { name } }",
            json!({ "id": foreign }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");

    let rels = app
        .ok(
            &admin,
            "{ auditEvents(filter: {recordType: \"CiRelationship\"}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        rels["auditEvents"]["totalCount"], 1,
        "one audited relationship, nothing of the refused ones"
    );
}

#[tokio::test]
async fn impact_analysis_survives_cycles_honours_depth_and_finds_services_and_customers() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    // shop -> api -> db, and a cycle api -> cache -> api; storage contains db's volume.
    let shop = app_ci(&app, "shop").await;
    let api = app_ci(&app, "api").await;
    let cache = app_ci(&app, "cache").await;
    let db = ci(&app, "db", "database", json!({ "engine": "postgresql" })).await;
    let san = ci(&app, "san", "storage", json!({})).await;
    relate(&app, &shop, "DEPENDS_ON", &api, false).await;
    relate(&app, &api, "DEPENDS_ON", &db, false).await;
    relate(&app, &api, "DEPENDS_ON", &cache, false).await;
    relate(&app, &cache, "DEPENDS_ON", &api, false).await;
    relate(&app, &san, "CONTAINS", &db, false).await;

    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Web shop", "status": "LIVE" }))
        .await;
    let svc_id = svc["id"].as_str().unwrap();
    app.subscribe(svc_id, &acme).await;
    app.ok(&admin, "mutation($s: ID!, $c: ID!) { addServiceConfigurationItem(serviceId: $s, configurationItemId: $c) { id } }", json!({ "s": svc_id, "c": shop })).await;

    // Downstream from the storage: what goes down with it.
    let down = impact(&app, &admin, &san, "DOWNSTREAM", None, false).await;
    assert_eq!(
        depths(&down),
        pairs(&[("san", 0), ("db", 1), ("api", 2), ("cache", 3), ("shop", 3)])
    );
    let shop_row = down["configurationItems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["configurationItem"]["name"] == "shop")
        .unwrap();
    assert_eq!(shop_row["path"], json!([san, db, api, shop]));
    assert_eq!(
        down["services"],
        json!([{ "depth": 3, "service": { "name": "Web shop" }, "via": { "name": "shop" } }])
    );
    assert_eq!(down["customers"], json!([{ "code": "acme" }]));

    // Depth limits.
    let shallow = impact(&app, &admin, &san, "DOWNSTREAM", Some(2), false).await;
    assert_eq!(
        depths(&shallow),
        pairs(&[("san", 0), ("db", 1), ("api", 2)])
    );
    assert_eq!(shallow["services"], json!([]));
    let body = app
        .gql(
            &admin,
            IMPACT,
            json!({ "id": san, "d": "DOWNSTREAM", "max": 0, "r": false }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(body["errors"][0]["extensions"]["field"], "maxDepth");

    // The cycle: from the cache, api and cache reach each other and the walk ends.
    let from_cache = impact(&app, &admin, &cache, "DOWNSTREAM", Some(50), false).await;
    assert_eq!(
        depths(&from_cache),
        pairs(&[("cache", 0), ("api", 1), ("shop", 2)])
    );

    // Upstream from the shop: what it depends on, the container included.
    let up = impact(&app, &admin, &shop, "UPSTREAM", None, false).await;
    assert_eq!(
        depths(&up),
        pairs(&[("shop", 0), ("api", 1), ("db", 2), ("cache", 2), ("san", 3)])
    );
}

#[tokio::test]
async fn redundancy_keeps_a_dependent_up_while_a_member_survives() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let app_ci_id = app_ci(&app, "payments").await;
    let db1 = ci(&app, "db-a", "database", json!({ "engine": "postgresql" })).await;
    let db2 = ci(&app, "db-b", "database", json!({ "engine": "postgresql" })).await;
    let host = ci(&app, "host-1", "server", json!({ "hostname": "host-1" })).await;
    let lone = ci(&app, "ledger", "database", json!({ "engine": "oracle" })).await;
    relate(&app, &app_ci_id, "DEPENDS_ON", &db1, true).await;
    relate(&app, &app_ci_id, "DEPENDS_ON", &db2, true).await;
    relate(&app, &db1, "RUNS_ON", &host, false).await;
    relate(&app, &db2, "RUNS_ON", &host, false).await;
    let svc = app
        .service(json!({ "name": "Payments", "status": "LIVE" }))
        .await;
    app.ok(&admin, "mutation($s: ID!, $c: ID!) { addServiceConfigurationItem(serviceId: $s, configurationItemId: $c) { id } }", json!({ "s": svc["id"], "c": app_ci_id })).await;

    // One member down: with redundancy the application stays up.
    let one = impact(&app, &admin, &db1, "DOWNSTREAM", None, true).await;
    assert_eq!(depths(&one), pairs(&[("db-a", 0)]));
    assert_eq!(one["services"], json!([]));
    let naive = impact(&app, &admin, &db1, "DOWNSTREAM", None, false).await;
    assert_eq!(depths(&naive), pairs(&[("db-a", 0), ("payments", 1)]));
    assert_eq!(naive["services"][0]["service"]["name"], "Payments");

    // Every member down (they share a host): the application goes down too.
    let all = impact(&app, &admin, &host, "DOWNSTREAM", None, true).await;
    assert_eq!(
        depths(&all),
        pairs(&[("host-1", 0), ("db-a", 1), ("db-b", 1), ("payments", 2)])
    );
    assert_eq!(all["services"][0]["service"]["name"], "Payments");
    let path = all["configurationItems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["configurationItem"]["name"] == "payments")
        .unwrap()["path"]
        .clone();
    assert_eq!(path.as_array().unwrap().len(), 3, "{path}");

    // A non-redundant dependency next to a redundancy group still takes it down.
    relate(&app, &app_ci_id, "DEPENDS_ON", &lone, false).await;
    let ledger = impact(&app, &admin, &lone, "DOWNSTREAM", None, true).await;
    assert_eq!(depths(&ledger), pairs(&[("ledger", 0), ("payments", 1)]));
}

#[tokio::test]
async fn impact_results_stay_within_the_callers_tenants() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let acme_app = ci_in(
        &app,
        &admin,
        "acme-erp",
        "application",
        json!({}),
        Some(&acme),
    )
    .await;
    let acme_db = ci_in(
        &app,
        &admin,
        "acme-db",
        "database",
        json!({ "engine": "sqlserver" }),
        Some(&acme),
    )
    .await;
    let globex_app = ci_in(
        &app,
        &admin,
        "globex-erp",
        "application",
        json!({}),
        Some(&globex),
    )
    .await;
    relate(&app, &acme_app, "DEPENDS_ON", &acme_db, false).await;
    // A shared provider service made of both customers' CIs.
    let svc = app
        .service(json!({ "name": "Hosted ERP", "status": "LIVE" }))
        .await;
    let svc_id = svc["id"].as_str().unwrap();
    app.subscribe(svc_id, &acme).await;
    app.subscribe(svc_id, &globex).await;
    let link = "mutation($s: ID!, $c: ID!) { addServiceConfigurationItem(serviceId: $s, configurationItemId: $c) { id } }";
    app.ok(&admin, link, json!({ "s": svc_id, "c": acme_app }))
        .await;
    app.ok(&admin, link, json!({ "s": svc_id, "c": globex_app }))
        .await;

    let acme_user = app.token("rita@acme", "acme", &["requester"]);
    let seen = impact(&app, &acme_user, &acme_db, "DOWNSTREAM", None, false).await;
    assert_eq!(depths(&seen), pairs(&[("acme-db", 0), ("acme-erp", 1)]));
    assert_eq!(seen["services"][0]["service"]["name"], "Hosted ERP");
    assert_eq!(
        seen["customers"],
        json!([{ "code": "acme" }]),
        "globex is not revealed"
    );

    let body = app
        .gql(
            &acme_user,
            IMPACT,
            json!({ "id": globex_app, "d": "DOWNSTREAM", "max": null, "r": false }),
        )
        .await;
    assert_eq!(
        code(&body),
        "NOT_FOUND",
        "another tenant's CI looks missing: {body}"
    );
    let missing = app.gql(&acme_user, IMPACT, json!({ "id": "Q29uZmlndXJhdGlvbkl0ZW06OTk5OQ", "d": "DOWNSTREAM", "max": null, "r": false })).await;
    assert_eq!(
        body["errors"][0]["message"],
        missing["errors"][0]["message"]
    );

    let list = app
        .ok(
            &acme_user,
            "{ configurationItems { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(list["configurationItems"]["totalCount"], 2);
    let svc_cis = app
        .ok(
            &acme_user,
            "query($id: ID!) { service(id: $id) { configurationItems { name } } }",
            json!({ "id": svc_id }),
        )
        .await;
    assert_eq!(
        svc_cis["service"]["configurationItems"],
        json!([{ "name": "acme-erp" }])
    );

    let provider_view = impact(&app, &admin, &acme_db, "DOWNSTREAM", None, false).await;
    assert_eq!(
        provider_view["customers"],
        json!([{ "code": "acme" }, { "code": "globex" }])
    );
}

fn batch(items: usize, prefix: &str) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|i| json!({ "source": "discovery", "externalId": format!("{prefix}-{i}"), "classCode": "server", "name": format!("{prefix}-{i}"), "attributes": { "hostname": format!("{prefix}-{i}.example"), "cpuCount": 8 } }))
        .collect();
    json!(items)
}

#[tokio::test]
async fn bulk_upsert_is_idempotent_and_answers_per_item() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let rel = |from: &str, to: &str, redundant: bool| json!({ "source": { "source": "discovery", "externalId": from }, "target": { "source": "discovery", "externalId": to }, "kind": "CONNECTS_TO", "redundant": redundant });
    let input = json!({ "items": batch(3, "srv"), "relationships": [rel("srv-0", "srv-1", false), rel("srv-0", "srv-2", true)] });

    let first =
        app.ok(&admin, UPSERT, json!({ "i": input })).await["upsertConfigurationItems"].clone();
    assert_eq!(
        (first["created"].as_i64(), first["errors"].as_i64()),
        (Some(3), Some(0)),
        "{first}"
    );
    assert!(
        first["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "CREATED"),
        "{first}"
    );
    let audit_q = "{ auditEvents(first: 1) { totalCount } configurationItems { totalCount } }";
    let before = app.ok(&admin, audit_q, json!({})).await;

    let again =
        app.ok(&admin, UPSERT, json!({ "i": input })).await["upsertConfigurationItems"].clone();
    assert_eq!(again["unchanged"], 3, "{again}");
    assert!(
        again["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "UNCHANGED" && i["configurationItem"]["version"] == 1)
    );
    assert!(
        again["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "UNCHANGED"),
        "{again}"
    );
    assert_eq!(
        app.ok(&admin, audit_q, json!({})).await,
        before,
        "the same call twice leaves the same rows and audit trail"
    );

    // One changed, one bad (wrong attribute type), one new, one referring to the bad one.
    let mut items = batch(3, "srv");
    items[1]["attributes"]["cpuCount"] = json!(16);
    items[2]["attributes"]["cpuCount"] = json!("lots");
    items.as_array_mut().unwrap().push(json!({ "source": "discovery", "externalId": "sw-1", "classCode": "network_device", "name": "core switch", "attributes": { "deviceType": "switch" } }));
    let mixed = json!({ "items": items, "relationships": [rel("srv-0", "sw-1", false), rel("srv-2", "sw-1", false), rel("sw-1", "sw-1", false), rel("srv-0", "nowhere", false), rel("srv-0", "srv-1", true)] });
    let out =
        app.ok(&admin, UPSERT, json!({ "i": mixed })).await["upsertConfigurationItems"].clone();
    let statuses: Vec<&str> = out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["UNCHANGED", "UPDATED", "ERROR", "CREATED"],
        "{out}"
    );
    assert_eq!(out["items"][1]["configurationItem"]["version"], 2);
    assert_eq!(out["items"][2]["error"]["code"], "VALIDATION");
    assert_eq!(out["items"][2]["error"]["field"], "attributes.cpuCount");
    let rel_statuses: Vec<&str> = out["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        rel_statuses,
        ["CREATED", "ERROR", "ERROR", "ERROR", "UPDATED"],
        "{out}"
    );
    assert_eq!(
        out["relationships"][2]["error"]["field"], "target",
        "self edge"
    );
    assert_eq!(out["relationships"][4]["relationship"]["redundant"], true);
    let srv2 = app.ok(&admin, "{ configurationItems(filter: {externalId: \"srv-2\"}) { nodes { version attribute(name: \"cpuCount\") } } }", json!({})).await;
    assert_eq!(
        srv2["configurationItems"]["nodes"][0],
        json!({ "version": 1, "attribute": 8 }),
        "nothing of the failed item was written"
    );

    // Over the limit: refused whole, nothing written.
    let count_before = app.ok(&admin, audit_q, json!({})).await;
    let body = app
        .gql(
            &admin,
            UPSERT,
            json!({ "i": { "items": batch(1001, "big") } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "{}", body["errors"]);
    assert_eq!(body["errors"][0]["extensions"]["field"], "items");
    assert_eq!(app.ok(&admin, audit_q, json!({})).await, count_before);

    // Tenancy: an agent serving only acme cannot upsert into globex; requesters are read-only.
    app.customer("acme").await;
    let globex = app.customer("globex").await;
    let acme_agent = token_with("agent@provider", "provider", &["agent"], &["acme"]);
    let body = app
        .gql(
            &acme_agent,
            UPSERT,
            json!({ "i": { "organizationId": globex, "items": batch(1, "g") } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    let body = app
        .gql(
            &app.token("rita@acme", "acme", &["requester"]),
            UPSERT,
            json!({ "i": { "items": batch(1, "r") } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn ci_as_of_answers_from_the_audit_trail() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let before_create = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let id = ci(
        &app,
        "erp-v1",
        "application",
        json!({ "appVersion": "1.0" }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let t1 = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let update = "mutation($i: UpdateConfigurationItemInput!) { updateConfigurationItem(input: $i) { version } }";
    app.ok(&admin, update, json!({ "i": { "id": id, "version": 1, "name": "erp-v2", "attributes": { "appVersion": "2.0" } } })).await;
    let body = app
        .gql(
            &admin,
            update,
            json!({ "i": { "id": id, "version": 1, "name": "stale" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "version check");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let t2 = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.ok(
        &admin,
        "mutation($id: ID!) { retireConfigurationItem(id: $id, version: 2) { status } }",
        json!({ "id": id }),
    )
    .await;

    let q = "query($id: ID!, $at: DateTime!) { ciAsOf(id: $id, at: $at) { name status version attribute(name: \"appVersion\") } }";
    let at = |t: chrono::DateTime<chrono::Utc>| json!({ "id": id, "at": t.to_rfc3339() });
    let body = app.gql(&admin, q, at(before_create)).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let v1 = app.ok(&admin, q, at(t1)).await;
    assert_eq!(
        v1["ciAsOf"],
        json!({ "name": "erp-v1", "status": "IN_PRODUCTION", "version": 1, "attribute": "1.0" })
    );
    let v2 = app.ok(&admin, q, at(t2)).await;
    assert_eq!(
        v2["ciAsOf"],
        json!({ "name": "erp-v2", "status": "IN_PRODUCTION", "version": 2, "attribute": "2.0" })
    );
    let now = app.ok(&admin, q, at(chrono::Utc::now())).await;
    assert_eq!(now["ciAsOf"]["status"], "RETIRED");

    // Another tenant's CI history is as invisible as the CI.
    app.customer("acme").await;
    let body = app
        .gql(&app.token("rita@acme", "acme", &["requester"]), q, at(t1))
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
}

#[tokio::test]
async fn ci_changed_reaches_subscribers_who_may_see_the_ci() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let globex = app.customer("globex").await;
    let mut acme_ws = app.ws("graphql-transport-ws").await;
    acme_ws
        .init(&app.token("rita@acme", "acme", &["requester"]))
        .await;
    acme_ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { ciChanged { kind configurationItem { name } changedFields } }" } })).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    ci_in(
        &app,
        &app.admin(),
        "globex-only",
        "application",
        json!({}),
        Some(&globex),
    )
    .await;
    ci_in(
        &app,
        &app.admin(),
        "acme-app",
        "application",
        json!({}),
        Some(&acme),
    )
    .await;
    let msg = acme_ws.json(5).await;
    assert_eq!(
        msg["payload"]["data"]["ciChanged"],
        json!({ "kind": "CREATED", "configurationItem": { "name": "acme-app" }, "changedFields": [] }),
        "{msg}"
    );
}

#[tokio::test]
async fn retiring_a_ci_detaches_it_and_is_final() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let web = app_ci(&app, "web").await;
    let db = ci(&app, "db", "database", json!({ "engine": "mysql" })).await;
    relate(&app, &web, "DEPENDS_ON", &db, false).await;
    let svc = app
        .service(json!({ "name": "Shop", "status": "LIVE" }))
        .await;
    app.ok(
        &admin,
        "mutation($s: ID!, $c: ID!) { addServiceConfigurationItem(serviceId: $s, configurationItemId: $c) { id } }",
        json!({ "s": svc["id"], "c": db }),
    )
    .await;

    let retired = app
        .ok(
            &admin,
            "mutation($id: ID!) { retireConfigurationItem(id: $id, version: 1) { status version relationships { name } services { name } } }",
            json!({ "id": db }),
        )
        .await;
    assert_eq!(
        retired["retireConfigurationItem"],
        json!({ "status": "RETIRED", "version": 2, "relationships": [], "services": [] })
    );
    let trail = app
        .ok(
            &admin,
            "{ auditEvents(filter: {action: \"delete\"}) { nodes { recordType } } }",
            json!({}),
        )
        .await;
    let mut deleted: Vec<&str> = trail["auditEvents"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["recordType"].as_str().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["CiRelationship", "ServiceConfigurationItem"]);

    let update = "mutation($i: UpdateConfigurationItemInput!) { updateConfigurationItem(input: $i) { status } }";
    let body = app
        .gql(
            &admin,
            update,
            json!({ "i": { "id": db, "version": 2, "status": "IN_PRODUCTION" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION", "retired is final: {body}");
    let body = app
        .gql(
            &admin,
            ADD_REL,
            json!({ "i": { "sourceId": web, "targetId": db, "kind": "DEPENDS_ON" } }),
        )
        .await;
    assert_eq!(
        code(&body),
        "VALIDATION",
        "no new edge to a retired CI: {body}"
    );
    let down = impact(&app, &admin, &db, "DOWNSTREAM", None, false).await;
    assert_eq!(down["reachedCount"], 1);
}
