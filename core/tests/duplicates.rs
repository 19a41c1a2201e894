//! Duplicate attendees: the likely matches a check-in is warned of, the pairs two devices made
//! apart that show once they merged, marking two attendances as one person (undoable, merged
//! across devices), and reports that count people beside attendances, against figures this
//! test computes itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use waymark_core::*;

fn person(name: &str, age: &str, gender: &str) -> NewAttendee {
    NewAttendee {
        name: name.into(),
        age_band: Some(age.into()),
        gender: Some(gender.into()),
        ..Default::default()
    }
}

#[test]
fn a_check_in_is_warned_of_likely_matches_with_a_score_and_why() {
    let (_t, s, ws) = store_with_workspace();
    let w = s
        .create_workshop(&ws, &workshop("Rights", "workers_rights", NOV_1))
        .unwrap();
    let maria = s
        .check_in(&w, &person("María López", "18_24", "female"))
        .unwrap();
    s.check_in(&w, &person("Mario Lopes", "35_49", "male"))
        .unwrap();
    s.check_in(
        &w,
        &NewAttendee {
            name: "Ana Ruiz".into(),
            contact: Some("+52 555 0101".into()),
            consent: true,
            ..Default::default()
        },
    )
    .unwrap();
    let top = |a: &NewAttendee| {
        s.possible_duplicates(&ws, a)
            .unwrap()
            .into_iter()
            .next()
            .map(|m| (m.attendee.name, m.reasons, m.score))
    };

    let (name, why, score) = top(&person("lopez MARIA", "18_24", "female")).unwrap();
    assert_eq!(name, "María López");
    assert_eq!(why, ["name_word_order", "same_age_band", "same_gender"]);
    assert!((score - 1.0).abs() < 1e-9, "{score}");
    let (name, why, _) = top(&person("Maria Lopezz", "18_24", "female")).unwrap();
    assert_eq!(
        (name.as_str(), why[0].as_str()),
        ("María López", "name_typo")
    );
    let found = s
        .possible_duplicates(&ws, &person("Maria Lopez", "18_24", "female"))
        .unwrap();
    assert_eq!(found[0].attendee.attendee_id, maria);
    assert!(
        found.iter().all(|m| m.attendee.name != "Mario Lopes"),
        "another age band and gender rule a near name out: {found:?}"
    );
    let by_phone = NewAttendee {
        name: "A. R.".into(),
        contact: Some("+52 (555) 01-01".into()),
        consent: true,
        ..Default::default()
    };
    assert_eq!(top(&by_phone).unwrap().1, ["same_contact"]);
    assert!(top(&person("Zainab Okafor", "18_24", "female")).is_none());
    assert!(
        top(&person("Ana", "18_24", "female")).is_none(),
        "a short name needs the same key, not a typo away from every other short name"
    );
}

#[test]
fn duplicates_two_devices_made_apart_show_on_both_and_merge_into_one_person() {
    let (_ta, a, ws) = store_with_workspace();
    let tb = temp_path();
    let b = open(&tb.path);
    join(&b, &a, &ws);
    let first = a
        .create_workshop(&ws, &workshop("Rights", "workers_rights", NOV_1))
        .unwrap();
    let second = a
        .create_workshop(
            &ws,
            &workshop("Safe migration", "safe_migration", NOV_1 + 31 * 86_400_000),
        )
        .unwrap();
    sync_pair(&a, &b);

    // Two educators at one door, offline: both check in the same people, typed their way.
    let ana_a = a
        .check_in(&first, &person("Ana Pérez", "18_24", "female"))
        .unwrap();
    a.check_in(&first, &person("Luis Gómez", "25_34", "male"))
        .unwrap();
    let ana_b = b
        .check_in(&first, &person("ana perez", "18_24", "female"))
        .unwrap();
    b.check_in(&first, &person("Rosa Díaz", "12_17", "female"))
        .unwrap();
    // Ana comes back to the second workshop.
    let ana_again = b
        .check_in(&second, &person("Perez Ana", "18_24", "female"))
        .unwrap();
    sync_pair(&a, &b);

    for s in [&a, &b] {
        let pairs = s.duplicate_attendees(&ws).unwrap();
        assert_eq!(
            pairs.len(),
            3,
            "every two of Ana's three attendances: {pairs:?}"
        );
        assert!(
            pairs
                .iter()
                .all(|p| p.first.name.to_lowercase().contains("ana"))
        );
        let r = s.report(&ReportFilter::default()).unwrap();
        assert_eq!((r.workshops.named, r.workshops.unique_people), (5, 5));
    }

    a.merge_attendees(&first, &ana_b, &first, &ana_a).unwrap();
    b.merge_attendees(&second, &ana_again, &first, &ana_b)
        .unwrap();
    sync_pair(&a, &b);
    for s in [&a, &b] {
        assert_eq!(s.duplicate_attendees(&ws).unwrap(), vec![]);
        let r = s.report(&ReportFilter::default()).unwrap();
        // Ana, Luis and Rosa: three people, five attendances.
        assert_eq!((r.workshops.named, r.workshops.unique_people), (5, 3));
        let months: i64 = r.months.iter().map(|m| m.workshops.unique_people).sum();
        assert_eq!(
            months, 4,
            "per month: 3 in the first workshop's, Ana again in the next"
        );
        let door = s.attendance(&first).unwrap();
        assert_eq!((door.named, door.unique_people), (4, 3));
    }

    // Undone on one device, undone on both.
    b.unmerge_attendee(&first, &ana_b).unwrap();
    sync_pair(&a, &b);
    for s in [&a, &b] {
        assert_eq!(s.attendance(&first).unwrap().unique_people, 4);
        assert_eq!(
            s.duplicate_attendees(&ws).unwrap().len(),
            2,
            "ana_b is her own again"
        );
    }
    assert!(
        a.merge_attendees(&first, &ana_a, &first, &ana_a).is_err(),
        "not the same as oneself"
    );
}
