//! The demo data set: a provider with three customers, support groups, people,
//! and a small catalogue. Written through the domain, so it is audited too.

use entity::{
    enums::{Criticality, LifecycleStatus},
    service,
};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::{
    error::AppResult,
    processes::{
        catalogue::{self, NewOffering, NewService},
        directory::{self, NewOrganization, NewSupportGroup, NewUser, system_principal},
    },
    records::Store,
};

/// Loads the demo data into a database with no services yet. Returns whether it did.
pub async fn seed_demo_if_empty(store: &Store, provider_id: i64) -> AppResult<bool> {
    if service::Entity::find().count(&store.db).await? > 0 {
        return Ok(false);
    }
    let p = system_principal(provider_id);

    let mut customers = Vec::new();
    for (code, name, description) in [
        (
            "acme",
            "Acme Corporation",
            "Manufacturing customer, 2,400 staff across 6 sites",
        ),
        ("globex", "Globex Industries", "Energy trading customer"),
        ("initech", "Initech", "Software customer, single site"),
    ] {
        let org = directory::create_organization(
            store,
            &p,
            NewOrganization {
                code: code.into(),
                name: name.into(),
                description: Some(description.into()),
            },
        )
        .await?;
        customers.push(org.id);
    }
    let (acme, globex, initech) = (customers[0], customers[1], customers[2]);

    let mut groups = Vec::new();
    for (name, email) in [
        ("Service Desk", "servicedesk@provider.example"),
        ("Network Operations", "noc@provider.example"),
        ("Database Administration", "dba@provider.example"),
        ("Application Support", "appsupport@provider.example"),
    ] {
        let g = directory::create_support_group(
            store,
            &p,
            NewSupportGroup {
                organization_id: Some(provider_id),
                name: name.into(),
                description: None,
                email: Some(email.into()),
            },
        )
        .await?;
        groups.push(g.id);
    }
    let (desk, noc, dba, apps) = (groups[0], groups[1], groups[2], groups[3]);

    let mut users = Vec::new();
    for (org, subject, name, email) in [
        (
            provider_id,
            "alice.admin",
            "Alice Admin",
            "alice@provider.example",
        ),
        (
            provider_id,
            "sam.agent",
            "Sam Agent",
            "sam@provider.example",
        ),
        (
            provider_id,
            "nina.network",
            "Nina Network",
            "nina@provider.example",
        ),
        (acme, "jane@acme", "Jane Requester", "jane@acme.example"),
        (globex, "bob@globex", "Bob Requester", "bob@globex.example"),
    ] {
        let u = directory::create_user(
            store,
            &p,
            NewUser {
                organization_id: org,
                subject: subject.into(),
                display_name: name.into(),
                email: Some(email.into()),
            },
        )
        .await?;
        users.push(u.id);
    }
    directory::add_group_member(store, &p, desk, users[1]).await?;
    directory::add_group_member(store, &p, noc, users[2]).await?;

    let services = [
        (
            "Corporate Email",
            "Mail, calendars and shared mailboxes",
            LifecycleStatus::Live,
            Criticality::Critical,
            apps,
            &["Mailbox", "Shared mailbox"][..],
        ),
        (
            "VPN Access",
            "Remote access to corporate networks",
            LifecycleStatus::Live,
            Criticality::High,
            noc,
            &["VPN account"][..],
        ),
        (
            "ERP Finance",
            "General ledger, payables and receivables",
            LifecycleStatus::Live,
            Criticality::High,
            dba,
            &["ERP user access"][..],
        ),
        (
            "Customer Portal",
            "Self-service portal for end customers",
            LifecycleStatus::Live,
            Criticality::Medium,
            apps,
            &["Portal account"][..],
        ),
        (
            "Data Warehouse",
            "Reporting and analytics platform",
            LifecycleStatus::Pipeline,
            Criticality::Medium,
            dba,
            &["Analytics workspace"][..],
        ),
    ];
    let mut service_ids = Vec::new();
    for (name, description, status, criticality, owner, offerings) in services {
        let s = catalogue::create_service(
            store,
            &p,
            NewService {
                organization_id: Some(provider_id),
                name: name.into(),
                description: Some(description.into()),
                status: Some(status),
                criticality: Some(criticality),
                owner_group_id: Some(owner),
                owner_user_id: None,
            },
        )
        .await?;
        for offering in offerings {
            catalogue::create_offering(
                store,
                &p,
                NewOffering {
                    service_id: s.id,
                    name: (*offering).into(),
                    description: None,
                    status: Some(status),
                },
            )
            .await?;
        }
        service_ids.push(s.id);
    }
    for (customer, service_index) in [
        (acme, 0),
        (acme, 1),
        (acme, 2),
        (globex, 0),
        (globex, 3),
        (initech, 0),
        (initech, 1),
    ] {
        catalogue::subscribe(store, &p, service_ids[service_index], customer).await?;
    }
    seed_cmdb(store, &p, &service_ids).await?;
    seed_service_levels(store, &p, acme, &service_ids, desk).await?;
    tracing::info!(
        "loaded the demo data: 3 customers, 4 support groups, 5 users, 5 services, 10 configuration items, 2 calendars, 2 SLAs, 2 incidents"
    );
    Ok(true)
}

/// A small CMDB behind the live services, loaded the way discovery tools load it.
async fn seed_cmdb(
    store: &Store,
    p: &crate::auth::Principal,
    service_ids: &[i64],
) -> AppResult<()> {
    use crate::processes::cmdb::{self, UpsertBatch, UpsertItem, UpsertRelationship};
    use entity::enums::RelationshipKind::*;
    use serde_json::json;
    let items = [
        (
            "mail-app",
            "application",
            "Mail server",
            json!({ "vendor": "Open-Xchange" }),
        ),
        (
            "mail-db",
            "database",
            "Mail database",
            json!({ "engine": "postgresql", "engineVersion": "16" }),
        ),
        (
            "vm-mail-01",
            "virtual_machine",
            "vm-mail-01",
            json!({ "hostname": "vm-mail-01", "cpuCount": 8, "memoryGb": 32 }),
        ),
        (
            "esx-01",
            "server",
            "esx-01",
            json!({ "hostname": "esx-01", "cpuCount": 64, "os": "other" }),
        ),
        (
            "esx-02",
            "server",
            "esx-02",
            json!({ "hostname": "esx-02", "cpuCount": 64, "os": "other" }),
        ),
        (
            "core-sw-01",
            "network_device",
            "Core switch 1",
            json!({ "deviceType": "switch", "portCount": 48 }),
        ),
        (
            "vpn-gw-01",
            "network_device",
            "VPN gateway",
            json!({ "deviceType": "firewall" }),
        ),
        (
            "erp-app",
            "application",
            "ERP application",
            json!({ "vendor": "SAP" }),
        ),
        (
            "erp-db-a",
            "database",
            "ERP database A",
            json!({ "engine": "oracle", "replicated": true }),
        ),
        (
            "erp-db-b",
            "database",
            "ERP database B",
            json!({ "engine": "oracle", "replicated": true }),
        ),
    ];
    let id = |e: &str| ("demo-discovery".to_owned(), e.to_owned());
    let rel = |s: &str, kind, t: &str, redundant| UpsertRelationship {
        source: id(s),
        target: id(t),
        kind,
        redundant,
    };
    let result = cmdb::upsert(
        store,
        p,
        UpsertBatch {
            organization_id: Some(p.organization_id),
            items: items
                .into_iter()
                .map(|(external_id, class, name, attributes)| UpsertItem {
                    source: "demo-discovery".into(),
                    external_id: external_id.into(),
                    class_code: class.into(),
                    name: name.into(),
                    status: None,
                    environment: None,
                    owner_group_id: None,
                    attributes: Some(attributes),
                })
                .collect(),
            relationships: vec![
                rel("mail-app", DependsOn, "mail-db", false),
                rel("mail-app", RunsOn, "vm-mail-01", false),
                rel("mail-db", RunsOn, "vm-mail-01", false),
                rel("vm-mail-01", HostedOn, "esx-01", false),
                rel("esx-01", ConnectsTo, "core-sw-01", false),
                rel("esx-02", ConnectsTo, "core-sw-01", false),
                rel("vpn-gw-01", ConnectsTo, "core-sw-01", false),
                rel("erp-app", DependsOn, "erp-db-a", true),
                rel("erp-app", DependsOn, "erp-db-b", true),
                rel("erp-db-a", HostedOn, "esx-01", false),
                rel("erp-db-b", HostedOn, "esx-02", false),
            ],
        },
    )
    .await?;
    let ci = |external_id: &str| {
        result
            .items
            .iter()
            .find(|o| o.external_id == external_id)
            .and_then(|o| o.ci.as_ref())
            .map(|c| c.id)
    };
    for (service_index, external_id) in [(0, "mail-app"), (1, "vpn-gw-01"), (2, "erp-app")] {
        if let Some(ci_id) = ci(external_id) {
            cmdb::link_service_ci(store, p, service_ids[service_index], ci_id).await?;
        }
    }
    Ok(())
}

/// Two calendars, Acme's SLAs for Corporate Email (24x7) and VPN Access (office
/// hours in Berlin), and two incidents with running clocks.
async fn seed_service_levels(
    store: &Store,
    p: &crate::auth::Principal,
    acme: i64,
    services: &[i64],
    desk: i64,
) -> AppResult<()> {
    use crate::processes::{
        incident::{self, NewIncident},
        sla::{self, HolidaySpec, NewCalendar, NewSla, TargetInput, WindowSpec},
    };
    use entity::enums::Priority;
    let window = |day: &str, start: &str, end: &str| WindowSpec {
        weekday: day.into(),
        start: start.into(),
        end: end.into(),
        ends_next_day: false,
    };
    let always = sla::create_calendar(
        store,
        p,
        NewCalendar {
            organization_id: None,
            name: "24x7".into(),
            time_zone: "UTC".into(),
            windows: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .iter()
                .map(|d| window(d, "00:00", "24:00"))
                .collect(),
            holidays: Vec::new(),
        },
    )
    .await?;
    let date = |m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(2026, m, d).unwrap_or_default();
    let office = sla::create_calendar(
        store,
        p,
        NewCalendar {
            organization_id: None,
            name: "Berlin office hours".into(),
            time_zone: "Europe/Berlin".into(),
            windows: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| window(d, "08:00", "18:00"))
                .collect(),
            holidays: vec![
                HolidaySpec {
                    date: date(1, 1),
                    yearly: true,
                    name: Some("New Year's Day".into()),
                },
                HolidaySpec {
                    date: date(12, 25),
                    yearly: true,
                    name: Some("Christmas Day".into()),
                },
                HolidaySpec {
                    date: date(12, 26),
                    yearly: true,
                    name: Some("Boxing Day".into()),
                },
            ],
        },
    )
    .await?;
    let targets = |scale: i64| {
        [
            (Priority::P1, 30, 240),
            (Priority::P2, 60, 480),
            (Priority::P3, 240, 1440),
            (Priority::P4, 480, 2880),
        ]
        .into_iter()
        .map(|(priority, respond, resolve)| TargetInput {
            priority,
            respond_minutes: respond * scale,
            resolve_minutes: resolve * scale,
        })
        .collect()
    };
    let from = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    for (name, service, calendar, scale, availability) in [
        ("Acme Email Gold", services[0], always.id, 1, 99.9),
        ("Acme VPN Silver", services[1], office.id, 2, 99.5),
    ] {
        sla::create_sla(
            store,
            p,
            NewSla {
                name: name.into(),
                kind: None,
                status: None,
                customer_id: acme,
                service_id: service,
                calendar_id: calendar,
                valid_from: from,
                valid_to: None,
                targets: targets(scale),
                availability_target: availability,
            },
        )
        .await?;
    }
    for (title, service, impact, urgency, group) in [
        (
            "Outlook cannot connect to the mail server",
            services[0],
            2,
            1,
            Some(desk),
        ),
        ("VPN disconnects every few minutes", services[1], 2, 2, None),
    ] {
        incident::create_incident(
            store,
            p,
            NewIncident {
                customer_id: Some(acme),
                title: title.into(),
                description: None,
                impact,
                urgency,
                major: None,
                service_id: Some(service),
                assignment_group_id: group,
                assignee_id: None,
                source: None,
                category: None,
                affected_ci_ids: Vec::new(),
            },
        )
        .await?;
    }
    Ok(())
}
