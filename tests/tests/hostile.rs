//! A server that lies: every attack a breached sync server (or whoever holds it) can mount on the
//! team, performed by a hostile server (`waymark_e2e::hostile`) in front of a real
//! `waymark-server` process. Each test checks that the attack gets no key, plants no signer,
//! drops no history and hides no revocation, and that the devices report it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use ciborium::Value;
use support::*;
use waymark_core::*;
use waymark_e2e::hostile::{Answer, Attack, HostileServer, attacker_opens_any};
use waymark_protocol as proto;

/// A team whose every device talks to the real server through `hostile`, the coordinator
/// first, each member admitted.
fn team_behind(server: &Server, names: &[&str]) -> (HostileServer, Vec<Device>, String) {
    let hostile = HostileServer::start(&server.url()).unwrap();
    let (_, token) = server.workspace_and_token();
    let (devices, ws) = team(&hostile.url(), &token, names);
    (hostile, devices, ws)
}

/// Every envelope the devices got the server to accept.
fn envelopes_accepted(hostile: &HostileServer) -> Vec<proto::KeyEnvelope> {
    let mut out = Vec::new();
    for body in hostile.accepted(proto::PATH_TEAM_LOG) {
        out.extend(
            proto::decode::<proto::AppendRequest>(&body)
                .unwrap()
                .envelopes,
        );
    }
    for body in hostile.accepted(proto::PATH_KEYS) {
        out.extend(
            proto::decode::<proto::KeysRequest>(&body)
                .unwrap()
                .envelopes,
        );
    }
    out
}

fn trust(d: &Device, ws: &str) -> TeamTrust {
    d.store.team_status(ws).unwrap().trust
}

fn alerted(d: &Device, ws: &str, kind: AlertKind) -> bool {
    d.store
        .team_status(ws)
        .unwrap()
        .alerts
        .iter()
        .any(|a| a.kind == kind)
}

/// A sync that the device refuses because the server lied.
fn refused(d: &Device) -> String {
    match d.store.sync() {
        Err(Error::HostileServer(reason)) => reason,
        other => panic!("expected the sync to report the server, got {other:?}"),
    }
}

/// An invite code with its CBOR body changed by `f`.
fn edit_invite(code: &str, f: impl FnOnce(&mut Vec<(Value, Value)>)) -> String {
    let b32 = data_encoding::BASE32_NOPAD;
    let body = b32
        .decode(code.strip_prefix("WAYMARK1").unwrap().as_bytes())
        .unwrap();
    let mut value: Value = ciborium::from_reader(body.as_slice()).unwrap();
    let Value::Map(map) = &mut value else {
        panic!("an invite is a map")
    };
    f(map);
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    format!("WAYMARK1{}", b32.encode(&out))
}

fn field<'a>(map: &'a mut [(Value, Value)], name: &str) -> &'a mut Value {
    &mut map
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in the invite"))
        .1
}

/// A blob that claims `signer` wrote it: the signed-blob header (version 2, signer, a
/// signature) over `len` bytes of noise.
fn claimed_blob(seq: u64, signer: [u8; 32], epoch: u32, len: usize) -> proto::PulledBlob {
    let mut ciphertext = vec![2u8];
    ciphertext.extend_from_slice(&signer);
    ciphertext.extend((0..64 + len).map(|_| rand::random::<u8>()));
    proto::PulledBlob {
        seq,
        content_id: proto::content_id_of(&ciphertext),
        doc_id: rand::random(),
        epoch,
        ciphertext,
        device_id: "planted".into(),
    }
}

#[test]
fn a_server_that_lists_its_own_box_keys_gets_no_key_sealed_to_them_and_is_reported() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, ben] = &devices[..] else {
        unreachable!()
    };
    let ben_id = id_of(coordinator, &ws, "Ben");
    // From now on the server lists every device with a sealing key it holds the secret of,
    // and says none holds any key: a coordinator that trusted the listing would top everyone
    // up, and seal its next rotation, to the server.
    hostile.attack(Attack::SwapBoxKeys);
    assert!(matches!(
        coordinator.store.revoke_device(&ws, &ben_id),
        Err(Error::HostileServer(_))
    ));
    assert!(matches!(
        trust(coordinator, &ws),
        TeamTrust::Attacked { .. }
    ));
    assert!(alerted(coordinator, &ws, AlertKind::Substituted));
    refused(ana);
    // The revocation itself reached the server (a lost phone must lose access whatever
    // happens), and once the server stops lying the coordinator finishes the job.
    hostile.honest();
    coordinator.sync_until_ok();
    assert_eq!(coordinator.store.team_status(&ws).unwrap().epoch, 1);
    let secret = coordinator
        .store
        .create_visit(&ws, &visit("Harbour", "AFTER-THE-SWAP", NOV_1))
        .unwrap();
    coordinator.sync_until_ok();
    ana.sync_until_ok();
    assert_eq!(
        ana.store.get_visit(&secret).unwrap().notes,
        "AFTER-THE-SWAP"
    );
    assert!(matches!(ben.store.sync(), Err(Error::DeviceRevoked)));
    let envelopes = envelopes_accepted(&hostile);
    assert!(!envelopes.is_empty());
    assert!(
        !attacker_opens_any(&envelopes),
        "a key was sealed to a key the team never admitted"
    );
}

#[test]
fn devices_the_server_plants_are_never_admitted_sealed_to_or_believed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    let planted_sign: [u8; 32] = ed25519_public(9);
    // A device the server adds to the listing (as a coordinator, with a join proof), and
    // changes it says that device wrote.
    hostile.rewrite_team(move |team| {
        team.devices.push(proto::TeamDevice {
            device_id: "planted".into(),
            name: "Planted".into(),
            role: proto::roles::COORDINATOR.into(),
            sign_key: planted_sign,
            box_key: waymark_e2e::hostile::attacker_box_public(),
            join_proof: Some(vec![7; 32]),
            enrolled_at: 0,
            revoked_at_seq: None,
            key_epochs: vec![],
            actor: None,
            last_sync_at: None,
        });
    });
    hostile.rewrite_pull(move |page| {
        let seq = page.head + 1;
        page.blobs.push(claimed_blob(seq, planted_sign, 0, 200));
        page.head = seq;
    });
    coordinator.sync_until_ok();
    let report = ana.sync_until_ok();
    assert!(
        report
            .set_aside
            .iter()
            .any(|s| s.reason.contains("does not admit")),
        "{report:?}"
    );
    let pending = coordinator.store.pending_joins(&ws).unwrap();
    let planted = pending.iter().find(|p| p.name == "Planted").unwrap();
    assert!(!planted.verified, "nobody handed it an invite");
    assert!(
        coordinator
            .store
            .team(&ws)
            .unwrap()
            .iter()
            .any(|m| m.name == "Planted" && !m.verified)
    );
    assert!(!attacker_opens_any(&envelopes_accepted(&hostile)));
    // Its "changes" are held, not applied: nothing new appeared on Ana's phone.
    assert_eq!(
        ana.store
            .list_visits(&VisitFilter::default())
            .unwrap()
            .len(),
        coordinator
            .store
            .list_visits(&VisitFilter::default())
            .unwrap()
            .len()
    );
}

fn ed25519_public(seed: u8) -> [u8; 32] {
    // Any valid Ed25519 point will do for a signer the team never admitted; the base point
    // multiple of a fixed seed is one (via the team log's own key type).
    use ed25519_dalek::SigningKey;
    SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .to_bytes()
}

#[test]
fn a_forged_team_log_is_refused_and_reported_and_sync_resumes_when_the_server_stops() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // A newcomer too: its whole view of the team comes from this server.
    let code = coordinator.store.create_invite(&ws, 600).unwrap();
    let newcomer = Device::new("Newcomer");
    newcomer.store.join(&code).unwrap();
    hostile.attack(Attack::ForgeLog);
    for d in [&newcomer, ana] {
        let reason = refused(d);
        assert!(!reason.is_empty());
        assert!(
            matches!(trust(d, &ws), TeamTrust::Attacked { .. }),
            "{reason}"
        );
        assert!(
            alerted(d, &ws, AlertKind::Forged) || alerted(d, &ws, AlertKind::Fork),
            "{reason}"
        );
    }
    hostile.honest();
    ana.sync_until_ok();
    assert_eq!(trust(ana, &ws), TeamTrust::Verified);
    assert!(alerted(ana, &ws, AlertKind::Fork), "the record stays");
    newcomer.sync_until_ok();
    assert_eq!(trust(&newcomer, &ws), TeamTrust::AwaitingAdmission);
}

#[test]
fn entries_dropped_from_the_middle_of_the_team_log_are_detected() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana", "Ben"]);
    let code = devices[0].store.create_invite(&ws, 600).unwrap();
    let newcomer = Device::new("Newcomer");
    newcomer.store.join(&code).unwrap();
    // The whole log, less one entry in the middle (Ana's admission).
    hostile.rewrite_team(|team| {
        if team.log.len() == team.log_len as usize && team.log.len() > 2 {
            team.log.remove(1);
            team.log_len -= 1;
        }
    });
    let reason = refused(&newcomer);
    assert!(alerted(&newcomer, &ws, AlertKind::Fork), "{reason}");
}

#[test]
fn a_rolled_back_team_log_is_reported_given_back_and_a_server_that_keeps_hiding_it_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let ana = &devices[1];
    // Hide the newest entry from Ana, who verified it, for one look at the team (two requests):
    // as a server restored from a backup would. She reports it and sends it back. A changed
    // team version in a pull is what makes a device look at the team.
    let looks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = looks.clone();
    hostile.rewrite_team(move |team| {
        if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 && team.log_len > 1 {
            team.log_len -= 1;
            team.log.pop();
        }
    });
    hostile.rewrite_pull(|page| page.team_version += 1_000);
    let before = ana.store.team_status(&ws).unwrap().log_length;
    ana.sync_until_ok();
    assert!(alerted(ana, &ws, AlertKind::Rollback));
    assert_eq!(ana.store.team_status(&ws).unwrap().log_length, before);
    assert_eq!(trust(ana, &ws), TeamTrust::Verified);
    let gave_back = hostile.accepted(proto::PATH_TEAM_LOG).iter().any(|b| {
        proto::decode::<proto::AppendRequest>(b)
            .unwrap()
            .envelopes
            .is_empty()
    });
    assert!(gave_back, "the missing entry went back to the server");
    // A server that keeps hiding it after taking it back is not restoring anything.
    hostile.attack(Attack::WithholdLastEntry);
    hostile.rewrite_pull(|page| page.team_version += 2_000);
    let reason = refused(ana);
    assert!(reason.contains("keeps hiding"), "{reason}");
}

#[test]
fn a_withheld_revocation_is_detected_by_a_device_that_sees_changes_under_the_new_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, _ben] = &devices[..] else {
        unreachable!()
    };
    let ana_token = token_of(&hostile, coordinator, &ws, "Ana");
    let ben_id = id_of(coordinator, &ws, "Ben");
    let ana_log = ana.store.team_status(&ws).unwrap().log_length;
    // To Ana, the server shows the team as it was before Ben's revocation, and none of the
    // new key's envelopes.
    hostile.rewrite(move |req, answer| {
        if req.route() == proto::PATH_TEAM
            && req.token.as_deref() == Some(ana_token.as_str())
            && answer.status == 200
        {
            let mut team: proto::TeamResponse = proto::decode(&answer.body).unwrap();
            let keep =
                (ana_log as usize).saturating_sub((team.log_len - team.log.len() as u64) as usize);
            team.log.truncate(keep);
            team.log_len = ana_log;
            team.epoch = 0;
            team.envelopes.retain(|e| e.epoch == 0);
            answer.body = proto::encode(&team);
        }
    });
    coordinator.store.revoke_device(&ws, &ben_id).unwrap();
    assert_eq!(coordinator.store.team_status(&ws).unwrap().epoch, 1);
    coordinator
        .store
        .create_visit(&ws, &visit("Harbour", "UNDER-THE-NEW-KEY", NOV_1))
        .unwrap();
    coordinator.sync_until_ok();
    let reason = refused(ana);
    assert!(reason.contains("epoch 1"), "{reason}");
    assert!(alerted(ana, &ws, AlertKind::Withheld));
    assert!(matches!(trust(ana, &ws), TeamTrust::Attacked { .. }));
    // The server stops hiding: Ana catches up, reads the new visit, and the attack is over.
    hostile.honest();
    ana.sync_until_ok();
    ana.sync_until_ok();
    assert_eq!(trust(ana, &ws), TeamTrust::Verified);
    assert_eq!(ana.store.search("UNDER-THE-NEW-KEY", 5).unwrap().len(), 1);
}

#[test]
fn a_revocation_boundary_the_server_inflates_lets_no_later_change_of_the_revoked_device_in() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, ben] = &devices[..] else {
        unreachable!()
    };
    let ben_id = id_of(coordinator, &ws, "Ben");
    // The server says Ben was revoked far in the future, so that what he writes later would
    // count as his own.
    let target = ben_id.clone();
    hostile.rewrite_team(move |team| {
        for d in &mut team.devices {
            if d.device_id == target && d.revoked_at_seq.is_some() {
                d.revoked_at_seq = Some(1_000_000);
            }
        }
    });
    coordinator.store.revoke_device(&ws, &ben_id).unwrap();
    // Ben writes on with the key he kept; his push dies with his token, but the server has
    // the bytes, and serves them to Ana as if they were in the log.
    ben.store
        .create_visit(&ws, &visit("Forged", "FORGED-BY-BEN", NOV_1))
        .unwrap();
    assert!(matches!(ben.store.sync(), Err(Error::DeviceRevoked)));
    let forged: proto::PushRequest = hostile
        .exchanges()
        .iter()
        .rev()
        .find(|e| e.request.route() == proto::PATH_PUSH && e.answer.status == 401)
        .map(|e| proto::decode(&e.request.body).unwrap())
        .unwrap();
    hostile.rewrite_pull(move |page| {
        for b in &forged.blobs {
            let seq = page.head + 1;
            page.head = seq;
            page.blobs.push(proto::PulledBlob {
                seq,
                content_id: b.content_id,
                doc_id: b.doc_id,
                epoch: b.epoch,
                ciphertext: b.ciphertext.clone(),
                device_id: "ben".into(),
            });
        }
    });
    let report = ana.sync_until_ok();
    assert!(ana.store.search("FORGED-BY-BEN", 5).unwrap().is_empty());
    assert!(
        report
            .set_aside
            .iter()
            .any(|s| s.reason.contains("revoked device after its revocation")),
        "{report:?}"
    );
}

#[test]
fn an_invite_secret_admits_one_device_once_and_none_after_it_expires() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // A member who saw the coordinator's invite on screen keeps its secret, and later has a
    // device of her own enrol with it through an invite of her own (a fresh token).
    let seen = coordinator.store.create_invite(&ws, 600).unwrap();
    let dan = Device::new("Dan");
    dan.store.join(&seen).unwrap();
    dan.sync_until_ok();
    coordinator.sync_until_ok();
    dan.sync_until_ok();
    assert_eq!(
        trust(&dan, &ws),
        TeamTrust::Verified,
        "the invite's own device"
    );
    let reuse = |code: &str, name: &str| -> Device {
        let hers = ana.store.create_invite(&ws, 600).unwrap();
        let mut token = Value::Null;
        edit_invite(&hers, |m| token = field(m, "server").clone());
        let forged = edit_invite(code, |m| *field(m, "server") = token);
        let d = Device::new(name);
        d.store.join(&forged).unwrap();
        d.sync_until_ok();
        d
    };
    let rogue = reuse(&seen, "Rogue");
    coordinator.sync_until_ok();
    rogue.sync_until_ok();
    assert_eq!(
        trust(&rogue, &ws),
        TeamTrust::AwaitingAdmission,
        "used once already"
    );
    // An expired invite's secret admits nobody either.
    let short = coordinator.store.create_invite(&ws, 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let late = reuse(&short, "Late");
    coordinator.sync_until_ok();
    late.sync_until_ok();
    assert_eq!(trust(&late, &ws), TeamTrust::AwaitingAdmission, "expired");
    assert!(
        coordinator
            .store
            .team(&ws)
            .unwrap()
            .iter()
            .filter(|m| m.name == "Rogue" || m.name == "Late")
            .all(|m| !m.verified)
    );
    drop(hostile);
}

#[test]
fn a_crafted_invite_never_moves_a_workspace_to_another_server_or_plants_a_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (_hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    let evil = Server::start(tempfile::tempdir().unwrap().path());
    let (_, evil_token) = evil.workspace_and_token();
    let genuine = coordinator.store.create_invite(&ws, 600).unwrap();
    let planted_key = Value::Bytes(vec![0x42; 32]);
    let crafted = edit_invite(&genuine, |m| {
        *field(m, "keys") = Value::Array(vec![Value::Array(vec![
            Value::Integer(4_000_000_000u32.into()),
            planted_key.clone(),
        ])]);
        let Value::Map(server) = field(m, "server") else {
            panic!()
        };
        for (k, v) in server.iter_mut() {
            match k.as_text() {
                Some("url") => *v = Value::Text(evil.url()),
                Some("token") => *v = Value::Text(evil_token.clone()),
                _ => {}
            }
        }
    });
    assert!(matches!(
        ana.store.join(&crafted),
        Err(Error::InvalidInput { .. })
    ));
    // Ana still syncs with the team's server, at the team's epoch.
    let v = ana
        .store
        .create_visit(&ws, &visit("Clinic", "STILL-HOME", NOV_1))
        .unwrap();
    ana.sync_until_ok();
    coordinator.sync_until_ok();
    assert_eq!(coordinator.store.get_visit(&v).unwrap().notes, "STILL-HOME");
    assert_eq!(ana.store.team_status(&ws).unwrap().epoch, 0);
    // A newcomer handed the same planted epoch with the genuine code: the epoch does not
    // follow the log, so the key never seals anything (the server would refuse it).
    let newcomer_code = edit_invite(&genuine, |m| {
        let Value::Array(keys) = field(m, "keys") else {
            panic!()
        };
        keys.push(Value::Array(vec![
            Value::Integer(4_000_000_000u32.into()),
            planted_key.clone(),
        ]));
    });
    let newcomer = Device::new("Newcomer");
    newcomer.store.join(&newcomer_code).unwrap();
    newcomer.sync_until_ok();
    coordinator.sync_until_ok();
    let hers = newcomer
        .store
        .create_visit(&ws, &visit("Port", "SEALED-AT-EPOCH-0", NOV_1))
        .unwrap();
    newcomer.sync_until_ok();
    coordinator.sync_until_ok();
    assert_eq!(
        coordinator.store.get_visit(&hers).unwrap().notes,
        "SEALED-AT-EPOCH-0"
    );
    assert_eq!(newcomer.store.team_status(&ws).unwrap().epoch, 0);
}

#[test]
fn the_server_refuses_compaction_by_members_blobs_beyond_the_epoch_and_retired_keys() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana", "Ben"]);
    let [coordinator, ana, _] = &devices[..] else {
        unreachable!()
    };

    let push = |token: &str, blob: proto::PushBlob| -> (u16, String) {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}{}", server.url(), proto::PATH_PUSH))
            .bearer_auth(token)
            .header("content-type", proto::CONTENT_TYPE_CBOR)
            .body(proto::encode(&proto::PushRequest { blobs: vec![blob] }))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().unwrap();
        let code = proto::decode::<proto::ErrorBody>(&body)
            .map(|e| e.code)
            .unwrap_or_default();
        (status, code)
    };
    let blob_of = |doc_id: proto::DocId, epoch: u32, supersedes: Option<u64>| {
        let ciphertext: Vec<u8> = (0..64).map(|_| rand::random()).collect();
        proto::PushBlob {
            content_id: proto::content_id_of(&ciphertext),
            doc_id,
            epoch,
            ciphertext,
            supersedes,
            forget: supersedes.is_some(),
            covers: Vec::new(),
        }
    };
    let blob = |epoch: u32, supersedes: Option<u64>| blob_of(rand::random(), epoch, supersedes);
    let ana_token = token_of(&hostile, coordinator, &ws, "Ana");
    let coordinator_token = token_of(&hostile, coordinator, &ws, "Coordinator");
    // A member (or a stolen member token) may not make the server drop a record's history:
    // not of a record it did not write, nor of one nobody wrote yet.
    let theirs: proto::DocId = rand::random();
    assert_eq!(push(&coordinator_token, blob_of(theirs, 0, None)).0, 200);
    assert_eq!(
        push(&ana_token, blob_of(theirs, 0, Some(u64::MAX >> 1))),
        (403, "forbidden".into())
    );
    assert_eq!(
        push(&ana_token, blob(0, Some(5))),
        (403, "forbidden".into())
    );
    // Its author may (an erase or a redaction of what it wrote).
    let hers: proto::DocId = rand::random();
    assert_eq!(push(&ana_token, blob_of(hers, 0, None)).0, 200);
    assert_eq!(
        push(&ana_token, blob_of(hers, 0, Some(u64::MAX >> 1))).0,
        200
    );
    // Nobody rotated to epoch 9: a blob under it could never be opened, only kept aside.
    assert_eq!(push(&ana_token, blob(9, None)).0, 400);
    // After a rotation, the retired key (which Ben keeps) seals nothing new.
    coordinator
        .store
        .revoke_device(&ws, &id_of(coordinator, &ws, "Ben"))
        .unwrap();
    assert_eq!(
        push(&ana_token, blob(0, None)),
        (409, proto::codes::STALE_EPOCH.into())
    );
    // Ana's own queued change, sealed under the old key before she heard of the rotation, is
    // re-sealed and goes through.
    let v = ana
        .store
        .create_visit(&ws, &visit("Bridge", "QUEUED-BEFORE-ROTATION", NOV_1))
        .unwrap();
    ana.sync_until_ok();
    coordinator.sync_until_ok();
    assert_eq!(
        coordinator.store.get_visit(&v).unwrap().notes,
        "QUEUED-BEFORE-ROTATION"
    );
}

#[test]
fn a_device_keeps_at_most_16_mib_aside_and_says_how_many_it_dropped() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let ana = &devices[1];
    // The server feeds Ana 24 blobs of 1 MiB "signed" by a device nobody admitted.
    let stranger = ed25519_public(7);
    let fed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = fed.clone();
    hostile.rewrite_pull(move |page| {
        if once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        for _ in 0..24 {
            let seq = page.head + 1;
            page.head = seq;
            page.blobs.push(claimed_blob(seq, stranger, 0, 1 << 20));
        }
    });
    let report = ana.sync_until_ok();
    assert!(report.set_aside_dropped >= 8, "{report:?}");
    let status = ana.store.team_status(&ws).unwrap();
    assert_eq!(status.set_aside_dropped, report.set_aside_dropped);
    let aside = ana.store.set_aside_blobs().unwrap();
    let kept = aside
        .iter()
        .filter(|s| !s.reason.contains("dropped"))
        .count();
    assert!(kept <= 16, "{kept} MiB kept");
    assert_eq!(aside.len(), 24, "every one is still listed, with why");
}

#[test]
fn plain_http_beyond_this_machine_is_refused_unless_the_app_allows_it() {
    let d = Device::new("Phone");
    let ws = d.store.create_workspace("Team").unwrap().id;
    for url in ["http://sync.example.org", "http://192.0.2.1:7878"] {
        assert!(matches!(
            d.store.connect_workspace(&ws, url, "token"),
            Err(Error::InvalidInput { .. })
        ));
    }
    d.store.allow_insecure_transport(true);
    // Allowed now: it is tried (and fails to connect, as nothing listens there).
    assert!(matches!(
        d.store.connect_workspace(&ws, "http://0.0.0.0:1", "token"),
        Err(Error::Network(_))
    ));
}

#[test]
fn a_server_that_substitutes_a_joining_devices_keys_shows_another_verification_code() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // Invited by a member: only a person comparing codes can admit it.
    let code = ana.store.create_invite(&ws, 600).unwrap();
    let carla = Device::new("Carla");
    carla.store.join(&code).unwrap();
    carla.sync_until_ok();
    let hers = carla.store.verification_code(&ws).unwrap();
    assert_eq!(hers.chars().filter(char::is_ascii_digit).count(), 12);
    let genuine = coordinator.store.pending_joins(&ws).unwrap();
    assert_eq!(
        genuine
            .iter()
            .find(|p| p.name == "Carla")
            .unwrap()
            .verification_code,
        hers
    );
    // The server lists keys of its own for her: the code a coordinator sees changes.
    let swapped = waymark_e2e::hostile::attacker_box_public();
    hostile.rewrite_team(move |team| {
        for d in &mut team.devices {
            if d.name == "Carla" {
                d.box_key = swapped;
            }
        }
    });
    let shown = coordinator.store.pending_joins(&ws).unwrap();
    assert_ne!(
        shown
            .iter()
            .find(|p| p.name == "Carla")
            .unwrap()
            .verification_code,
        hers
    );
    drop(hostile);
}

#[test]
fn answers_the_server_makes_up_itself_are_checked_like_any_other() {
    // The hostile server answers a pull itself, with a blob it claims a teammate signed under
    // an epoch nobody rotated to: the device keeps it aside, reports it, and is not fooled.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    let coordinator_key = coordinator_sign_key(&hostile, coordinator, &ws);
    hostile.intercept(move |req| {
        (req.route() == proto::PATH_PULL).then(|| Answer {
            status: 200,
            body: proto::encode(&proto::PullResponse {
                blobs: vec![claimed_blob(1_000, coordinator_key, 7, 100)],
                more: false,
                head: 1_000,
                team_version: 0,
                chain_after: None,
                chain_last: None,
                chain_head: None,
                check_ins: 0,
                tips: 0,
            }),
        })
    });
    let reason = refused(ana);
    assert!(reason.contains("epoch 7"), "{reason}");
}

/// The coordinator's signing key, from the team log it signed (as the hostile server sees it).
fn coordinator_sign_key(hostile: &HostileServer, _coordinator: &Device, _ws: &str) -> [u8; 32] {
    let first = hostile
        .accepted(proto::PATH_TEAM_LOG)
        .into_iter()
        .next()
        .unwrap();
    let append: proto::AppendRequest = proto::decode(&first).unwrap();
    append.entries[0].decode().unwrap().author
}

/// The device token the device called `name` enrolled with, as the hostile server saw it.
fn token_of(hostile: &HostileServer, viewer: &Device, ws: &str, name: &str) -> String {
    let id = id_of(viewer, ws, name);
    hostile
        .exchanges()
        .iter()
        .filter(|e| e.request.route() == proto::PATH_ENROLL && e.answer.status == 200)
        .map(|e| proto::decode::<proto::EnrollResponse>(&e.answer.body).unwrap())
        .find(|r| r.device_id == id)
        .unwrap()
        .device_token
}

#[test]
fn an_old_team_answer_replayed_is_reported_and_refused_when_the_server_keeps_replaying_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["Coordinator", "Ana"]);
    let [coordinator, ana] = &devices[..] else {
        unreachable!()
    };
    // The server keeps the team answer of this moment...
    let old = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let kept = old.clone();
    hostile.rewrite(move |req, answer| {
        if req.route() == proto::PATH_TEAM && req.path.ends_with("log_from=0") {
            kept.lock()
                .unwrap()
                .get_or_insert_with(|| answer.body.clone());
        }
    });
    let newcomer = Device::new("Newcomer");
    newcomer
        .store
        .join(&coordinator.store.create_invite(&ws, 600).unwrap())
        .unwrap();
    newcomer.sync_until_ok();
    assert!(old.lock().unwrap().is_some());
    // ...the team moves on (a device admitted and one revoked, a rotation)...
    coordinator.sync_until_ok();
    let id = id_of(coordinator, &ws, "Newcomer");
    coordinator.store.revoke_device(&ws, &id).unwrap();
    ana.sync_until_ok();
    // ...and from now on the server answers every team request with the old answer.
    hostile.honest();
    let replay = old.lock().unwrap().clone().unwrap();
    hostile.intercept(move |req| {
        (req.route() == proto::PATH_TEAM).then(|| Answer {
            status: 200,
            body: replay.clone(),
        })
    });
    hostile.rewrite_pull(|page| page.team_version += 1_000);
    let reason = refused(ana);
    assert!(alerted(ana, &ws, AlertKind::Rollback), "{reason}");
    assert_eq!(
        ana.store.team_status(&ws).unwrap().epoch,
        1,
        "nothing undone"
    );
}

#[test]
fn a_log_forked_for_one_coordinator_is_detected_when_it_sees_the_other_branch() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let (hostile, devices, ws) = team_behind(&server, &["A", "Ana"]);
    let [a, ana] = &devices[..] else {
        unreachable!()
    };
    // A second coordinator, B.
    let b = Device::new("B");
    b.store
        .join(
            &a.store
                .create_invite_with_role(&ws, 600, "coordinator")
                .unwrap(),
        )
        .unwrap();
    b.sync_until_ok();
    a.sync_until_ok();
    b.sync_until_ok();
    let b_token = token_of(&hostile, a, &ws, "B");
    let n = b.store.team_status(&ws).unwrap().log_length;

    // From now on the server shows B a branch of its own: the real log cut at n, then
    // whatever B appends, which it "accepts" without storing.
    let branch = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<proto::team_log::SignedEntry>::new(),
    ));
    let (mine, theirs) = (branch.clone(), branch.clone());
    let (t1, t2) = (b_token.clone(), b_token.clone());
    hostile.intercept(move |req| {
        if req.token.as_deref() != Some(t1.as_str()) || req.route() != proto::PATH_TEAM_LOG {
            return None;
        }
        let append: proto::AppendRequest = proto::decode(&req.body).unwrap();
        let mut kept = mine.lock().unwrap();
        kept.extend(append.entries);
        Some(Answer {
            status: 200,
            body: proto::encode(&proto::AppendResponse {
                log_len: n + kept.len() as u64,
            }),
        })
    });
    hostile.rewrite(move |req, answer| {
        if req.token.as_deref() != Some(t2.as_str())
            || req.route() != proto::PATH_TEAM
            || answer.status != 200
        {
            return;
        }
        let mut team: proto::TeamResponse = proto::decode(&answer.body).unwrap();
        let from = team.log_len - team.log.len() as u64;
        let keep = n.saturating_sub(from) as usize;
        team.log.truncate(keep);
        team.log.extend(theirs.lock().unwrap().iter().cloned());
        team.log_len = from + team.log.len() as u64;
        answer.body = proto::encode(&team);
    });
    // A admits Ana as a coordinator on the real log; B, who does not see it, makes Ana a
    // coordinator on its branch too: two different entries at index n.
    let ana_id = id_of(a, &ws, "Ana");
    a.store.set_role(&ws, &ana_id, "coordinator").unwrap();
    b.store.set_role(&ws, &ana_id, "coordinator").unwrap();
    assert_eq!(b.store.team_status(&ws).unwrap().log_length, n + 1);
    assert_eq!(a.store.team_status(&ws).unwrap().log_length, n + 1);
    // The server stops keeping B apart: B sees the other branch and says so.
    hostile.honest();
    hostile.rewrite_pull(|page| page.team_version += 1_000);
    let reason = refused(&b);
    assert!(alerted(&b, &ws, AlertKind::Fork), "{reason}");
    // Ana and A, on the real log, are unaffected.
    ana.sync_until_ok();
    assert_eq!(trust(ana, &ws), TeamTrust::Verified);
}
