//! Convergence: stores applying random operations of every kind offline and exchanging
//! changes in random orders, with duplicates and partial exchanges, end identical once
//! everyone has exchanged everything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use proptest::prelude::*;
use waymark_core::*;

#[derive(Debug, Clone)]
enum Op {
    CreateVisit {
        store: usize,
        n: u8,
    },
    EditVisit {
        store: usize,
        which: usize,
        edit: u8,
        n: u8,
    },
    EditNotes {
        store: usize,
        which: usize,
        at: usize,
        word: u8,
        delete: bool,
    },
    Delete {
        store: usize,
        which: usize,
    },
    CreateWorkshop {
        store: usize,
        n: u8,
    },
    CheckIn {
        store: usize,
        which: usize,
        n: u8,
    },
    Withdraw {
        store: usize,
        which: usize,
        attendee: usize,
    },
    Tally {
        store: usize,
        which: usize,
        band: u8,
        gender: u8,
        delta: i8,
    },
    Feedback {
        store: usize,
        which: usize,
        score: u8,
    },
    Settings {
        store: usize,
        n: u8,
    },
    /// `to` imports what `from` has beyond `basis`'s checkpoint: exact when basis == to,
    /// partial (possibly with missing dependencies) or redundant otherwise.
    Exchange {
        from: usize,
        to: usize,
        basis: usize,
        twice: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0usize..4;
    prop_oneof![
        (s.clone(), any::<u8>()).prop_map(|(store, n)| Op::CreateVisit { store, n }),
        (s.clone(), any::<usize>(), 0u8..8, any::<u8>()).prop_map(|(store, which, edit, n)| {
            Op::EditVisit {
                store,
                which,
                edit,
                n,
            }
        }),
        (
            s.clone(),
            any::<usize>(),
            any::<usize>(),
            any::<u8>(),
            any::<bool>()
        )
            .prop_map(|(store, which, at, word, delete)| Op::EditNotes {
                store,
                which,
                at,
                word,
                delete
            }),
        (s.clone(), any::<usize>()).prop_map(|(store, which)| Op::Delete { store, which }),
        (s.clone(), any::<u8>()).prop_map(|(store, n)| Op::CreateWorkshop { store, n }),
        (s.clone(), any::<usize>(), any::<u8>()).prop_map(|(store, which, n)| Op::CheckIn {
            store,
            which,
            n
        }),
        (s.clone(), any::<usize>(), any::<usize>()).prop_map(|(store, which, attendee)| {
            Op::Withdraw {
                store,
                which,
                attendee,
            }
        }),
        (s.clone(), any::<usize>(), 0u8..3, 0u8..2, -2i8..4).prop_map(
            |(store, which, band, gender, delta)| Op::Tally {
                store,
                which,
                band,
                gender,
                delta
            }
        ),
        (s.clone(), any::<usize>(), 1u8..=5).prop_map(|(store, which, score)| Op::Feedback {
            store,
            which,
            score
        }),
        (s.clone(), any::<u8>()).prop_map(|(store, n)| Op::Settings { store, n }),
        (s.clone(), s.clone(), s, any::<bool>()).prop_map(|(from, to, basis, twice)| {
            Op::Exchange {
                from,
                to,
                basis,
                twice,
            }
        }),
        // Exchanges are frequent in the field: weight them up.
        (0usize..4, 0usize..4).prop_map(|(from, to)| Op::Exchange {
            from,
            to,
            basis: to,
            twice: false
        }),
    ]
}

const WORDS: [&str; 6] = ["door ", "locked ", "passport ", "débt ", "van ", "night "];

fn visits(s: &Store) -> Vec<String> {
    let mut ids: Vec<String> = s
        .list_visits(&VisitFilter {
            include_deleted: true,
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    ids.sort();
    ids
}

fn workshops(s: &Store) -> Vec<String> {
    let mut ids: Vec<String> = s
        .list_workshops(&WorkshopFilter {
            include_deleted: true,
            limit: Some(10_000),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    ids.sort();
    ids
}

fn pick(ids: &[String], which: usize) -> Option<&String> {
    (!ids.is_empty()).then(|| &ids[which % ids.len()])
}

fn apply(stores: &[Store], ws: &str, op: &Op) {
    let n_stores = stores.len();
    match op.clone() {
        Op::CreateVisit { store, n } => {
            let mut v = visit(
                &format!("Place {n}"),
                ["North", "South"][n as usize % 2],
                NOV_1 + i64::from(n) * DAY,
            );
            v.notes = format!("visit {n} ");
            stores[store % n_stores].create_visit(ws, &v).unwrap();
        }
        Op::EditVisit {
            store,
            which,
            edit,
            n,
        } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&visits(s), which).cloned() else {
                return;
            };
            let e = match edit {
                0 => VisitEdit::PeopleReached(u32::from(n % 10)),
                1 => VisitEdit::AddIndicator(
                    ["isolation", "debt_bondage", "deception"][n as usize % 3].into(),
                ),
                2 => VisitEdit::RemoveIndicator(
                    ["isolation", "debt_bondage", "deception"][n as usize % 3].into(),
                ),
                3 => VisitEdit::Area(["North", "South", "East"][n as usize % 3].into()),
                4 => VisitEdit::FollowUpNeeded(n % 2 == 0),
                5 => VisitEdit::FollowUpDue(Some(format!("2026-11-{:02}", 1 + n % 28))),
                6 => VisitEdit::AddTag(format!("t{}", n % 4)),
                _ => VisitEdit::Sensitivity(if n % 2 == 0 {
                    Sensitivity::Normal
                } else {
                    Sensitivity::Restricted
                }),
            };
            s.update_visit(&id, &[e]).unwrap();
            if edit == 0 && n % 3 == 0 {
                s.add_referral(
                    &id,
                    &NewReferral {
                        kind: "medical".into(),
                        to: format!("Clinic {n}"),
                        status: ReferralStatus::Made,
                    },
                )
                .unwrap();
            }
        }
        Op::EditNotes {
            store,
            which,
            at,
            word,
            delete,
        } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&visits(s), which).cloned() else {
                return;
            };
            let mut chars: Vec<char> = s.get_visit(&id).unwrap().notes.chars().collect();
            let pos = at % (chars.len() + 1);
            if delete && !chars.is_empty() {
                let end = (pos + 1 + word as usize % 5).min(chars.len());
                chars.drain(pos.min(chars.len() - 1)..end);
            } else {
                for (i, c) in WORDS[word as usize % WORDS.len()].chars().enumerate() {
                    chars.insert(pos + i, c);
                }
            }
            s.set_visit_notes(&id, &chars.into_iter().collect::<String>())
                .unwrap();
        }
        Op::Delete { store, which } => {
            let s = &stores[store % n_stores];
            let all: Vec<String> = visits(s).into_iter().chain(workshops(s)).collect();
            if let Some(id) = pick(&all, which) {
                s.delete_record(id).unwrap();
            }
        }
        Op::CreateWorkshop { store, n } => {
            let mut w = workshop(
                &format!("Workshop {n}"),
                ["safe_migration", "online_safety"][n as usize % 2],
                NOV_1,
            );
            w.notes = format!("workshop {n}");
            stores[store % n_stores].create_workshop(ws, &w).unwrap();
        }
        Op::CheckIn { store, which, n } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&workshops(s), which).cloned() else {
                return;
            };
            s.check_in(
                &id,
                &NewAttendee {
                    name: format!("Person {n}"),
                    age_band: Some("18_24".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        Op::Withdraw {
            store,
            which,
            attendee,
        } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&workshops(s), which).cloned() else {
                return;
            };
            let att = s.attendance(&id).unwrap().attendees;
            if let Some(a) = (!att.is_empty()).then(|| &att[attendee % att.len()]) {
                s.withdraw_attendee(&id, &a.id).unwrap();
            }
        }
        Op::Tally {
            store,
            which,
            band,
            gender,
            delta,
        } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&workshops(s), which).cloned() else {
                return;
            };
            if delta != 0 {
                s.add_to_tally(
                    &id,
                    ["12_17", "18_24", "25_59"][band as usize],
                    ["female", "male"][gender as usize],
                    i64::from(delta),
                )
                .unwrap();
            }
        }
        Op::Feedback {
            store,
            which,
            score,
        } => {
            let s = &stores[store % n_stores];
            let Some(id) = pick(&workshops(s), which).cloned() else {
                return;
            };
            s.add_feedback(&id, score, "ok").unwrap();
        }
        Op::Settings { store, n } => {
            stores[store % n_stores]
                .update_settings(
                    ws,
                    &[SettingsEdit::SetLabel {
                        taxonomy: "visit_types".into(),
                        key: "home_visit".into(),
                        lang: ["fr", "pt"][n as usize % 2].into(),
                        text: format!("label {n}"),
                    }],
                )
                .unwrap();
        }
        Op::Exchange {
            from,
            to,
            basis,
            twice,
        } => {
            let (from, to, basis) = (from % n_stores, to % n_stores, basis % n_stores);
            if from == to {
                return;
            }
            let bundle = stores[from]
                .export_changes(Some(&stores[basis].checkpoint().unwrap()))
                .unwrap();
            stores[to].import_changes(&bundle).unwrap();
            if twice {
                stores[to].import_changes(&bundle).unwrap();
            }
        }
    }
}

fn check_converged(stores: &[Store]) {
    // Everyone exchanges everything with everyone, in both directions, twice over.
    for _ in 0..2 {
        for a in 0..stores.len() {
            for b in 0..stores.len() {
                if a != b {
                    stores[b]
                        .import_changes(&stores[a].export_changes(None).unwrap())
                        .unwrap();
                }
            }
        }
    }
    let first = &stores[0];
    let ids = visits(first);
    for s in &stores[1..] {
        assert_eq!(
            s.checkpoint().unwrap(),
            first.checkpoint().unwrap(),
            "identical documents"
        );
        assert_eq!(
            s.projection_rows().unwrap(),
            first.projection_rows().unwrap(),
            "identical projections"
        );
        for id in &ids {
            assert_eq!(s.get_visit(id).unwrap(), first.get_visit(id).unwrap());
        }
        for id in workshops(first) {
            assert_eq!(
                s.get_workshop(&id).unwrap(),
                first.get_workshop(&id).unwrap()
            );
            assert_eq!(s.attendance(&id).unwrap(), first.attendance(&id).unwrap());
        }
    }
    // Projections match the documents they came from.
    for s in stores {
        let rows = s.projection_rows().unwrap();
        s.rebuild_projections().unwrap();
        assert_eq!(s.projection_rows().unwrap(), rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn stores_exchanging_in_any_order_end_identical(n_stores in 2usize..=4, ops in prop::collection::vec(op(), 1..40)) {
        let dirs: Vec<TempStore> = (0..n_stores).map(|_| temp_path()).collect();
        let stores: Vec<Store> = dirs.iter().map(|d| open(&d.path)).collect();
        let ws = stores[0].create_workspace("Team").unwrap().id;
        let seed = stores[0].export_changes(None).unwrap();
        for s in &stores[1..] {
            join(s, &stores[0], &ws);
            s.import_changes(&seed).unwrap();
        }
        for op in &ops {
            apply(&stores, &ws, op);
        }
        check_converged(&stores);
    }
}
