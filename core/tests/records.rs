//! Recording, editing and reading back visits and workshops on one device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use waymark_core::*;

#[test]
fn a_recorded_visit_reads_back_with_every_field() {
    let (_t, s, ws) = store_with_workspace();
    let id = s
        .create_visit(
            &ws,
            &NewVisit {
                place: Place {
                    name: "Central bus station".into(),
                    area: "North".into(),
                    coordinates: Some(Coordinates {
                        lat: 12.345678,
                        lon: -3.210987,
                        precision: 3,
                    }),
                },
                occurred_at: NOV_1,
                visit_type: "transit_point".into(),
                people_reached: 7,
                indicators: vec!["deception".into(), "retention_of_documents".into()],
                referrals: vec![NewReferral {
                    kind: "legal_aid".into(),
                    to: "City legal clinic".into(),
                    status: ReferralStatus::Made,
                }],
                follow_up: FollowUp {
                    needed: true,
                    due: Some("2026-11-05".into()),
                    done: false,
                },
                tags: vec!["night".into()],
                sensitivity: Sensitivity::Restricted,
                notes: "Group of five waiting for a van.".into(),
            },
        )
        .unwrap();
    let v = s.get_visit(&id).unwrap();
    assert_eq!(v.place.name, "Central bus station");
    let c = v.place.coordinates.unwrap();
    assert_eq!(
        (c.lat, c.lon, c.precision),
        (12.346, -3.211, 3),
        "rounded to the chosen precision"
    );
    assert_eq!(v.visit_type, "transit_point");
    assert_eq!(v.people_reached, 7);
    assert_eq!(v.indicators, vec!["deception", "retention_of_documents"]);
    assert_eq!(v.referrals.len(), 1);
    assert_eq!(v.referrals[0].kind, "legal_aid");
    assert_eq!(v.referrals[0].status, ReferralStatus::Made);
    assert_eq!(v.follow_up.due.as_deref(), Some("2026-11-05"));
    assert_eq!(v.tags, vec!["night"]);
    assert_eq!(v.sensitivity, Sensitivity::Restricted);
    assert_eq!(v.notes, "Group of five waiting for a van.");
    assert!(!v.deleted && !v.has_conflicts);
}

#[test]
fn every_visit_field_can_be_updated() {
    let (_t, s, ws) = store_with_workspace();
    let id = s
        .create_visit(&ws, &visit("Market", "South", NOV_1))
        .unwrap();
    let referral = s
        .add_referral(
            &id,
            &NewReferral {
                kind: "shelter".into(),
                to: "Safe house".into(),
                status: ReferralStatus::Suggested,
            },
        )
        .unwrap();
    s.update_visit(
        &id,
        &[
            VisitEdit::PlaceName("Night market".into()),
            VisitEdit::Area("East".into()),
            VisitEdit::Coordinates(Some(Coordinates {
                lat: 1.5,
                lon: 2.5,
                precision: 1,
            })),
            VisitEdit::OccurredAt(NOV_1 + DAY),
            VisitEdit::VisitType("worksite_visit".into()),
            VisitEdit::PeopleReached(12),
            VisitEdit::AddIndicator("debt_bondage".into()),
            VisitEdit::RemoveIndicator("deception".into()),
            VisitEdit::ReferralStatus {
                referral_id: referral.clone(),
                status: ReferralStatus::Accepted,
            },
            VisitEdit::ReferralTo {
                referral_id: referral.clone(),
                to: "Women's shelter".into(),
            },
            VisitEdit::FollowUpNeeded(true),
            VisitEdit::FollowUpDue(Some("2026-12-01".into())),
            VisitEdit::AddTag("repeat".into()),
            VisitEdit::Sensitivity(Sensitivity::Restricted),
            VisitEdit::Notes("Updated notes".into()),
        ],
    )
    .unwrap();
    let v = s.get_visit(&id).unwrap();
    assert_eq!(v.place.name, "Night market");
    assert_eq!(v.place.area, "East");
    assert_eq!(v.place.coordinates.unwrap().lat, 1.5);
    assert_eq!(v.occurred_at, NOV_1 + DAY);
    assert_eq!(v.visit_type, "worksite_visit");
    assert_eq!(v.people_reached, 12);
    assert_eq!(v.indicators, vec!["debt_bondage"]);
    assert_eq!(v.referrals[0].status, ReferralStatus::Accepted);
    assert_eq!(v.referrals[0].to, "Women's shelter");
    assert!(v.follow_up.needed);
    assert_eq!(v.follow_up.due.as_deref(), Some("2026-12-01"));
    assert_eq!(v.tags, vec!["repeat"]);
    assert_eq!(v.sensitivity, Sensitivity::Restricted);
    assert_eq!(v.notes, "Updated notes");

    s.update_visit(
        &id,
        &[
            VisitEdit::Coordinates(None),
            VisitEdit::FollowUpDue(None),
            VisitEdit::FollowUpDone(true),
        ],
    )
    .unwrap();
    let v = s.get_visit(&id).unwrap();
    assert_eq!(v.place.coordinates, None);
    assert_eq!(v.follow_up.due, None);
    assert!(v.follow_up.done);
}

#[test]
fn a_deleted_visit_leaves_lists_and_search_but_can_still_be_read() {
    let (_t, s, ws) = store_with_workspace();
    let mut v = visit("Harbour", "Port", NOV_1);
    v.notes = "fishing crew without contracts".into();
    let id = s.create_visit(&ws, &v).unwrap();
    assert_eq!(s.search("contracts", 10).unwrap().len(), 1);
    s.delete_record(&id).unwrap();
    assert!(s.get_visit(&id).unwrap().deleted);
    assert!(s.list_visits(&VisitFilter::default()).unwrap().is_empty());
    assert!(s.search("contracts", 10).unwrap().is_empty());
    let all = s
        .list_visits(&VisitFilter {
            include_deleted: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].deleted);
}

#[test]
fn visits_are_filtered_by_date_area_type_indicator_and_follow_up() {
    let (_t, s, ws) = store_with_workspace();
    let mut a = visit("A", "North", NOV_1);
    a.follow_up = FollowUp {
        needed: true,
        due: Some("2026-11-03".into()),
        done: false,
    };
    let a = s.create_visit(&ws, &a).unwrap();
    let mut b = visit("B", "South", NOV_1 + 2 * DAY);
    b.visit_type = "worksite_visit".into();
    b.indicators = vec!["debt_bondage".into()];
    b.follow_up = FollowUp {
        needed: true,
        due: Some("2026-11-10".into()),
        done: false,
    };
    let b = s.create_visit(&ws, &b).unwrap();
    let mut c = visit("C", "North", NOV_1 + 5 * DAY);
    c.follow_up = FollowUp {
        needed: true,
        due: Some("2026-11-02".into()),
        done: true,
    };
    let c = s.create_visit(&ws, &c).unwrap();

    let ids = |f: VisitFilter| -> Vec<String> {
        s.list_visits(&f)
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect()
    };
    assert_eq!(
        ids(VisitFilter::default()),
        vec![c.clone(), b.clone(), a.clone()],
        "newest first"
    );
    assert_eq!(
        ids(VisitFilter {
            from: Some(NOV_1 + DAY),
            to: Some(NOV_1 + 3 * DAY),
            ..Default::default()
        }),
        vec![b.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            area: Some("North".into()),
            ..Default::default()
        }),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            visit_type: Some("worksite_visit".into()),
            ..Default::default()
        }),
        vec![b.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            indicator: Some("deception".into()),
            ..Default::default()
        }),
        vec![c.clone(), a.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            follow_up: Some(FollowUpFilter::Open),
            ..Default::default()
        }),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            follow_up: Some(FollowUpFilter::OverdueOn("2026-11-04".into())),
            ..Default::default()
        }),
        vec![a.clone()],
        "c is done, b not yet due"
    );
    assert_eq!(
        ids(VisitFilter {
            follow_up: Some(FollowUpFilter::DueBy("2026-11-10".into())),
            ..Default::default()
        }),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        ids(VisitFilter {
            limit: Some(1),
            offset: Some(1),
            ..Default::default()
        }),
        vec![b]
    );
    let listed = s.list_visits(&VisitFilter::default()).unwrap();
    assert_eq!(listed[2].indicators, vec!["deception"]);
}

#[test]
fn a_workshop_counts_named_attendees_and_anonymous_tallies_but_not_withdrawn_ones() {
    let (_t, s, ws) = store_with_workspace();
    let w = s
        .create_workshop(
            &ws,
            &workshop("Safe jobs abroad", "safe_recruitment", NOV_1),
        )
        .unwrap();
    let ana = s
        .check_in(
            &w,
            &NewAttendee {
                name: "Ana".into(),
                age_band: Some("18_24".into()),
                gender: Some("female".into()),
                contact: Some("+1 555 0100".into()),
                consent: true,
            },
        )
        .unwrap();
    let bo = s
        .check_in(
            &w,
            &NewAttendee {
                name: "Bo".into(),
                ..Default::default()
            },
        )
        .unwrap();
    s.withdraw_attendee(&w, &bo).unwrap();
    for _ in 0..3 {
        s.add_to_tally(&w, "12_17", "male", 1).unwrap();
    }
    s.add_to_tally(&w, "18_24", "female", 2).unwrap();
    s.add_feedback(&w, 4, "Useful").unwrap();
    s.add_feedback(&w, 5, "Very useful").unwrap();

    let att = s.attendance(&w).unwrap();
    assert_eq!(att.attendees.len(), 2);
    assert_eq!(
        (att.named, att.withdrawn, att.anonymous, att.total),
        (1, 1, 5, 6)
    );
    assert_eq!(
        att.by_age_band,
        vec![
            Count {
                key: "12_17".into(),
                count: 3
            },
            Count {
                key: "18_24".into(),
                count: 3
            },
        ]
    );
    assert_eq!(
        att.by_gender,
        vec![
            Count {
                key: "female".into(),
                count: 3
            },
            Count {
                key: "male".into(),
                count: 3
            }
        ]
    );
    let full = s.get_workshop(&w).unwrap();
    assert_eq!(
        full.attendees
            .iter()
            .find(|a| a.id == ana)
            .unwrap()
            .contact
            .as_deref(),
        Some("+1 555 0100")
    );
    assert!(
        full.attendees
            .iter()
            .find(|a| a.id == bo)
            .unwrap()
            .withdrawn
    );
    assert_eq!(full.feedback.len(), 2);
    assert_eq!(
        s.list_workshops(&WorkshopFilter::default()).unwrap()[0].attendance,
        6
    );
}

#[test]
fn workshops_are_filtered_by_date_topic_and_area() {
    let (_t, s, ws) = store_with_workspace();
    let a = s
        .create_workshop(&ws, &workshop("A", "safe_migration", NOV_1))
        .unwrap();
    let mut wb = workshop("B", "online_safety", NOV_1 + DAY);
    wb.area = "South".into();
    let b = s.create_workshop(&ws, &wb).unwrap();
    let ids = |f: WorkshopFilter| -> Vec<String> {
        s.list_workshops(&f)
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect()
    };
    assert_eq!(ids(WorkshopFilter::default()), vec![b.clone(), a.clone()]);
    assert_eq!(
        ids(WorkshopFilter {
            topic: Some("safe_migration".into()),
            ..Default::default()
        }),
        vec![a.clone()]
    );
    assert_eq!(
        ids(WorkshopFilter {
            area: Some("South".into()),
            ..Default::default()
        }),
        vec![b.clone()]
    );
    assert_eq!(
        ids(WorkshopFilter {
            from: Some(NOV_1 + 1),
            ..Default::default()
        }),
        vec![b.clone()]
    );
    s.update_workshop(
        &a,
        &[
            WorkshopEdit::Topic("online_safety".into()),
            WorkshopEdit::AddFacilitator("Luis".into()),
        ],
    )
    .unwrap();
    assert_eq!(
        ids(WorkshopFilter {
            topic: Some("online_safety".into()),
            ..Default::default()
        })
        .len(),
        2
    );
    assert_eq!(
        s.get_workshop(&a).unwrap().facilitators,
        vec!["Ana", "Luis"]
    );
    s.delete_record(&b).unwrap();
    assert_eq!(ids(WorkshopFilter::default()), vec![a]);
}

#[test]
fn search_finds_words_in_notes_titles_and_feedback_and_ignores_operators() {
    let (_t, s, ws) = store_with_workspace();
    let mut v = visit("Brick kiln", "West", NOV_1);
    v.notes = "Workers say the owner keeps their passports; débt of 2000".into();
    let vid = s.create_visit(&ws, &v).unwrap();
    let w = s
        .create_workshop(&ws, &workshop("Know your rights", "workers_rights", NOV_1))
        .unwrap();
    s.add_feedback(&w, 5, "Learned about the hotline").unwrap();

    let hits = s.search("passport", 10).unwrap();
    assert_eq!(hits.len(), 1, "prefix match");
    assert_eq!(hits[0].id, vid);
    assert_eq!(hits[0].kind, RecordKind::Visit);
    assert!(hits[0].snippet.contains("[passports]"));
    assert_eq!(s.search("debt", 10).unwrap().len(), 1, "diacritics folded");
    assert_eq!(s.search("hotline", 10).unwrap()[0].id, w);
    assert_eq!(s.search("rights", 10).unwrap()[0].id, w);
    assert!(
        s.search("kiln hotline", 10).unwrap().is_empty(),
        "all words must match"
    );
    assert!(s.search("\"unbalanced OR NEAR(", 10).unwrap().is_empty());
    assert!(s.search("   ", 10).unwrap().is_empty());
}

#[test]
fn a_refused_value_is_never_repeated_in_the_error_an_app_may_log() {
    let (_t, s, ws) = store_with_workspace();
    const SECRET: &str = "MARIA-AT-THE-BUS-STATION";
    let mut refused = Vec::new();
    let mut v = visit(&format!("{SECRET}\nsecond line"), "North", NOV_1);
    refused.push(s.create_visit(&ws, &v).unwrap_err());
    v = visit("X", "North", NOV_1);
    v.notes = format!("{SECRET}\0");
    refused.push(s.create_visit(&ws, &v).unwrap_err());
    v = visit("X", "North", NOV_1);
    v.indicators = vec![format!("{SECRET} not a key")];
    refused.push(s.create_visit(&ws, &v).unwrap_err());
    v = visit("X", "North", NOV_1);
    v.follow_up.due = Some(SECRET.into());
    refused.push(s.create_visit(&ws, &v).unwrap_err());
    for e in refused {
        let shown = format!("{e} {e:?}");
        assert!(matches!(e, Error::InvalidInput { .. }), "{shown}");
        assert!(
            !shown.contains(SECRET),
            "the value is in the error: {shown}"
        );
    }
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_written() {
    let (_t, s, ws) = store_with_workspace();
    let field_of = |e: Error| match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let mut v = visit("", "North", NOV_1);
    assert_eq!(field_of(s.create_visit(&ws, &v).unwrap_err()), "place.name");
    v = visit("X", "North", 12);
    assert_eq!(
        field_of(s.create_visit(&ws, &v).unwrap_err()),
        "occurred_at"
    );
    v = visit("X", "North", NOV_1);
    v.indicators = vec!["Not A Key".into()];
    assert_eq!(field_of(s.create_visit(&ws, &v).unwrap_err()), "indicators");
    v = visit("X", "North", NOV_1);
    v.place.coordinates = Some(Coordinates {
        lat: 91.0,
        lon: 0.0,
        precision: 2,
    });
    assert_eq!(
        field_of(s.create_visit(&ws, &v).unwrap_err()),
        "coordinates.lat"
    );
    v = visit("X", "North", NOV_1);
    v.follow_up.due = Some("next tuesday".into());
    assert_eq!(
        field_of(s.create_visit(&ws, &v).unwrap_err()),
        "follow_up.due"
    );
    assert_eq!(
        field_of(s.create_visit("nope", &visit("X", "N", NOV_1)).unwrap_err()),
        "workspace_id"
    );
    assert!(matches!(
        s.create_visit(&"0".repeat(32), &visit("X", "N", NOV_1)),
        Err(Error::NotFound { .. })
    ));
    assert!(s.list_visits(&VisitFilter::default()).unwrap().is_empty());

    let w = s
        .create_workshop(&ws, &workshop("W", "safe_migration", NOV_1))
        .unwrap();
    let contact_without_consent = NewAttendee {
        name: "Cy".into(),
        contact: Some("cy@example.org".into()),
        consent: false,
        ..Default::default()
    };
    assert_eq!(
        field_of(s.check_in(&w, &contact_without_consent).unwrap_err()),
        "attendee.contact"
    );
    assert_eq!(
        field_of(s.add_feedback(&w, 9, "").unwrap_err()),
        "feedback.score"
    );
    assert_eq!(
        field_of(s.add_to_tally(&w, "18_24", "female", 0).unwrap_err()),
        "delta"
    );
    assert!(matches!(
        s.withdraw_attendee(&w, &"a".repeat(32)),
        Err(Error::NotFound { .. })
    ));
    assert!(
        matches!(s.get_visit(&w), Err(Error::NotFound { .. })),
        "a workshop is not a visit"
    );
    assert!(matches!(
        s.get_visit(&"b".repeat(32)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(s.attendance(&w).unwrap().total, 0);
}

#[test]
fn workspace_settings_are_seeded_translated_and_editable() {
    let (_t, s, ws) = store_with_workspace();
    let settings = s.settings(&ws).unwrap();
    assert_eq!(settings.name, "North district");
    let tax = |name: &str| {
        settings
            .taxonomies
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .clone()
    };
    for name in TAXONOMIES {
        assert!(!tax(name).entries.is_empty(), "{name} is seeded");
    }
    let indicators = tax("risk_indicators");
    assert!(
        indicators.entries.len() >= 11,
        "the ILO's eleven indicators at least"
    );
    let debt = indicators
        .entries
        .iter()
        .find(|e| e.key == "debt_bondage")
        .unwrap();
    assert_eq!(
        debt.labels,
        vec![
            Label {
                lang: "en".into(),
                text: "Debt bondage".into()
            },
            Label {
                lang: "es".into(),
                text: "Servidumbre por deudas".into()
            },
        ]
    );
    s.update_settings(
        &ws,
        &[
            SettingsEdit::AddEntry {
                taxonomy: "visit_types".into(),
                key: "farm_visit".into(),
                labels: vec![Label {
                    lang: "en".into(),
                    text: "Farm visit".into(),
                }],
            },
            SettingsEdit::SetLabel {
                taxonomy: "visit_types".into(),
                key: "farm_visit".into(),
                lang: "fr".into(),
                text: "Visite de ferme".into(),
            },
            SettingsEdit::Archive {
                taxonomy: "visit_types".into(),
                key: "online_outreach".into(),
                archived: true,
            },
            SettingsEdit::Rename("North & East".into()),
        ],
    )
    .unwrap();
    let settings = s.settings(&ws).unwrap();
    let vt = settings
        .taxonomies
        .iter()
        .find(|t| t.name == "visit_types")
        .unwrap();
    let farm = vt.entries.last().unwrap();
    assert_eq!(farm.key, "farm_visit", "new entries go last");
    assert_eq!(farm.labels.len(), 2);
    assert!(
        vt.entries
            .iter()
            .find(|e| e.key == "online_outreach")
            .unwrap()
            .archived
    );
    assert_eq!(s.workspaces().unwrap()[0].name, "North & East");
    assert!(matches!(
        s.update_settings(
            &ws,
            &[SettingsEdit::SetLabel {
                taxonomy: "colours".into(),
                key: "x".into(),
                lang: "en".into(),
                text: "X".into()
            }]
        ),
        Err(Error::InvalidInput { .. })
    ));
}
