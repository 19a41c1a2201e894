//! The team's storage rules where several stores share one database (several server processes,
//! or the admin command beside `serve`), and upgrades of databases written before device keys
//! and roles existed (schema 1) and before the team log (schema 2). Every test runs on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::old::Old;
use common::pairs::Pair;
use common::{blob, new_device};
use ed25519_dalek::{Signer, SigningKey};
use waymark_protocol::team_log::{
    Body, Entry, Grant, Member, Restricted, SignedEntry, TeamState, Vouch,
};
use waymark_protocol::{AppendRequest, KeyEnvelope, KeysRequest, roles};
use waymark_server::storage::{Device, NewDevice, StorageError};
use waymark_server::{Storage, tokens};

/// Enrolls a device with `role` through the storage API; returns it and its keys.
fn enroll(storage: &dyn Storage, ws: &str, role: &str) -> (Device, NewDevice) {
    let enrollment = tokens::new_token();
    let now = tokens::now();
    storage
        .issue_enrollment_token(
            ws,
            &tokens::hash_token(&enrollment),
            now + 60,
            None,
            role,
            now,
        )
        .unwrap();
    let device_token = tokens::new_token();
    let new = new_device(&device_token);
    let enrolled = storage
        .enroll(&tokens::hash_token(&enrollment), &new, now)
        .unwrap();
    assert_eq!(enrolled.role, role);
    let device = storage
        .authenticate(&tokens::hash_token(&device_token))
        .unwrap()
        .unwrap();
    assert_eq!(device.role, role);
    (device, new)
}

fn rotation(to: u32, signer: &NewDevice, recipients: &[&Device]) -> KeysRequest {
    KeysRequest {
        rotate_to: Some(to),
        envelopes: recipients
            .iter()
            .map(|d| KeyEnvelope {
                device_id: d.id.clone(),
                epoch: to,
                sealed_key: vec![to as u8; 48],
                signer_key: signer.sign_key,
                signature: [1; 64],
            })
            .collect(),
    }
}

fn coordinators_rotating_through_two_stores_never_skip_or_repeat_an_epoch(pair: Pair) {
    let ws = pair.a.create_workspace(None, 0).unwrap().id;
    let (first, first_keys) = enroll(pair.a.as_ref(), &ws, roles::COORDINATOR);
    let (second, second_keys) = enroll(pair.b.as_ref(), &ws, roles::COORDINATOR);
    let everyone = [&first, &second];
    let rounds = 10u32;
    let wins: Vec<u32> = std::thread::scope(|scope| {
        let racers = [
            (&pair.a, &first, &first_keys),
            (&pair.b, &second, &second_keys),
        ]
        .map(|(store, caller, keys)| {
            scope.spawn(move || {
                // Each keeps rotating to the epoch after the one it last saw, like a client
                // that fetches the team and retries after a conflict.
                let mut won = 0;
                loop {
                    let epoch = store.team(caller, 0).unwrap().epoch;
                    if epoch >= rounds {
                        return won;
                    }
                    match store.upload_keys(caller, &rotation(epoch + 1, keys, &everyone), 0) {
                        Ok(now) => {
                            assert_eq!(now, epoch + 1);
                            won += 1;
                        }
                        Err(StorageError::Conflict(_)) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
            })
        });
        racers.map(|r| r.join().unwrap()).to_vec()
    });
    assert_eq!(
        wins.iter().sum::<u32>(),
        rounds,
        "every epoch was won exactly once"
    );
    let team = pair.a.team(&first, 0).unwrap();
    assert_eq!(team.epoch, rounds);
    for device in &team.devices {
        assert_eq!(device.key_epochs, (1..=rounds).collect::<Vec<_>>());
    }
}

fn no_blob_of_a_revoked_device_is_numbered_above_its_revoked_at_seq(pair: Pair) {
    let ws = pair.a.create_workspace(None, 0).unwrap().id;
    let (lost, _) = enroll(pair.a.as_ref(), &ws, roles::MEMBER);
    let (kept, _) = enroll(pair.a.as_ref(), &ws, roles::COORDINATOR);
    let revoked_at_seq = std::thread::scope(|scope| {
        // Pushes until refused, so the revocation surely lands while it pushes.
        let pusher = scope.spawn(|| {
            for i in 0..100_000u32 {
                if pair
                    .a
                    .push(&lost, &[blob(1, format!("lost {i}").as_bytes())], 0)
                    .is_err()
                {
                    return i;
                }
            }
            panic!("the revoked device was never refused");
        });
        let other = scope.spawn(|| {
            for i in 0..100u32 {
                pair.a
                    .push(&kept, &[blob(2, format!("kept {i}").as_bytes())], 0)
                    .unwrap();
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(30));
        let seq = pair.b.revoke_device(&lost.id, 1).unwrap();
        let pushed = pusher.join().unwrap();
        other.join().unwrap();
        assert!(pushed > 0, "the revocation came before any push");
        seq
    });
    let page = pair.b.pull(&ws, 0, u64::MAX, 10_000).unwrap();
    let last_of_lost = page
        .blobs
        .iter()
        .filter(|b| b.device_id == lost.id)
        .map(|b| b.seq)
        .max()
        .unwrap_or(0);
    assert!(
        last_of_lost <= revoked_at_seq,
        "blob {last_of_lost} of the revoked device is above its revoked_at_seq {revoked_at_seq}"
    );
    assert!(
        matches!(
            pair.a.push(&lost, &[blob(1, b"late")], 0).unwrap_err(),
            StorageError::DeviceRevoked
        ),
        "the revoked device cannot push through the other store"
    );
    let listed = pair.a.list_devices(Some(&ws)).unwrap();
    let entry = listed.iter().find(|d| d.id == lost.id).unwrap();
    assert_eq!(entry.revoked_at_seq, Some(revoked_at_seq));
}

fn an_enrollment_racing_a_rotation_keeps_epochs_consecutive_and_lists_the_device(pair: Pair) {
    let ws = pair.a.create_workspace(None, 0).unwrap().id;
    let (lead, lead_keys) = enroll(pair.a.as_ref(), &ws, roles::COORDINATOR);
    for round in 1..=10u32 {
        let (rotated, joined) = std::thread::scope(|scope| {
            let rotate = scope.spawn(|| {
                pair.a
                    .upload_keys(&lead, &rotation(round, &lead_keys, &[&lead]), 0)
            });
            let join = scope.spawn(|| enroll(pair.b.as_ref(), &ws, roles::MEMBER).0);
            (rotate.join().unwrap(), join.join().unwrap())
        });
        // Whichever committed first, the rotation stands and the new device is listed without
        // the new key: the coordinator tops it up once it vouches for it.
        assert_eq!(rotated.unwrap(), round);
        let team = pair.a.team(&lead, 0).unwrap();
        let entry = team
            .devices
            .iter()
            .find(|d| d.device_id == joined.id)
            .unwrap();
        assert!(!entry.key_epochs.contains(&round));
        pair.b.revoke_device(&joined.id, 0).unwrap();
    }
    assert_eq!(pair.a.team(&lead, 0).unwrap().epoch, 10);
}

/// A workspace as a schema-1 server left it: `first` enrolled with the operator's token,
/// `invited` with a token `first` issued, `gone` revoked at time 50 after blob 2, one unused
/// invite of `first`'s; `{key:N}` stands for a 32-byte value and `{id:N}` for a 16-byte one.
const SCHEMA_1_FIXTURE: &str = "
    INSERT INTO workspaces (id, public_id, name, created_at, head_seq) VALUES (1, 'w', NULL, 1, 3);
    INSERT INTO devices (id, public_id, workspace, name, token_hash, enrolled_at, revoked_at)
        VALUES (1, 'first', 1, 'first', {key:1}, 2, NULL),
               (2, 'invited', 1, 'invited', {key:2}, 3, NULL),
               (3, 'gone', 1, 'gone', {key:3}, 4, 50);
    INSERT INTO enrollment_tokens (token_hash, workspace, created_at, expires_at, issued_by,
                                   used_at, used_by)
        VALUES ({key:11}, 1, 1, 9999999999, NULL, 2, 1),
               ({key:12}, 1, 2, 9999999999, 1, 3, 2),
               ({key:13}, 1, 1, 9999999999, NULL, 4, 3),
               ({key:14}, 1, 5, 9999999999, 1, NULL, NULL);
    INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size, ciphertext,
                       created_at)
        VALUES (1, 1, {key:21}, {id:1}, 1, 1, 1, {id:9}, 10),
               (1, 2, {key:22}, {id:1}, 1, 3, 1, {id:9}, 40),
               (1, 3, {key:23}, {id:1}, 1, 1, 1, {id:9}, 60);
";

/// The fixture with byte strings written as `literal(bytes)` spells them in a backend's SQL.
fn fixture(literal: impl Fn(&[u8]) -> String) -> String {
    let mut sql = SCHEMA_1_FIXTURE.to_owned();
    for n in 0..=30u8 {
        sql = sql.replace(&format!("{{key:{n}}}"), &literal(&[n; 32]));
        sql = sql.replace(&format!("{{id:{n}}}"), &literal(&[n; 16]));
    }
    sql
}

/// What an upgraded schema-1 database must show (`storage` opened it, migrating it).
fn check_upgraded(storage: &dyn Storage) {
    let devices = storage.list_devices(Some("w")).unwrap();
    let listed: Vec<(&str, &str, Option<u64>)> = devices
        .iter()
        .map(|d| (d.id.as_str(), d.role.as_str(), d.revoked_at_seq))
        .collect();
    assert_eq!(
        listed,
        [
            ("first", roles::COORDINATOR, None),
            ("invited", roles::MEMBER, None),
            ("gone", roles::COORDINATOR, Some(2)),
        ],
        "operator-enrolled devices lead, invited ones are members, revocations get a seq"
    );
    let first = Device {
        id: "first".into(),
        workspace_id: "w".into(),
        role: roles::COORDINATOR.into(),
    };
    let team = storage.team(&first, 0).unwrap();
    assert_eq!((team.version, team.epoch), (0, 0));
    assert!(team.rotation_needed, "a revoked device still holds the key");
    assert!(
        team.devices
            .iter()
            .all(|d| d.sign_key == [0; 32] && d.box_key == [0; 32])
    );
    // The invite `first` made before roles existed enrolls a member.
    let enrolled = storage
        .enroll(&[14; 32], &new_device(&tokens::new_token()), 6)
        .unwrap();
    assert_eq!(enrolled.role, roles::MEMBER);
    // Devices without keys cannot be sealed to; the keyless coordinator cannot sign uploads.
    let request = KeysRequest {
        rotate_to: None,
        envelopes: vec![KeyEnvelope {
            device_id: "invited".into(),
            epoch: 0,
            sealed_key: vec![1; 48],
            signer_key: [0; 32],
            signature: [0; 64],
        }],
    };
    assert!(matches!(
        storage.upload_keys(&first, &request, 7).unwrap_err(),
        StorageError::Invalid(_)
    ));
    assert_eq!(storage.pull("w", 0, u64::MAX, 10).unwrap().blobs.len(), 3);
}

fn a_schema_1_database_upgrades_with_roles_and_revocation_seqs(old: Old) {
    let mut db = old.at(1);
    let sql = fixture(|bytes| db.bytes(bytes));
    db.execute(&sql);
    check_upgraded(db.open().unwrap().as_ref());
    assert_eq!(db.recorded_version(), db.latest_version());
}

/// A workspace as a schema-2 server left it: `lead` (a coordinator) and `ana` (a member)
/// enrolled with real device keys (`{lead_sign}`, ...), one blob of Ana's at epoch 0, the
/// coordinator's envelope of epoch 0; `{tok:N}` stands for a 32-byte value.
const SCHEMA_2_FIXTURE: &str = "
    INSERT INTO workspaces (id, public_id, name, created_at, head_seq, epoch, team_version)
        VALUES (1, 'w', NULL, 1, 1, 0, 3);
    INSERT INTO devices (id, public_id, workspace, name, token_hash, enrolled_at, role,
                         sign_key, box_key)
        VALUES (1, 'lead', 1, 'Lead', {tok:1}, 2, 'coordinator', {lead_sign}, {lead_box}),
               (2, 'ana', 1, 'Ana', {tok:2}, 3, 'member', {ana_sign}, {ana_box});
    INSERT INTO blobs (workspace, seq, content_id, doc_id, epoch, device, size, ciphertext,
                       created_at)
        VALUES (1, 1, {tok:21}, {doc}, 0, 2, 1, {tok:23}, 10);
    INSERT INTO key_envelopes (device, epoch, sealed_key, signer_key, signature, created_at)
        VALUES (1, 0, {tok:31}, {lead_sign}, {signature}, 4);
";

/// The keys of the schema-2 fixture's devices.
struct Schema2Keys {
    lead: SigningKey,
    ana: SigningKey,
}

impl Schema2Keys {
    fn new() -> Self {
        Schema2Keys {
            lead: SigningKey::from_bytes(&[41; 32]),
            ana: SigningKey::from_bytes(&[42; 32]),
        }
    }

    fn box_key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// The fixture with byte strings written as `literal(bytes)` spells them in a backend's SQL.
    fn fixture(&self, literal: impl Fn(&[u8]) -> String) -> String {
        let mut sql = SCHEMA_2_FIXTURE
            .replace(
                "{lead_sign}",
                &literal(&self.lead.verifying_key().to_bytes()),
            )
            .replace("{ana_sign}", &literal(&self.ana.verifying_key().to_bytes()))
            .replace("{lead_box}", &literal(&Self::box_key(51)))
            .replace("{ana_box}", &literal(&Self::box_key(52)))
            .replace("{signature}", &literal(&[32; 64]))
            .replace("{doc}", &literal(&[33; 16]));
        for n in 0..=40u8 {
            sql = sql.replace(&format!("{{tok:{n}}}"), &literal(&[n; 32]));
        }
        sql
    }

    fn member(&self, id: &str, key: &SigningKey, role: &str, boxn: u8) -> Member {
        Member {
            device_id: id.into(),
            name: id.into(),
            role: role.into(),
            sign_key: key.verifying_key().to_bytes(),
            box_key: Self::box_key(boxn),
            actor: None,
        }
    }

    /// The lead's genesis of the team log, and its admission of Ana: what the lead's first
    /// sync after the upgrade sends.
    fn start_of_log(&self) -> Vec<SignedEntry> {
        let sign = |entry: &Entry| {
            let bytes = entry.to_bytes();
            SignedEntry {
                signature: self.lead.sign(&Entry::message(&bytes)).to_bytes(),
                entry: bytes,
            }
        };
        let author = self.lead.verifying_key().to_bytes();
        let genesis = sign(&Entry::first(
            author,
            5,
            Body::Genesis {
                workspace: "the-teams-own-id".into(),
                epoch: 0,
                coordinator: self.member("lead", &self.lead, roles::COORDINATOR, 51),
                restricted: Some(Restricted {
                    public: [9; 32],
                    grants: vec![Grant {
                        to: author,
                        epoch: 0,
                        sealed: vec![1; 80],
                    }],
                }),
            },
        ));
        let state = TeamState::genesis(&genesis).unwrap();
        let admit = sign(&Entry::next(
            &state,
            author,
            5,
            Body::Admit {
                member: self.member("ana", &self.ana, roles::MEMBER, 52),
                vouch: Vouch::Migrated,
                grants: vec![],
            },
        ));
        vec![genesis, admit]
    }
}

/// What an upgraded schema-2 database must do (`storage` opened it, migrating it): keep the
/// team and its blobs, accept the start of a team log signed by its coordinator, and serve it.
fn check_upgraded_to_the_team_log(storage: &dyn Storage, keys: &Schema2Keys) {
    let lead = Device {
        id: "lead".into(),
        workspace_id: "w".into(),
        role: roles::COORDINATOR.into(),
    };
    let before = storage.team(&lead, 0).unwrap();
    assert_eq!((before.log_len, before.log.len()), (0, 0), "no log yet");
    assert_eq!((before.version, before.epoch), (3, 0));
    assert_eq!(before.envelopes.len(), 1, "the envelope of epoch 0 stays");
    assert!(before.devices.iter().all(|d| d.actor.is_none()));
    let entries = keys.start_of_log();
    let request = AppendRequest {
        entries: entries.clone(),
        envelopes: Vec::new(),
    };
    assert_eq!(storage.append_team_log(&lead, &request, 6).unwrap(), 2);
    let after = storage.team(&lead, 0).unwrap();
    assert_eq!((after.log_len, &after.log), (2, &entries));
    assert_eq!(after.version, before.version + 1);
    assert_eq!(storage.team(&lead, 1).unwrap().log, entries[1..].to_vec());
    assert!(storage.team(&lead, 2).unwrap().log.is_empty());
    // Sent again (a retry after a lost answer): nothing changes.
    assert_eq!(storage.append_team_log(&lead, &request, 7).unwrap(), 2);
    assert_eq!(storage.team(&lead, 0).unwrap().log, entries);
    // The team is kept in the log now: the old key upload is refused.
    assert!(matches!(
        storage.upload_keys(&lead, &rotation(1, &new_device("x"), &[&lead]), 8),
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(storage.pull("w", 0, u64::MAX, 10).unwrap().blobs.len(), 1);
}

fn a_schema_2_database_upgrades_to_the_team_log_and_takes_its_genesis(old: Old) {
    let keys = Schema2Keys::new();
    let mut db = old.at(2);
    let sql = keys.fixture(|bytes| db.bytes(bytes));
    db.execute(&sql);
    check_upgraded_to_the_team_log(db.open().unwrap().as_ref(), &keys);
    assert_eq!(db.recorded_version(), db.latest_version());
}

common::backend_tests!(pairs:
    coordinators_rotating_through_two_stores_never_skip_or_repeat_an_epoch,
    no_blob_of_a_revoked_device_is_numbered_above_its_revoked_at_seq,
    an_enrollment_racing_a_rotation_keeps_epochs_consecutive_and_lists_the_device,
);

/// Each upgrade, from a database made by the release before it.
mod upgrades {
    use super::*;

    common::backend_tests!(old:
        a_schema_1_database_upgrades_with_roles_and_revocation_seqs,
        a_schema_2_database_upgrades_to_the_team_log_and_takes_its_genesis,
    );
}
