//! Two stores that worked apart merge by exchanging bundles: concurrent edits keep both sides,
//! disagreements show as conflicts, and bad bundles change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use waymark_core::*;

/// Two devices with the same workspace, as after a join.
fn two_devices() -> (TempStore, Store, TempStore, Store, String) {
    let (ta, a, ws) = store_with_workspace();
    let tb = temp_path();
    let b = open(&tb.path);
    join(&b, &a, &ws);
    b.import_changes(&a.export_changes(None).unwrap()).unwrap();
    (ta, a, tb, b, ws)
}

#[test]
fn a_workspace_and_its_records_arrive_whole_in_an_empty_store() {
    let (_ta, a, ws) = store_with_workspace();
    let v = a.create_visit(&ws, &visit("Depot", "East", NOV_1)).unwrap();
    let w = a
        .create_workshop(&ws, &workshop("Rights", "workers_rights", NOV_1))
        .unwrap();
    a.check_in(
        &w,
        &NewAttendee {
            name: "Ana".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let tb = temp_path();
    let b = open(&tb.path);
    join(&b, &a, &ws);
    let report = b.import_changes(&a.export_changes(None).unwrap()).unwrap();
    assert_eq!(report.changed.len(), 3, "settings, visit, workshop");
    assert_eq!(b.workspaces().unwrap(), a.workspaces().unwrap());
    assert_eq!(b.get_visit(&v).unwrap(), a.get_visit(&v).unwrap());
    assert_eq!(b.get_workshop(&w).unwrap(), a.get_workshop(&w).unwrap());
    let (sa, sb) = (a.settings(&ws).unwrap(), b.settings(&ws).unwrap());
    assert!(sa.taxonomies == sb.taxonomies && sa.name == sb.name);
    assert_eq!(
        sb.devices.len(),
        2,
        "the new device introduced itself in the settings"
    );
    let again = b.import_changes(&a.export_changes(None).unwrap()).unwrap();
    assert!(again.changed.is_empty(), "importing twice changes nothing");
    assert_eq!(again.unchanged, 3);
    assert_eq!(
        b.history(&v).unwrap()[0].author.device_name.as_deref(),
        Some("unnamed device")
    );
}

#[test]
fn exporting_since_a_checkpoint_sends_only_what_the_other_store_lacks() {
    let (_ta, a, _tb, b, ws) = two_devices();
    for i in 0..20 {
        a.create_visit(&ws, &visit(&format!("Place {i}"), "North", NOV_1 + i))
            .unwrap();
    }
    sync_pair(&a, &b);
    let full = a.export_changes(None).unwrap();
    let id = a
        .create_visit(&ws, &visit("New place", "North", NOV_1))
        .unwrap();
    let delta = a.export_changes(Some(&b.checkpoint().unwrap())).unwrap();
    assert!(
        delta.len() * 5 < full.len(),
        "delta {} vs full {}",
        delta.len(),
        full.len()
    );
    let report = b.import_changes(&delta).unwrap();
    assert_eq!(report.changed, vec![id.clone()]);
    let nothing = a.export_changes(Some(&b.checkpoint().unwrap())).unwrap();
    assert!(b.import_changes(&nothing).unwrap().changed.is_empty());
    a.set_visit_notes(&id, "edited after the exchange").unwrap();
    b.import_changes(&a.export_changes(Some(&b.checkpoint().unwrap())).unwrap())
        .unwrap();
    assert_eq!(b.get_visit(&id).unwrap().notes, "edited after the exchange");
}

#[test]
fn two_people_typing_in_one_note_offline_keep_both_edits() {
    let (_ta, a, _tb, b, ws) = two_devices();
    let mut v = visit("Garment workshop", "Central", NOV_1);
    v.notes = "Met the supervisor.".into();
    let id = a.create_visit(&ws, &v).unwrap();
    sync_pair(&a, &b);
    a.set_visit_notes(&id, "Met the supervisor. Doors locked from outside.")
        .unwrap();
    b.set_visit_notes(&id, "Early morning: Met the supervisor.")
        .unwrap();
    sync_pair(&a, &b);
    let merged = a.get_visit(&id).unwrap().notes;
    assert_eq!(
        merged,
        "Early morning: Met the supervisor. Doors locked from outside."
    );
    assert_eq!(b.get_visit(&id).unwrap().notes, merged);
    assert_eq!(a.search("locked", 5).unwrap().len(), 1);
    assert_eq!(b.search("early", 5).unwrap().len(), 1);
}

#[test]
fn two_educators_checking_in_offline_merge_into_one_list() {
    let (_ta, a, _tb, b, ws) = two_devices();
    let w = a
        .create_workshop(&ws, &workshop("Online safety", "online_safety", NOV_1))
        .unwrap();
    sync_pair(&a, &b);
    let ana = a
        .check_in(
            &w,
            &NewAttendee {
                name: "Ana".into(),
                ..Default::default()
            },
        )
        .unwrap();
    b.check_in(
        &w,
        &NewAttendee {
            name: "Bea".into(),
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..4 {
        a.add_to_tally(&w, "12_17", "female", 1).unwrap();
    }
    for _ in 0..3 {
        b.add_to_tally(&w, "12_17", "female", 1).unwrap();
    }
    b.withdraw_attendee(&w, &ana).unwrap_err(); // b does not know Ana yet
    sync_pair(&a, &b);
    b.withdraw_attendee(&w, &ana).unwrap();
    sync_pair(&a, &b);
    for s in [&a, &b] {
        let att = s.attendance(&w).unwrap();
        assert_eq!(att.attendees.len(), 2);
        assert_eq!(
            (att.named, att.withdrawn, att.anonymous),
            (1, 1, 7),
            "taps add up"
        );
        assert!(s.conflicts(&w).unwrap().is_empty());
    }
}

#[test]
fn different_people_counts_recorded_offline_show_as_a_conflict_not_a_sum() {
    let (_ta, a, _tb, b, ws) = two_devices();
    a.set_device_name("Ana's phone").unwrap();
    b.set_device_name("Bo's phone").unwrap();
    let id = a.create_visit(&ws, &visit("Port", "South", NOV_1)).unwrap();
    sync_pair(&a, &b);
    a.update_visit(&id, &[VisitEdit::PeopleReached(5)]).unwrap();
    b.update_visit(&id, &[VisitEdit::PeopleReached(8)]).unwrap();
    sync_pair(&a, &b);
    let va = a.get_visit(&id).unwrap();
    assert!(va.has_conflicts);
    assert!([5, 8].contains(&va.people_reached), "never 13");
    assert_eq!(va, b.get_visit(&id).unwrap(), "both show the same winner");
    let conflicts = a.conflicts(&id).unwrap();
    assert_eq!(conflicts.len(), 1);
    let c = &conflicts[0];
    assert_eq!(c.field, "people_reached");
    let mut seen: Vec<(FieldValue, Option<String>)> = c
        .values
        .iter()
        .map(|v| (v.value.clone(), v.author.device_name.clone()))
        .collect();
    seen.sort_by_key(|(v, _)| format!("{v:?}"));
    assert_eq!(
        seen,
        vec![
            (FieldValue::Int(5), Some("Ana's phone".into())),
            (FieldValue::Int(8), Some("Bo's phone".into())),
        ]
    );
    assert!(a.list_visits(&VisitFilter::default()).unwrap()[0].has_conflicts);

    assert!(matches!(
        b.resolve_conflict(&id, "people_reached", &FieldValue::Int(13)),
        Err(Error::InvalidInput { .. })
    ));
    b.resolve_conflict(&id, "people_reached", &FieldValue::Int(8))
        .unwrap();
    sync_pair(&a, &b);
    for s in [&a, &b] {
        assert!(s.conflicts(&id).unwrap().is_empty());
        let v = s.get_visit(&id).unwrap();
        assert_eq!(v.people_reached, 8);
        assert!(!v.has_conflicts);
    }
}

#[test]
fn a_delete_and_a_concurrent_edit_both_survive_and_the_record_stays_deleted() {
    let (_ta, a, _tb, b, ws) = two_devices();
    let id = a.create_visit(&ws, &visit("Farm", "West", NOV_1)).unwrap();
    sync_pair(&a, &b);
    a.delete_record(&id).unwrap();
    b.set_visit_notes(&id, "late note").unwrap();
    sync_pair(&a, &b);
    for s in [&a, &b] {
        let v = s.get_visit(&id).unwrap();
        assert!(v.deleted);
        assert_eq!(v.notes, "late note");
        assert!(s.list_visits(&VisitFilter::default()).unwrap().is_empty());
    }
}

#[test]
fn settings_edited_on_two_devices_merge_per_label() {
    let (_ta, a, _tb, b, ws) = two_devices();
    a.update_settings(
        &ws,
        &[SettingsEdit::SetLabel {
            taxonomy: "visit_types".into(),
            key: "home_visit".into(),
            lang: "fr".into(),
            text: "Visite à domicile".into(),
        }],
    )
    .unwrap();
    b.update_settings(
        &ws,
        &[SettingsEdit::AddEntry {
            taxonomy: "risk_indicators".into(),
            key: "no_contract".into(),
            labels: vec![Label {
                lang: "en".into(),
                text: "No written contract".into(),
            }],
        }],
    )
    .unwrap();
    sync_pair(&a, &b);
    let sa = a.settings(&ws).unwrap();
    assert_eq!(sa, b.settings(&ws).unwrap());
    let find = |tax: &str, key: &str| {
        sa.taxonomies
            .iter()
            .find(|t| t.name == tax)
            .unwrap()
            .entries
            .iter()
            .find(|e| e.key == key)
            .cloned()
    };
    assert_eq!(find("visit_types", "home_visit").unwrap().labels.len(), 3);
    assert!(find("risk_indicators", "no_contract").is_some());
}

#[test]
fn history_lists_who_changed_which_fields_and_when() {
    let (_ta, a, _tb, b, ws) = two_devices();
    a.set_device_name("Ana's phone").unwrap();
    b.set_device_name("Bo's phone").unwrap();
    let id = a.create_visit(&ws, &visit("Mine", "Hills", NOV_1)).unwrap();
    sync_pair(&a, &b);
    b.update_visit(
        &id,
        &[
            VisitEdit::PeopleReached(9),
            VisitEdit::AddIndicator("isolation".into()),
        ],
    )
    .unwrap();
    a.set_visit_notes(&id, "noted").unwrap();
    sync_pair(&a, &b);
    let h = a.history(&id).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].author.device_name.as_deref(), Some("Ana's phone"));
    assert!(h[0].fields.contains(&"place_name".to_string()));
    let bo = h
        .iter()
        .find(|e| e.author.device_name.as_deref() == Some("Bo's phone"))
        .unwrap();
    assert_eq!(bo.fields, vec!["indicators", "people_reached"]);
    let notes = h.iter().find(|e| e.fields == vec!["notes"]).unwrap();
    assert_eq!(notes.author.device_name.as_deref(), Some("Ana's phone"));
    assert!(h.iter().all(|e| e.at > NOV_1 - 365 * DAY));
    assert_eq!(b.history(&id).unwrap().len(), 3);
}

#[test]
fn garbage_or_truncated_bundles_are_refused_and_change_nothing() {
    let (_ta, a, _tb, b, ws) = two_devices();
    let id = a
        .create_visit(&ws, &visit("Quarry", "North", NOV_1))
        .unwrap();
    a.set_visit_notes(&id, "first note").unwrap();
    let good = a.export_changes(Some(&b.checkpoint().unwrap())).unwrap();
    let before = b.checkpoint().unwrap();
    let corrupt = |r: Result<ImportReport>| assert!(matches!(r, Err(Error::Corrupt(_))), "{r:?}");

    corrupt(b.import_changes(b"not a bundle at all"));
    corrupt(b.import_changes(&[]));
    for cut in [1, good.len() / 3, good.len() / 2, good.len() - 1] {
        corrupt(b.import_changes(&good[..cut]));
    }
    // Flip bytes inside the Automerge chunk (past the CBOR framing).
    let mut flipped = good.clone();
    let n = flipped.len();
    for b in &mut flipped[n - 40..n - 20] {
        *b ^= 0x5a;
    }
    assert!(matches!(
        b.import_changes(&flipped),
        Err(Error::Tampered(_))
    ));
    assert_eq!(b.checkpoint().unwrap(), before, "nothing was stored");
    assert!(matches!(b.get_visit(&id), Err(Error::NotFound { .. })));
    corrupt(
        b.export_changes(Some(b"garbage checkpoint"))
            .map(|_| ImportReport::default()),
    );

    b.import_changes(&good).unwrap();
    assert_eq!(b.get_visit(&id).unwrap().notes, "first note");
}

#[test]
fn a_bundle_reveals_nothing_and_opens_only_for_members_of_its_workspace() {
    let (_ta, a, ws) = store_with_workspace();
    let mut v = visit("Marker-Place-8812", "Marker-Area-4471", NOV_1);
    v.notes = "Marker-Note-9930 about a locked dormitory".into();
    a.create_visit(&ws, &v).unwrap();
    let bundle = a.export_changes(None).unwrap();
    for marker in [
        "Marker-Place-8812",
        "Marker-Area-4471",
        "Marker-Note-9930",
        "dormitory",
        "street_outreach",
        "North district",
    ] {
        assert!(
            !bundle.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker} in the bundle"
        );
    }
    // Another team's device, with workspaces of its own, cannot import it.
    let tb = temp_path();
    let stranger = open(&tb.path);
    stranger.create_workspace("Another team").unwrap();
    assert!(matches!(
        stranger.import_changes(&bundle),
        Err(Error::UnknownWorkspace { .. })
    ));
    assert!(
        stranger
            .list_visits(&VisitFilter::default())
            .unwrap()
            .is_empty()
    );
    // A device that joined with an invite can.
    let tc = temp_path();
    let member = open(&tc.path);
    join(&member, &a, &ws);
    member.import_changes(&bundle).unwrap();
    assert_eq!(
        member.list_visits(&VisitFilter::default()).unwrap().len(),
        1
    );
}

#[test]
fn a_bundle_altered_in_transit_is_refused_as_tampered() {
    let (_ta, a, ws) = store_with_workspace();
    a.create_visit(&ws, &visit("Dock", "Port", NOV_1)).unwrap();
    let bundle = a.export_changes(None).unwrap();
    let tb = temp_path();
    let b = open(&tb.path);
    join(&b, &a, &ws);
    let mut altered = bundle.clone();
    let n = altered.len();
    altered[n - 30] ^= 0x01;
    assert!(matches!(
        b.import_changes(&altered),
        Err(Error::Tampered(_))
    ));
    assert!(b.list_visits(&VisitFilter::default()).unwrap().is_empty());
    b.import_changes(&bundle).unwrap();
    assert_eq!(b.list_visits(&VisitFilter::default()).unwrap().len(), 1);
}

#[test]
fn invites_without_a_server_carry_the_workspace_and_refuse_garbage() {
    let (_ta, a, ws) = store_with_workspace();
    let code = a.create_invite(&ws, 600).unwrap();
    assert!(code.starts_with("WAYMARK1"));
    let tb = temp_path();
    let b = open(&tb.path);
    assert!(matches!(
        b.join("not an invite"),
        Err(Error::InvalidInvite(_))
    ));
    assert!(matches!(
        b.join(&code[..code.len() - 10]),
        Err(Error::InvalidInvite(_))
    ));
    let joined = b.join(&code).unwrap();
    assert_eq!(joined.id, ws);
    assert_eq!(joined.name, "North district");
    assert!(matches!(
        a.create_invite(&ws, 0),
        Err(Error::InvalidInput { .. })
    ));
}
