//! Several `waymark-server` processes serving one PostgreSQL database at once, as behind a load
//! balancer: dozens of devices push through all of them concurrently while pullers (one per
//! process) check that they see every sequence number exactly once, in order, each carrying the
//! blob its pusher was told. Coordinators' devices racing to rotate the workspace key through
//! different processes. Also the admin commands with `--database`.
//!
//! Needs `WAYMARK_TEST_POSTGRES_URL` (see `sync-server/scripts/start-postgres.sh`); fails without.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{SERVER_BIN, SchemaGuard, ServerProcess, fresh_schema, postgres_url};
use serde_json::Value;
use waymark_protocol::{
    ContentId, EnrollRequest, EnrollResponse, KeyEnvelope, KeysRequest, PullRequest, PullResponse,
    PushBlob, PushRequest, PushResponse, TeamResponse, content_id_of, decode, encode,
};

const SERVERS: usize = 3;
const PUSHERS: usize = 30;
const BATCHES: usize = 10;
const BLOBS_PER_BATCH: usize = 2;

/// A fresh schema, and a database URL whose connections use it.
fn database() -> (String, SchemaGuard) {
    let url = postgres_url();
    let schema = fresh_schema();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let db_url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    (db_url, SchemaGuard { url, schema })
}

fn admin(db_url: &str, args: &[&str]) -> Value {
    common::admin(&["--database", db_url], args)
}

fn start(db_url: &str) -> ServerProcess {
    let server = common::serve(
        &["--database", db_url],
        &["--rate-limit", "0"],
        Stdio::null(),
    );
    let printed = &server.printed;
    assert!(
        printed.iter().any(|l| l == "storage: postgresql"),
        "{printed:?}"
    );
    // The URL's credentials and options are not printed.
    assert!(
        !printed.iter().any(|l| l.contains("search_path")),
        "{printed:?}"
    );
    server
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: String, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut req = agent.post(url).header("content-type", "application/cbor");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut response = req.send(body).unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_vec().unwrap(),
    )
}

fn pull(agent: &ureq::Agent, base: &str, token: &str, after: u64) -> PullResponse {
    let path = PullRequest {
        after,
        max_bytes: Some(300),
    }
    .to_path_and_query();
    let mut response = agent
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    decode(&response.body_mut().read_to_vec().unwrap()).unwrap()
}

fn enroll(agent: &ureq::Agent, base: &str, db_url: &str, ws: &str, name: &str) -> String {
    enroll_with_key(agent, base, db_url, ws, name)
        .0
        .device_token
}

/// Enrolls a device with an operator's token (a coordinator); returns it and its sign key.
fn enroll_with_key(
    agent: &ureq::Agent,
    base: &str,
    db_url: &str,
    ws: &str,
    name: &str,
) -> (EnrollResponse, [u8; 32]) {
    let issued = admin(
        db_url,
        &["token", "issue", "--workspace", ws, "--ttl", "1h"],
    );
    let sign_key = rand::random();
    let (status, body) = post(
        agent,
        format!("{base}/v1/enroll"),
        None,
        &encode(&EnrollRequest {
            token: issued["token"].as_str().unwrap().to_owned(),
            device_name: name.into(),
            sign_key,
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    (decode::<EnrollResponse>(&body).unwrap(), sign_key)
}

fn team(agent: &ureq::Agent, base: &str, token: &str) -> TeamResponse {
    let mut response = agent
        .get(format!("{base}/v1/team"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    decode(&response.body_mut().read_to_vec().unwrap()).unwrap()
}

#[test]
fn coordinators_rotating_through_two_processes_win_each_epoch_once() {
    const ROUNDS: u32 = 12;
    let (db_url, _guard) = database();
    let ws = admin(&db_url, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let servers: Vec<ServerProcess> = (0..2).map(|_| start(&db_url)).collect();
    let http = agent();
    let coordinators: Vec<(EnrollResponse, [u8; 32])> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| enroll_with_key(&http, &s.base, &db_url, &ws, &format!("lead {i}")))
        .collect();
    let ids: Vec<String> = coordinators
        .iter()
        .map(|(d, _)| d.device_id.clone())
        .collect();
    let wins: Vec<u32> = std::thread::scope(|scope| {
        let racers: Vec<_> = servers
            .iter()
            .zip(&coordinators)
            .map(|(server, (me, sign_key))| {
                let ids = &ids;
                scope.spawn(move || {
                    let http = agent();
                    let mut won = 0;
                    loop {
                        // Like a client: read the epoch, rotate to the next, retry on 409.
                        let epoch = team(&http, &server.base, &me.device_token).epoch;
                        if epoch >= ROUNDS {
                            return won;
                        }
                        let request = KeysRequest {
                            rotate_to: Some(epoch + 1),
                            envelopes: ids
                                .iter()
                                .map(|id| KeyEnvelope {
                                    device_id: id.clone(),
                                    epoch: epoch + 1,
                                    sealed_key: vec![7; 48],
                                    signer_key: *sign_key,
                                    signature: [1; 64],
                                })
                                .collect(),
                        };
                        let (status, body) = post(
                            &http,
                            format!("{}/v1/keys", server.base),
                            Some(&me.device_token),
                            &encode(&request),
                        );
                        match status {
                            200 => won += 1,
                            409 => {}
                            other => panic!("{other}: {}", String::from_utf8_lossy(&body)),
                        }
                    }
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(
        wins.iter().sum::<u32>(),
        ROUNDS,
        "each epoch won exactly once: {wins:?}"
    );
    let seen = team(&http, &servers[1].base, &coordinators[0].0.device_token);
    assert_eq!(seen.epoch, ROUNDS);
    for device in &seen.devices {
        assert_eq!(device.key_epochs, (1..=ROUNDS).collect::<Vec<_>>());
    }
    let epochs: Vec<u32> = seen.envelopes.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, (1..=ROUNDS).collect::<Vec<_>>());
}

#[test]
fn three_server_processes_on_one_database_never_let_a_puller_skip_a_change() {
    let (db_url, _guard) = database();
    let ws = admin(&db_url, &["workspace", "create", "--name", "shared"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let servers: Vec<ServerProcess> = (0..SERVERS).map(|_| start(&db_url)).collect();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let http = agent();
    let pusher_tokens: Vec<String> = (0..PUSHERS)
        .map(|i| {
            enroll(
                &http,
                &bases[i % SERVERS],
                &db_url,
                &ws,
                &format!("pusher {i}"),
            )
        })
        .collect();
    let puller_tokens: Vec<String> = (0..SERVERS)
        .map(|i| enroll(&http, &bases[i], &db_url, &ws, &format!("puller {i}")))
        .collect();
    let total = (PUSHERS * BATCHES * BLOBS_PER_BATCH) as u64;
    let done = Arc::new(AtomicBool::new(false));

    let pullers: Vec<_> = puller_tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let base = bases[i].clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let http = agent();
                let deadline = Instant::now() + Duration::from_secs(180);
                let mut seen: Vec<(u64, ContentId)> = Vec::new();
                let mut cursor = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = pull(&http, &base, &token, cursor);
                    for b in &page.blobs {
                        assert_eq!(
                            b.seq,
                            cursor + 1,
                            "server {i}: gap or repeat after {cursor}"
                        );
                        cursor = b.seq;
                        seen.push((b.seq, b.content_id));
                    }
                    assert!(page.head >= cursor);
                    if finished && !page.more && cursor == total {
                        return seen;
                    }
                    assert!(Instant::now() < deadline, "puller {i} stuck at {cursor}");
                    if page.blobs.is_empty() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();

    let pushers: Vec<_> = pusher_tokens
        .into_iter()
        .enumerate()
        .map(|(p, token)| {
            let bases = bases.clone();
            std::thread::spawn(move || {
                let http = agent();
                let mut assigned = Vec::new();
                for batch in 0..BATCHES {
                    let blobs: Vec<PushBlob> = (0..BLOBS_PER_BATCH)
                        .map(|k| {
                            let ciphertext =
                                format!("pusher {p} batch {batch} blob {k}").into_bytes();
                            PushBlob {
                                content_id: content_id_of(&ciphertext),
                                doc_id: [u8::try_from(p).unwrap(); 16],
                                epoch: 0,
                                ciphertext,
                                supersedes: None,
                                forget: false,
                                covers: Vec::new(),
                            }
                        })
                        .collect();
                    let ids: Vec<ContentId> = blobs.iter().map(|b| b.content_id).collect();
                    // Each batch through another process, as a load balancer would spread them.
                    let base = &bases[(p + batch) % bases.len()];
                    let (status, body) = post(
                        &http,
                        format!("{base}/v1/push"),
                        Some(&token),
                        &encode(&PushRequest { blobs }),
                    );
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                    let answer: PushResponse = decode(&body).unwrap();
                    assigned.extend(answer.assigned.into_iter().zip(ids));
                }
                assigned
            })
        })
        .collect();

    let mut expected: HashMap<u64, ContentId> = HashMap::new();
    for pusher in pushers {
        for (seq, content) in pusher.join().unwrap() {
            assert!(
                expected.insert(seq, content).is_none(),
                "seq {seq} assigned twice"
            );
        }
    }
    done.store(true, Ordering::SeqCst);
    assert_eq!(expected.len() as u64, total);
    assert!((1..=total).all(|seq| expected.contains_key(&seq)));
    for puller in pullers {
        let seen = puller.join().unwrap();
        assert_eq!(seen.len() as u64, total);
        for (seq, content) in seen {
            assert_eq!(expected[&seq], content, "seq {seq} carries another blob");
        }
    }

    // The admin commands see the same database while the servers run.
    let usage = admin(&db_url, &["usage"]);
    assert_eq!(usage[0]["head_seq"].as_u64(), Some(total));
    assert_eq!(usage[0]["blobs"].as_u64(), Some(total));
    assert_eq!(
        usage[0]["active_devices"].as_u64(),
        Some((PUSHERS + SERVERS) as u64)
    );
    drop(servers);
}

#[test]
fn admin_commands_work_against_postgresql() {
    let (db_url, _guard) = database();
    let ws = admin(&db_url, &["workspace", "create", "--name", "Team South"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = start(&db_url);
    let http = agent();
    let token = enroll(&http, &server.base, &db_url, &ws, "Ana's phone");
    let ciphertext = b"sealed".to_vec();
    let (status, _) = post(
        &http,
        format!("{}/v1/push", server.base),
        Some(&token),
        &encode(&PushRequest {
            blobs: vec![PushBlob {
                content_id: content_id_of(&ciphertext),
                doc_id: [1; 16],
                epoch: 0,
                ciphertext,
                supersedes: None,
                forget: false,
                covers: Vec::new(),
            }],
        }),
    );
    assert_eq!(status, 200);

    let devices = admin(&db_url, &["devices", "list", "--workspace", &ws]);
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["name"], "Ana's phone");
    assert_eq!(devices[0]["blobs_stored"].as_u64(), Some(1));
    let device_id = devices[0]["id"].as_str().unwrap().to_owned();
    admin(&db_url, &["devices", "revoke", &device_id]);
    // Revocation takes effect at once on the running server.
    let mut response = http
        .get(format!("{}/v1/pull", server.base))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let _ = response.body_mut().read_to_vec();
    let report = admin(&db_url, &["compact", "--grace", "1h"]);
    assert_eq!(report["blobs_dropped"].as_u64(), Some(0));

    // Backups of PostgreSQL are pg_dump's job; the command says so instead of copying nothing.
    let output = Command::new(SERVER_BIN)
        .args(["--database", &db_url, "backup", "--to", "/nonexistent/x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"));

    // A URL that is not PostgreSQL is refused with a hint.
    let output = Command::new(SERVER_BIN)
        .args(["--database", "mysql://x/y", "usage"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("postgres://"));
}
