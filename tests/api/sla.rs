//! Service level management over HTTP: calendars, SLAs, the priority matrix and
//! the `slaDueDates` dry run, with hand-computed due dates and the bad-input rules.

use serde_json::{Value, json};

use crate::{
    fixtures::{
        CREATE_CALENDAR, CREATE_SLA, WEEKDAYS, age_clocks, all_day_windows, create_sla, listen_sla,
        round_the_clock, shift_clocks, standard_targets,
    },
    helpers::*,
};

fn office_windows() -> Value {
    json!(
        ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]
            .iter()
            .map(|d| json!({ "weekday": d, "start": "09:00", "end": "17:00" }))
            .collect::<Vec<_>>()
    )
}

/// Berlin office hours, with Christmas (yearly) and 24 December 2026 (one-off) off.
pub async fn berlin_office(app: &TestApp) -> String {
    let data = app
        .ok(
            &app.admin(),
            CREATE_CALENDAR,
            json!({ "i": {
                "name": "Berlin office",
                "timeZone": "Europe/Berlin",
                "windows": office_windows(),
                "holidays": [
                    { "date": "2026-12-25", "yearly": true, "name": "Christmas" },
                    { "date": "2026-12-24", "name": "Christmas Eve 2026" }
                ]
            } }),
        )
        .await;
    data["createBusinessCalendar"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const DUE: &str = "query($s: ID!, $p: Priority!, $t: DateTime!, $x: [PauseInput!]) { slaDueDates(slaId: $s, priority: $p, start: $t, pauses: $x) { priority respond { targetMinutes dueAt } resolve { targetMinutes dueAt } } }";

#[tokio::test]
async fn due_dates_follow_the_calendar_holidays_and_pauses() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let cal = berlin_office(&app).await;
    let sla = create_sla(&app, &acme, svc["id"].as_str().unwrap(), &cal).await;
    assert_eq!(sla["kind"], "SLA");
    assert_eq!(sla["status"], "ACTIVE");
    assert_eq!(sla["calendar"]["name"], "Berlin office");
    assert_eq!(sla["targets"][0]["resolveMinutes"], 240);
    let sla_id = sla["id"].as_str().unwrap();

    // Wednesday 23 Dec 2026 16:00 CET (15:00 UTC). Respond 60 min: 16:00-17:00 CET.
    // Resolve 240 min: 1h on Wednesday; 24 Dec (one-off) and 25 Dec (yearly) are
    // holidays, then the weekend; 3h from Monday 28 Dec 09:00 CET (08:00 UTC) -> 11:00 UTC.
    let d = app
        .ok(
            &app.agent(),
            DUE,
            json!({ "s": sla_id, "p": "P1", "t": "2026-12-23T15:00:00Z" }),
        )
        .await;
    let due = &d["slaDueDates"];
    assert_eq!(due["respond"]["targetMinutes"], 60);
    assert_eq!(due["respond"]["dueAt"], "2026-12-23T16:00:00+00:00");
    assert_eq!(due["resolve"]["targetMinutes"], 240);
    assert_eq!(due["resolve"]["dueAt"], "2026-12-28T11:00:00+00:00");

    // On hold Monday 09:00-10:00 CET: the resolution is due an hour later.
    let d = app
        .ok(
            &app.agent(),
            DUE,
            json!({ "s": sla_id, "p": "P1", "t": "2026-12-23T15:00:00Z",
                    "x": [{ "start": "2026-12-28T08:00:00Z", "end": "2026-12-28T09:00:00Z" }] }),
        )
        .await;
    assert_eq!(
        d["slaDueDates"]["resolve"]["dueAt"],
        "2026-12-28T12:00:00+00:00"
    );
    // A pause still running before the due time: unknown.
    let d = app
        .ok(
            &app.agent(),
            DUE,
            json!({ "s": sla_id, "p": "P1", "t": "2026-12-23T15:00:00Z",
                    "x": [{ "start": "2026-12-23T15:30:00Z" }] }),
        )
        .await;
    assert_eq!(d["slaDueDates"]["resolve"]["dueAt"], Value::Null);

    // Across the spring DST change: Friday 27 March 2026 16:00 CET (15:00 UTC),
    // P2 respond 120 min: 1h Friday, 1h Monday 30 March from 09:00 CEST (07:00 UTC).
    let d = app
        .ok(
            &app.agent(),
            DUE,
            json!({ "s": sla_id, "p": "P2", "t": "2026-03-27T15:00:00Z" }),
        )
        .await;
    assert_eq!(
        d["slaDueDates"]["respond"]["dueAt"],
        "2026-03-30T08:00:00+00:00"
    );

    // Another tenant's requester cannot see the SLA: NOT_FOUND like a missing one.
    app.customer("globex").await;
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let body = app
        .gql(
            &bob,
            DUE,
            json!({ "s": sla_id, "p": "P1", "t": "2026-12-23T15:00:00Z" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let missing = app
        .gql(
            &bob,
            DUE,
            json!({ "s": unknown_id("Sla"), "p": "P1", "t": "2026-12-23T15:00:00Z" }),
        )
        .await;
    assert_eq!(message(&body), message(&missing));
    // Acme's requester can.
    let jane = app.token("jane@acme", "acme", &["requester"]);
    app.ok(
        &jane,
        DUE,
        json!({ "s": sla_id, "p": "P4", "t": "2026-12-23T15:00:00Z" }),
    )
    .await;
}

const CALENDAR_COUNT: &str = "{ businessCalendars { totalCount } }";

#[tokio::test]
async fn bad_calendars_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let cases = [
        (
            json!({ "name": "x", "timeZone": "Europe/Atlantis", "windows": office_windows() }),
            "timeZone",
            "Europe/Atlantis",
        ),
        (
            json!({ "name": "x", "timeZone": "UTC", "windows": [{ "weekday": "MONDAY", "start": "17:00", "end": "09:00" }] }),
            "end",
            "inverted",
        ),
        (
            json!({ "name": "x", "timeZone": "UTC", "windows": [
                { "weekday": "MONDAY", "start": "09:00", "end": "12:00" },
                { "weekday": "MONDAY", "start": "11:30", "end": "14:00" }
            ] }),
            "windows",
            "overlap",
        ),
        (
            // Sunday night shift running into Monday's early window.
            json!({ "name": "x", "timeZone": "UTC", "windows": [
                { "weekday": "SUNDAY", "start": "22:00", "end": "06:00", "endsNextDay": true },
                { "weekday": "MONDAY", "start": "05:00", "end": "09:00" }
            ] }),
            "windows",
            "overlap",
        ),
        (
            json!({ "name": "x", "timeZone": "UTC", "windows": [{ "weekday": "MONDAY", "start": "9am", "end": "17:00" }] }),
            "start",
            "HH:MM",
        ),
    ];
    for (input, field_name, text) in cases {
        let body = app
            .gql(&admin, CREATE_CALENDAR, json!({ "i": input }))
            .await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), field_name, "{body}");
        assert!(message(&body).contains(text), "{body}");
    }
    let d = app.ok(&admin, CALENDAR_COUNT, json!({})).await;
    assert_eq!(d["businessCalendars"]["totalCount"], 0);

    // A night shift across midnight is fine, and is stored as given.
    let d = app
        .ok(
            &admin,
            CREATE_CALENDAR,
            json!({ "i": { "name": "Night desk", "timeZone": "Europe/Berlin", "windows": [
                { "weekday": "FRIDAY", "start": "22:00", "end": "06:00", "endsNextDay": true },
                { "weekday": "MONDAY", "start": "6:00", "end": "09:00" }
            ] } }),
        )
        .await;
    let c = &d["createBusinessCalendar"];
    assert_eq!(c["windows"][0]["weekday"], "MONDAY");
    assert_eq!(c["windows"][0]["start"], "06:00");
    assert_eq!(c["windows"][1]["endsNextDay"], true);
    assert_eq!(c["is24x7"], false);

    // A requester may not create calendars.
    app.customer("acme").await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let body = app
        .gql(
            &jane,
            CREATE_CALENDAR,
            json!({ "i": { "name": "y", "timeZone": "UTC", "windows": office_windows() } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Stale version on update.
    let id = c["id"].as_str().unwrap();
    let upd = "mutation($i: UpdateBusinessCalendarInput!) { updateBusinessCalendar(input: $i) { version timeZone } }";
    let d = app
        .ok(
            &admin,
            upd,
            json!({ "i": { "id": id, "version": 1, "timeZone": "Europe/Paris" } }),
        )
        .await;
    assert_eq!(d["updateBusinessCalendar"]["version"], 2);
    let body = app
        .gql(
            &admin,
            upd,
            json!({ "i": { "id": id, "version": 1, "timeZone": "UTC" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT");
    let body = app
        .gql(
            &admin,
            upd,
            json!({ "i": { "id": id, "version": 2, "timeZone": "Nowhere/Land" } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
}

const SLA_COUNT: &str = "{ slas { totalCount } }";

#[tokio::test]
async fn bad_slas_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    let cal = round_the_clock(&app).await;
    let base = json!({
        "name": "Gold",
        "customerId": acme,
        "serviceId": svc,
        "calendarId": cal,
        "validFrom": "2026-01-01T00:00:00Z",
        "validTo": "2027-01-01T00:00:00Z",
        "targets": standard_targets(),
        "availabilityTarget": 99.5
    });
    let with = |patch: Value| {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        json!({ "i": v })
    };
    let zero = json!({ "targets": [
        { "priority": "P1", "respondMinutes": 0, "resolveMinutes": 240 },
        { "priority": "P2", "respondMinutes": 120, "resolveMinutes": 480 },
        { "priority": "P3", "respondMinutes": 240, "resolveMinutes": 960 },
        { "priority": "P4", "respondMinutes": 480, "resolveMinutes": 2400 }
    ] });
    let body = app.gql(&admin, CREATE_SLA, with(zero)).await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "respondMinutes");
    let negative = json!({ "targets": [
        { "priority": "P1", "respondMinutes": 60, "resolveMinutes": -5 },
        { "priority": "P2", "respondMinutes": 120, "resolveMinutes": 480 },
        { "priority": "P3", "respondMinutes": 240, "resolveMinutes": 960 },
        { "priority": "P4", "respondMinutes": 480, "resolveMinutes": 2400 }
    ] });
    let body = app.gql(&admin, CREATE_SLA, with(negative)).await;
    assert_eq!(field(&body), "resolveMinutes");
    let missing =
        json!({ "targets": [{ "priority": "P1", "respondMinutes": 60, "resolveMinutes": 240 }] });
    let body = app.gql(&admin, CREATE_SLA, with(missing)).await;
    assert_eq!(code(&body), "VALIDATION");
    assert!(message(&body).contains("P2"), "{body}");
    let body = app
        .gql(
            &admin,
            CREATE_SLA,
            with(json!({ "validTo": "2025-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(field(&body), "validTo");
    let body = app
        .gql(
            &admin,
            CREATE_SLA,
            with(json!({ "availabilityTarget": 120.0 })),
        )
        .await;
    assert_eq!(field(&body), "availabilityTarget");
    let d = app.ok(&admin, SLA_COUNT, json!({})).await;
    assert_eq!(d["slas"]["totalCount"], 0);

    // The first one is fine; an overlapping period for the same customer and service is not.
    app.ok(&admin, CREATE_SLA, with(json!({}))).await;
    let body = app
        .gql(
            &admin,
            CREATE_SLA,
            with(json!({ "name": "Silver", "validFrom": "2026-06-01T00:00:00Z", "validTo": null })),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(message(&body).contains("overlaps"), "{body}");
    let d = app.ok(&admin, SLA_COUNT, json!({})).await;
    assert_eq!(d["slas"]["totalCount"], 1);
    // Back to back is fine, and so is an OLA over the same period.
    app.ok(
        &admin,
        CREATE_SLA,
        with(json!({ "name": "Gold 2027", "validFrom": "2027-01-01T00:00:00Z", "validTo": null })),
    )
    .await;
    let d = app
        .ok(
            &admin,
            CREATE_SLA,
            with(json!({ "name": "Desk OLA", "kind": "OLA" })),
        )
        .await;
    assert_eq!(d["createSla"]["kind"], "OLA");
    let d = app.ok(&admin, SLA_COUNT, json!({})).await;
    assert_eq!(d["slas"]["totalCount"], 3);
}

const MATRIX: &str = "{ priorityMatrix { impact urgency priority } }";
const SET_RULES: &str = "mutation($r: [PriorityRuleInput!]!) { setPriorityRules(rules: $r) { impact urgency priority } }";

#[tokio::test]
async fn the_priority_matrix_has_a_default_and_admins_edit_it() {
    let app = TestApp::spawn().await;
    let d = app.ok(&app.agent(), MATRIX, json!({})).await;
    let cells = d["priorityMatrix"].as_array().unwrap();
    assert_eq!(cells.len(), 9);
    let at = |i: i64, u: i64| {
        cells
            .iter()
            .find(|c| c["impact"] == i && c["urgency"] == u)
            .unwrap()["priority"]
            .clone()
    };
    assert_eq!(at(1, 1), "P1");
    assert_eq!(at(1, 2), "P2");
    assert_eq!(at(2, 2), "P3");
    assert_eq!(at(3, 1), "P3");
    assert_eq!(at(3, 3), "P4");

    let body = app
        .gql(
            &app.agent(),
            SET_RULES,
            json!({ "r": [{ "impact": 3, "urgency": 3, "priority": "P3" }] }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app
        .gql(
            &app.admin(),
            SET_RULES,
            json!({ "r": [{ "impact": 4, "urgency": 3, "priority": "P3" }] }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "impact");
    let d = app
        .ok(
            &app.admin(),
            SET_RULES,
            json!({ "r": [{ "impact": 3, "urgency": 3, "priority": "P3" }] }),
        )
        .await;
    let changed = d["setPriorityRules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["impact"] == 3 && c["urgency"] == 3)
        .unwrap()
        .clone();
    assert_eq!(changed["priority"], "P3");

    // New incidents use the edited matrix.
    app.customer("acme").await;
    let d = app
        .ok(
            &app.agent(),
            "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { priority } }",
            json!({ "i": { "title": "Printer jam", "impact": 3, "urgency": 3 } }),
        )
        .await;
    assert_eq!(d["createIncident"]["priority"], "P3");
}

/// Every event a socket receives until it has been quiet for `quiet_ms`.
async fn drain(ws: &mut Ws, quiet_ms: u64) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(msg) =
        tokio::time::timeout(std::time::Duration::from_millis(quiet_ms), ws.json(30)).await
    {
        assert_eq!(msg["type"], "next", "{msg}");
        out.push(msg["payload"]["data"]["slaEvents"].clone());
    }
    out
}

/// The stored next checks of the running clocks, by clock kind.
async fn next_checks(database_url: &str) -> Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    use entity::sla_clock;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let db = sea_orm::Database::connect(database_url).await.unwrap();
    let out = sla_clock::Entity::find()
        .filter(sla_clock::Column::StoppedAt.is_null())
        .order_by_asc(sla_clock::Column::Id)
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (format!("{:?}", c.kind), c.next_check_at))
        .collect();
    let _ = db.close().await;
    out
}

fn fast_worker(c: &mut servicegraph::config::Config) {
    c.sla.worker_interval = std::time::Duration::from_millis(100);
}

#[tokio::test]
async fn warnings_and_breaches_fire_exactly_once_with_two_server_processes() {
    let first = TestApp::spawn_with(fast_worker).await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| {
        fast_worker(c);
        c.database.url = Some(url);
    })
    .await;
    let acme = first.customer("acme").await;
    let svc = first
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    let cal = round_the_clock(&first).await;
    create_sla(&first, &acme, svc, &cal).await;
    let mut ws1 = listen_sla(&first, &first.agent()).await;
    let mut ws2 = listen_sla(&second, &second.agent()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // P1: respond 60 min, resolve 240 min.
    let inc = first
        .ok(
            &first.agent(),
            "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { number priority } }",
            json!({ "i": { "title": "Mail down", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": svc } }),
        )
        .await;
    assert_eq!(inc["createIncident"]["priority"], "P1");

    // 50 of 60 minutes gone (83 %): the respond clock crosses 75 % only.
    age_clocks(&first.database_url, 50).await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    // 61 minutes: respond crosses 90 % and breaches; resolve (61 of 240) nothing.
    age_clocks(&first.database_url, 61).await;
    let first_heard = drain(&mut ws1, 1500).await;
    let second_heard = drain(&mut ws2, 300).await;
    let expected = vec![
        ("BREACHED".to_owned(), Value::Null, "RESPOND".to_owned()),
        ("WARNING".to_owned(), json!(75), "RESPOND".to_owned()),
        ("WARNING".to_owned(), json!(90), "RESPOND".to_owned()),
    ];
    if is_postgres() {
        // Events travel between processes (LISTEN/NOTIFY): each subscriber,
        // whichever process it is connected to, hears each event exactly once.
        assert_eq!(summary(&first_heard), expected, "first: {first_heard:?}");
        assert_eq!(summary(&second_heard), expected, "second: {second_heard:?}");
    } else {
        // Each event is heard on the process whose worker claimed it; never twice.
        let all: Vec<Value> = first_heard.iter().chain(&second_heard).cloned().collect();
        assert_eq!(summary(&all), expected, "both: {all:?}");
    }
    let events = first_heard;
    assert!(
        events
            .iter()
            .all(|e| e["incident"]["number"] == "INC-000001")
    );

    // The clock reads as breached.
    let d = first
        .ok(
            &first.agent(),
            "{ incidents { edges { node { clocks { kind breachedAt warningsFired remainingSeconds } } } } }",
            json!({}),
        )
        .await;
    let respond = &d["incidents"]["edges"][0]["node"]["clocks"][0];
    assert_eq!(respond["kind"], "RESPOND");
    assert!(respond["breachedAt"].is_string(), "{respond}");
    assert_eq!(respond["warningsFired"], json!([75, 90]));
    assert!(respond["remainingSeconds"].as_i64().unwrap() < 0);
}

/// The kinds, thresholds and clock kinds of SLA events, sorted.
fn summary(events: &[Value]) -> Vec<(String, Value, String)> {
    let mut seen: Vec<(String, Value, String)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["threshold"].clone(),
                e["clock"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    seen
}

const RAISE_P1: &str =
    "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { number priority } }";

/// Minutes from now to a stored instant.
fn minutes_ahead(at: Option<chrono::DateTime<chrono::Utc>>) -> i64 {
    (at.expect("a next check") - chrono::Utc::now()).num_minutes()
}

#[tokio::test]
async fn a_pass_reads_only_the_clocks_that_are_due() {
    let app = TestApp::spawn_with(fast_worker).await;
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    let cal = round_the_clock(&app).await;
    create_sla(&app, &acme, svc, &cal).await;
    let mut ws = listen_sla(&app, &app.agent()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.ok(
        &app.agent(),
        RAISE_P1,
        json!({ "i": { "title": "Mail down", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": svc } }),
    )
    .await;
    // Respond 60 min: first looked at when 75 % (45 min) are gone; resolve
    // 240 min: at 180 min.
    let checks = next_checks(&app.database_url).await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(
        (44..=45).contains(&minutes_ahead(checks[0].1)),
        "{checks:?}"
    );
    assert!(
        (179..=180).contains(&minutes_ahead(checks[1].1)),
        "{checks:?}"
    );

    // The start moves an hour back but the stored instants stay ahead: a
    // pass that read every running clock would find the respond clock
    // breached; this one does not look at it.
    shift_clocks(&app.database_url, 61, true).await;
    assert_eq!(drain(&mut ws, 600).await, Vec::<Value>::new());

    // With the instants where an hour really gone would have left them, the
    // warnings and the breach fire, once each.
    shift_clocks(&app.database_url, 0, true).await;
    age_clocks(&app.database_url, 61).await;
    let events = drain(&mut ws, 1000).await;
    assert_eq!(
        summary(&events),
        vec![
            ("BREACHED".to_owned(), Value::Null, "RESPOND".to_owned()),
            ("WARNING".to_owned(), json!(75), "RESPOND".to_owned()),
            ("WARNING".to_owned(), json!(90), "RESPOND".to_owned()),
        ],
        "{events:?}"
    );
    // Nothing left for the respond clock; the resolve clock's next look
    // (75 % of 240 min from an hour ago) is two hours ahead.
    let checks = next_checks(&app.database_url).await;
    assert_eq!(checks[0].1, None, "{checks:?}");
    assert!(
        (118..=120).contains(&minutes_ahead(checks[1].1)),
        "{checks:?}"
    );
}

#[tokio::test]
async fn a_calendar_change_that_brings_a_clock_forward_fires_it_at_once() {
    use chrono::Datelike;
    let app = TestApp::spawn_with(fast_worker).await;
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    // One minute a week, three days from now: no business time in the last
    // hours, and the respond target (60 business minutes) over a year ahead.
    let day = (chrono::Utc::now() + chrono::Duration::days(3)).weekday();
    let day = WEEKDAYS[day.num_days_from_monday() as usize];
    let data = app
        .ok(
            &app.admin(),
            CREATE_CALENDAR,
            json!({ "i": { "name": "Rare", "timeZone": "UTC", "windows": [
                { "weekday": day, "start": "00:00", "end": "00:01" }
            ] } }),
        )
        .await;
    let cal = data["createBusinessCalendar"]["id"].as_str().unwrap();
    create_sla(&app, &acme, svc, cal).await;
    let mut ws = listen_sla(&app, &app.agent()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.ok(
        &app.agent(),
        RAISE_P1,
        json!({ "i": { "title": "Mail down", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": svc } }),
    )
    .await;
    age_clocks(&app.database_url, 61).await;
    let checks = next_checks(&app.database_url).await;
    assert!(minutes_ahead(checks[0].1) > 24 * 60, "{checks:?}");
    assert_eq!(drain(&mut ws, 500).await, Vec::<Value>::new());

    // Round the clock from now on: 61 minutes count, the respond clock is
    // past its target and fires without waiting for its old instant.
    let all = all_day_windows();
    app.ok(
        &app.admin(),
        "mutation($i: UpdateBusinessCalendarInput!) { updateBusinessCalendar(input: $i) { version } }",
        json!({ "i": { "id": cal, "version": 1, "windows": all } }),
    )
    .await;
    let events = drain(&mut ws, 1000).await;
    assert_eq!(
        summary(&events),
        vec![
            ("BREACHED".to_owned(), Value::Null, "RESPOND".to_owned()),
            ("WARNING".to_owned(), json!(75), "RESPOND".to_owned()),
            ("WARNING".to_owned(), json!(90), "RESPOND".to_owned()),
        ],
        "{events:?}"
    );
    // The resolve clock (61 of 240 min) is now looked at when 180 min are gone.
    let checks = next_checks(&app.database_url).await;
    assert!(
        (118..=120).contains(&minutes_ahead(checks[1].1)),
        "{checks:?}"
    );
}

#[tokio::test]
async fn a_lower_warning_threshold_after_a_restart_fires_for_running_clocks() {
    let mut first = TestApp::spawn_with(fast_worker).await;
    let acme = first.customer("acme").await;
    let svc = first
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    let cal = round_the_clock(&first).await;
    create_sla(&first, &acme, svc, &cal).await;
    first
        .ok(
            &first.agent(),
            RAISE_P1,
            json!({ "i": { "title": "Mail down", "impact": 1, "urgency": 1, "customerId": acme, "serviceId": svc } }),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = first.begin_shutdown().await;

    // 29 of 60 minutes gone; restarted with a warning at 50 %.
    age_clocks(&first.database_url, 29).await;
    let url = first.database_url.clone();
    let second = TestApp::spawn_with(move |c| {
        fast_worker(c);
        c.database.url = Some(url);
        c.sla.warning_thresholds = vec![50, 90];
    })
    .await;
    let mut ws = listen_sla(&second, &second.agent()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Rescheduled by the new thresholds: 50 % is a minute ahead (75 % was 16).
    let checks = next_checks(&second.database_url).await;
    assert!((0..=1).contains(&minutes_ahead(checks[0].1)), "{checks:?}");
    assert_eq!(drain(&mut ws, 300).await, Vec::<Value>::new());

    age_clocks(&second.database_url, 31).await;
    let events = drain(&mut ws, 1000).await;
    assert_eq!(
        summary(&events),
        vec![("WARNING".to_owned(), json!(50), "RESPOND".to_owned())],
        "{events:?}"
    );
}

#[tokio::test]
async fn met_targets_reach_only_the_customer_and_staff() {
    let app = TestApp::spawn_with(fast_worker).await;
    let acme = app.customer("acme").await;
    app.customer("globex").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc = svc["id"].as_str().unwrap();
    app.subscribe(svc, &acme).await;
    let cal = round_the_clock(&app).await;
    create_sla(&app, &acme, svc, &cal).await;
    let jane = app.token("jane@acme", "acme", &["requester"]);
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let mut jane_ws = listen_sla(&app, &jane).await;
    let mut bob_ws = listen_sla(&app, &bob).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let d = app
        .ok(
            &jane,
            "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id } }",
            json!({ "i": { "title": "Mail slow", "impact": 2, "urgency": 2, "serviceId": svc } }),
        )
        .await;
    app.ok(
        &app.agent(),
        "mutation($i: AddIncidentNoteInput!) { addIncidentNote(input: $i) { kind } }",
        json!({ "i": { "incidentId": d["createIncident"]["id"], "body": "Looking" } }),
    )
    .await;
    let events = drain(&mut jane_ws, 1000).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "MET");
    assert_eq!(events[0]["clock"]["kind"], "RESPOND");
    assert_eq!(drain(&mut bob_ws, 200).await, Vec::<Value>::new());
}

/// The stored state of one clock, written straight into the database so the
/// report's figures can be computed by hand.
struct Fixture {
    incident: i64,
    kind: entity::enums::ClockKind,
    started: &'static str,
    /// (stopped at, met, business seconds)
    stopped: Option<(&'static str, bool, i64)>,
    due: &'static str,
}

async fn set_clocks(database_url: &str, fixtures: &[Fixture]) {
    use entity::sla_clock;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let db = sea_orm::Database::connect(database_url).await.unwrap();
    let t = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    for f in fixtures {
        let (stopped, met, secs) = match f.stopped {
            Some((at, met, secs)) => (Some(t(at)), Some(met), Some(secs)),
            None => (None, None, None),
        };
        let res = sla_clock::Entity::update_many()
            .col_expr(sla_clock::Column::StartedAt, Expr::value(t(f.started)))
            .col_expr(sla_clock::Column::StoppedAt, Expr::value(stopped))
            .col_expr(sla_clock::Column::Met, Expr::value(met))
            .col_expr(sla_clock::Column::BusinessSeconds, Expr::value(secs))
            .col_expr(sla_clock::Column::DueAt, Expr::value(Some(t(f.due))))
            .col_expr(
                sla_clock::Column::PausedSince,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .filter(sla_clock::Column::IncidentId.eq(f.incident))
            .filter(sla_clock::Column::Kind.eq(f.kind))
            .exec(&db)
            .await
            .unwrap();
        assert_eq!(res.rows_affected, 1);
    }
    let _ = db.close().await;
}

const REPORT: &str = "query($p: ReportPeriod!, $g: SlaReportGroupBy!) { slaReport(period: $p, groupBy: $g) { rows { key priority service { name } customer { name } respond { met breached inProgress compliancePercent meanSeconds p90Seconds } resolve { met breached inProgress compliancePercent meanSeconds p90Seconds } } breachedIncidents(first: 10) { totalCount edges { node { title } } } } }";

fn stats(
    met: i64,
    breached: i64,
    in_progress: i64,
    compliance: Option<f64>,
    mean: Option<f64>,
    p90: Option<i64>,
) -> Value {
    json!({ "met": met, "breached": breached, "inProgress": in_progress, "compliancePercent": compliance, "meanSeconds": mean, "p90Seconds": p90 })
}

fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 0.01,
        _ => a == b,
    }
}

fn assert_stats(got: &Value, want: &Value, what: &str) {
    for k in [
        "met",
        "breached",
        "inProgress",
        "compliancePercent",
        "meanSeconds",
        "p90Seconds",
    ] {
        assert!(
            close(&got[k], &want[k]),
            "{what}.{k}: got {}, want {}",
            got[k],
            want[k]
        );
    }
}

#[tokio::test]
async fn the_sla_report_matches_hand_computed_figures() {
    use entity::enums::ClockKind::{Resolve, Respond};
    // The fixture's clocks are written by hand; the worker must not judge them.
    let app = TestApp::spawn_with(|c| c.sla.worker_enabled = false).await;
    let acme = app.customer("acme").await;
    app.customer("globex").await;
    let cal = round_the_clock(&app).await;
    let mut services = Vec::new();
    for name in ["Alpha", "Beta"] {
        let s = app.service(json!({ "name": name, "status": "LIVE" })).await;
        let id = s["id"].as_str().unwrap().to_owned();
        create_sla(&app, &acme, &id, &cal).await;
        services.push(id);
    }
    // I1, I2, I4, I5 on Alpha at P1; I3 on Beta at P3.
    let mut incidents = Vec::new();
    for (title, svc, level) in [
        ("I1", 0, 1),
        ("I2", 0, 1),
        ("I3", 1, 2),
        ("I4", 0, 1),
        ("I5", 0, 1),
    ] {
        let d = app
            .ok(
                &app.agent(),
                "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id } }",
                json!({ "i": { "title": title, "impact": level, "urgency": level, "customerId": acme, "serviceId": services[svc] } }),
            )
            .await;
        let gid = d["createIncident"]["id"].as_str().unwrap();
        incidents.push(servicegraph::graphql::ids::decode(gid).unwrap().1);
    }
    let jan = "2026-01-10T10:00:00Z";
    let fx = |i: usize, kind, stopped, due| Fixture {
        incident: incidents[i],
        kind,
        started: if i == 4 { "2026-02-10T10:00:00Z" } else { jan },
        stopped,
        due,
    };
    let later = "2099-01-01T00:00:00Z";
    let past = "2026-01-20T00:00:00Z";
    let stop = "2026-01-15T00:00:00Z";
    set_clocks(
        &app.database_url,
        &[
            fx(0, Respond, Some((stop, true, 600)), later),
            fx(1, Respond, Some((stop, false, 4000)), later),
            fx(2, Respond, Some((stop, true, 1200)), later),
            fx(3, Respond, Some((stop, true, 300)), later),
            fx(0, Resolve, Some((stop, true, 3000)), later),
            fx(1, Resolve, None, later),
            fx(2, Resolve, Some((stop, false, 70000)), later),
            fx(3, Resolve, None, past),
            // February: outside the period.
            fx(4, Respond, Some((stop, false, 9000)), later),
            fx(4, Resolve, Some((stop, false, 9000)), later),
        ],
    )
    .await;
    let period = json!({ "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z" });

    let d = app
        .ok(&app.agent(), REPORT, json!({ "p": period, "g": "SERVICE" }))
        .await;
    let report = &d["slaReport"];
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["service"]["name"] == name)
            .unwrap()
            .clone()
    };
    let alpha = row("Alpha");
    assert_eq!(alpha["key"], services[0]);
    // Respond: 600 and 300 met, 4000 breached; mean 4900/3; p90 (nearest rank 3 of 3) 4000.
    assert_stats(
        &alpha["respond"],
        &stats(2, 1, 0, Some(200.0 / 3.0), Some(4900.0 / 3.0), Some(4000)),
        "Alpha respond",
    );
    // Resolve: I1 met (3000), I2 running and not due, I4 running past due.
    assert_stats(
        &alpha["resolve"],
        &stats(1, 1, 1, Some(50.0), Some(3000.0), Some(3000)),
        "Alpha resolve",
    );
    let beta = row("Beta");
    assert_stats(
        &beta["respond"],
        &stats(1, 0, 0, Some(100.0), Some(1200.0), Some(1200)),
        "Beta respond",
    );
    assert_stats(
        &beta["resolve"],
        &stats(0, 1, 0, Some(0.0), Some(70000.0), Some(70000)),
        "Beta resolve",
    );
    let mut breached: Vec<&str> = report["breachedIncidents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    breached.sort();
    assert_eq!(breached, ["I2", "I3", "I4"]);
    assert_eq!(report["breachedIncidents"]["totalCount"], 3);

    let d = app
        .ok(
            &app.agent(),
            REPORT,
            json!({ "p": period, "g": "CUSTOMER" }),
        )
        .await;
    let rows = d["slaReport"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer"]["name"], "Customer acme");
    // Respond: [300, 600, 1200, 4000]: 3 met, 1 breached, mean 1525, p90 rank 4 -> 4000.
    assert_stats(
        &rows[0]["respond"],
        &stats(3, 1, 0, Some(75.0), Some(1525.0), Some(4000)),
        "acme respond",
    );
    // Resolve: [3000, 70000] stopped; I2 in progress; I3 and I4 breached.
    assert_stats(
        &rows[0]["resolve"],
        &stats(1, 2, 1, Some(100.0 / 3.0), Some(36500.0), Some(70000)),
        "acme resolve",
    );

    let d = app
        .ok(
            &app.agent(),
            REPORT,
            json!({ "p": period, "g": "PRIORITY" }),
        )
        .await;
    let rows = d["slaReport"]["rows"].as_array().unwrap();
    let prios: Vec<&str> = rows
        .iter()
        .map(|r| r["priority"].as_str().unwrap())
        .collect();
    assert_eq!(prios, ["P1", "P3"]);
    assert_stats(
        &rows[0]["respond"],
        &stats(2, 1, 0, Some(200.0 / 3.0), Some(4900.0 / 3.0), Some(4000)),
        "P1 respond",
    );

    // Another tenant sees nothing of it.
    let bob = app.token("bob@globex", "globex", &["requester"]);
    let d = app
        .ok(&bob, REPORT, json!({ "p": period, "g": "SERVICE" }))
        .await;
    assert_eq!(d["slaReport"]["rows"], json!([]));
    assert_eq!(d["slaReport"]["breachedIncidents"]["totalCount"], 0);
    // An inverted period is refused.
    let body = app
        .gql(
            &app.agent(),
            REPORT,
            json!({ "p": { "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" }, "g": "SERVICE" }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
}

/// The report groups clocks by the service and priority they carry: a
/// priority change moves both clocks of the incident to the new priority's
/// row, and they stay in their service's row.
#[tokio::test]
async fn a_priority_change_moves_the_clocks_in_the_report() {
    let app = TestApp::spawn_with(|c| c.sla.worker_enabled = false).await;
    let acme = app.customer("acme").await;
    let cal = round_the_clock(&app).await;
    let s = app
        .service(json!({ "name": "Alpha", "status": "LIVE" }))
        .await;
    let service = s["id"].as_str().unwrap().to_owned();
    create_sla(&app, &acme, &service, &cal).await;
    let mut incidents = Vec::new();
    for (title, level) in [("Low", 3), ("Other", 3)] {
        let d = app
            .ok(
                &app.agent(),
                "mutation($i: CreateIncidentInput!) { createIncident(input: $i) { id version priority } }",
                json!({ "i": { "title": title, "impact": level, "urgency": level, "customerId": acme, "serviceId": service } }),
            )
            .await;
        assert_eq!(d["createIncident"]["priority"], "P4");
        incidents.push(d["createIncident"].clone());
    }
    let now = chrono::Utc::now();
    let period = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": (now + chrono::Duration::days(1)).to_rfc3339(),
    });
    let by = |rows: &Value, field: &str| -> Vec<(String, i64, i64)> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = if field == "priority" {
                    r["priority"].as_str().unwrap().to_owned()
                } else {
                    r["service"]["name"].as_str().unwrap().to_owned()
                };
                let n = |k: &str| {
                    r[k]["met"].as_i64().unwrap()
                        + r[k]["inProgress"].as_i64().unwrap()
                        + r[k]["breached"].as_i64().unwrap()
                };
                (key, n("respond"), n("resolve"))
            })
            .collect()
    };
    let d = app
        .ok(
            &app.agent(),
            REPORT,
            json!({ "p": period, "g": "PRIORITY" }),
        )
        .await;
    assert_eq!(
        by(&d["slaReport"]["rows"], "priority"),
        [("P4".into(), 2, 2)]
    );

    let d = app
        .ok(
            &app.agent(),
            "mutation($i: UpdateIncidentInput!) { updateIncident(input: $i) { priority } }",
            json!({ "i": { "id": incidents[0]["id"], "version": incidents[0]["version"], "impact": 1, "urgency": 1 } }),
        )
        .await;
    assert_eq!(d["updateIncident"]["priority"], "P1");
    let d = app
        .ok(
            &app.agent(),
            REPORT,
            json!({ "p": period, "g": "PRIORITY" }),
        )
        .await;
    assert_eq!(
        by(&d["slaReport"]["rows"], "priority"),
        [("P1".into(), 1, 1), ("P4".into(), 1, 1)]
    );
    let d = app
        .ok(&app.agent(), REPORT, json!({ "p": period, "g": "SERVICE" }))
        .await;
    assert_eq!(
        by(&d["slaReport"]["rows"], "service"),
        [("Alpha".into(), 2, 2)]
    );
}

#[tokio::test]
async fn a_service_with_an_open_sla_cannot_be_retired() {
    let app = TestApp::spawn().await;
    let acme = app.customer("acme").await;
    let svc = app
        .service(json!({ "name": "Email", "status": "LIVE" }))
        .await;
    let svc_id = svc["id"].as_str().unwrap();
    let cal = round_the_clock(&app).await;
    let sla = create_sla(&app, &acme, svc_id, &cal).await;
    let retire =
        "mutation($i: UpdateServiceInput!) { updateService(input: $i) { status version } }";
    let body = app
        .gql(
            &app.admin(),
            retire,
            json!({ "i": { "id": svc_id, "version": svc["version"], "status": "RETIRED" } }),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(message(&body).contains("Gold"), "{body}");
    // Retire the SLA first; then the service may go.
    app.ok(
        &app.admin(),
        "mutation($i: UpdateSlaInput!) { updateSla(input: $i) { status } }",
        json!({ "i": { "id": sla["id"], "version": sla["version"], "status": "RETIRED" } }),
    )
    .await;
    let d = app
        .ok(
            &app.admin(),
            retire,
            json!({ "i": { "id": svc_id, "version": svc["version"], "status": "RETIRED" } }),
        )
        .await;
    assert_eq!(d["updateService"]["status"], "RETIRED");
}
