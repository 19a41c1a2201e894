//! The built `waymark-server` binary on a real port, as an operator and a phone use it: admin
//! commands on the same data directory while `serve` runs, the API over loopback HTTP, revocation
//! taking effect at once, online backup, graceful stop, and logs free of secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{SERVER_BIN, ServerProcess};
use serde_json::Value;
use waymark_protocol::{
    EnrollRequest, EnrollResponse, ErrorBody, InviteRequest, InviteResponse, PullResponse,
    PushBlob, PushRequest, PushResponse, codes, content_id_of, decode, encode,
};

/// Runs an admin command on `data_dir` with `--json` and returns its parsed output.
fn admin(data_dir: &Path, args: &[&str]) -> Value {
    common::admin(&[OsStr::new("--data-dir"), data_dir.as_os_str()], args)
}

/// Starts `serve` on `data_dir`, JSON logs into `log`.
fn start(data_dir: &Path, log: &Path) -> ServerProcess {
    let server = common::serve(
        &[OsStr::new("--data-dir"), data_dir.as_os_str()],
        &["--log-format", "json"],
        Stdio::from(std::fs::File::create(log).unwrap()),
    );
    assert!(
        server
            .printed
            .iter()
            .any(|l| l.contains(&data_dir.display().to_string())),
        "the data directory is not printed: {:?}",
        server.printed
    );
    server
}

struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
        }
    }

    fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/cbor");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let mut response = req.send(body).unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_vec().unwrap())
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let mut response = req.call().unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_vec().unwrap())
    }
}

fn sealed(marker: &str, i: usize) -> PushBlob {
    let ciphertext = format!("{marker} opaque bytes #{i}").into_bytes();
    PushBlob {
        content_id: content_id_of(&ciphertext),
        doc_id: [i as u8; 16],
        epoch: 0,
        ciphertext,
        supersedes: None,
        forget: false,
        covers: Vec::new(),
    }
}

#[test]
fn an_operator_runs_the_server_and_enrolls_syncs_and_revokes_phones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");

    // Admin commands create the data directory on first use.
    let workspace = admin(&data, &["workspace", "create", "--name", "Team North"]);
    let ws = workspace["id"].as_str().unwrap().to_owned();
    let issued = admin(
        &data,
        &["token", "issue", "--workspace", &ws, "--ttl", "1h"],
    );
    let enrollment = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(
        issued["role"], "coordinator",
        "the operator's token goes to a coordinator"
    );

    let server = start(&data, &log);
    let http = Http::new(&server.base);
    let (status, body) = http.get("/healthz", None);
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));

    // A phone enrolls with the operator's token; a second one through the phone's invite.
    let (status, body) = http.post(
        "/v1/enroll",
        None,
        &encode(&EnrollRequest {
            token: enrollment.clone(),
            device_name: "Ana's phone".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    assert_eq!(status, 200);
    let ana: EnrollResponse = decode(&body).unwrap();
    assert_eq!(ana.workspace_id, ws);
    assert_eq!(ana.role, "coordinator");
    let (status, body) = http.post(
        "/v1/invites",
        Some(&ana.device_token),
        &encode(&InviteRequest {
            ttl_seconds: 300,
            role: None,
        }),
    );
    assert_eq!(status, 200);
    let invite: InviteResponse = decode(&body).unwrap();
    let (_, body) = http.post(
        "/v1/enroll",
        None,
        &encode(&EnrollRequest {
            token: invite.enrollment_token.clone(),
            device_name: "Ben's phone".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    let ben: EnrollResponse = decode(&body).unwrap();
    assert_eq!(ben.role, "member");

    // The operator's token is used up now.
    let (status, body) = http.post(
        "/v1/enroll",
        None,
        &encode(&EnrollRequest {
            token: enrollment.clone(),
            device_name: "again".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    assert_eq!(status, 401);
    assert_eq!(decode::<ErrorBody>(&body).unwrap().code, codes::TOKEN_USED);

    // Ana pushes (and retries); Ben pulls.
    let marker = "MARKER-7f3a-never-logged";
    let blobs: Vec<PushBlob> = (0..5).map(|i| sealed(marker, i)).collect();
    let push = encode(&PushRequest { blobs });
    let (status, body) = http.post("/v1/push", Some(&ana.device_token), &push);
    assert_eq!(status, 200);
    assert_eq!(
        decode::<PushResponse>(&body).unwrap().assigned,
        vec![1, 2, 3, 4, 5]
    );
    let (_, body) = http.post("/v1/push", Some(&ana.device_token), &push);
    assert_eq!(
        decode::<PushResponse>(&body).unwrap().assigned,
        vec![1, 2, 3, 4, 5]
    );
    let (status, body) = http.get("/v1/pull?after=0", Some(&ben.device_token));
    assert_eq!(status, 200);
    let page: PullResponse = decode(&body).unwrap();
    assert_eq!((page.blobs.len(), page.head, page.more), (5, 5, false));
    let (status, body) = http.get("/v1/pull?after=-3", Some(&ben.device_token));
    assert_eq!(status, 400);
    assert!(
        decode::<ErrorBody>(&body)
            .unwrap()
            .message
            .contains("negative")
    );

    // The operator sees both devices, their sync times and bytes, while the server runs.
    let devices = admin(&data, &["devices", "list", "--workspace", &ws]);
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let ana_row = devices
        .iter()
        .find(|d| d["id"] == ana.device_id.as_str())
        .unwrap();
    assert_eq!(ana_row["name"], "Ana's phone");
    assert_eq!(ana_row["role"], "coordinator");
    assert!(ana_row["revoked_at_seq"].is_null());
    assert_eq!(ana_row["blobs_stored"], 5);
    assert!(ana_row["bytes_stored"].as_u64().unwrap() > 100);
    assert!(ana_row["last_sync_at"].is_i64());
    let ben_row = devices
        .iter()
        .find(|d| d["id"] == ben.device_id.as_str())
        .unwrap();
    assert!(ben_row["last_sync_at"].is_i64(), "a pull counts as a sync");
    assert_eq!(ben_row["role"], "member");
    let usage = admin(&data, &["usage"]);
    assert_eq!(usage[0]["head_seq"], 5);
    assert_eq!(usage[0]["active_devices"], 2);
    assert_eq!(usage[0]["name"], "Team North");

    // Online backup while serving; the copy is a complete, usable database.
    let backup_dir = dir.path().join("restored");
    std::fs::create_dir_all(&backup_dir).unwrap();
    admin(
        &data,
        &[
            "backup",
            "--to",
            backup_dir.join("waymark.sqlite3").to_str().unwrap(),
        ],
    );
    assert_eq!(admin(&backup_dir, &["usage"])[0]["head_seq"], 5);

    // Ben's phone is lost: revoked from the command line, refused at once.
    let revoked = admin(&data, &["devices", "revoke", &ben.device_id]);
    assert_eq!(
        revoked["revoked_at_seq"], 5,
        "the head when the revocation took effect"
    );
    let (status, body) = http.get("/v1/pull?after=0", Some(&ben.device_token));
    assert_eq!(status, 401);
    assert_eq!(
        decode::<ErrorBody>(&body).unwrap().code,
        codes::DEVICE_REVOKED
    );
    let (status, body) = http.get("/v1/pull?after=0", Some(&ana.device_token));
    assert_eq!(status, 200);
    let page: PullResponse = decode(&body).unwrap();
    assert_eq!(page.team_version, 3, "two enrollments and a revocation");
    // The table shows each device's role and where its revocation cut the log.
    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["devices", "list", "--workspace", &ws])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("ROLE") && header.ends_with("REVOKED AT SEQ"),
        "{table}"
    );
    let ben_line = lines.find(|l| l.starts_with(&ben.device_id)).unwrap();
    assert!(
        ben_line.contains(" member ") && ben_line.ends_with(" 5"),
        "{table}"
    );

    let (status, body) = http.get("/metrics", None);
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    assert!(
        metrics.contains("waymark_blobs_stored_total 5"),
        "{metrics}"
    );

    // SIGTERM stops it cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");

    // Logs are structured, name routes and devices, and carry no secret and no blob content.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("\"route\":\"/v1/push\""), "{logs}");
    assert!(logs.contains(&ana.device_id));
    for secret in [
        enrollment.as_str(),
        invite.enrollment_token.as_str(),
        ana.device_token.as_str(),
        ben.device_token.as_str(),
        marker,
    ] {
        assert!(
            !logs.contains(secret),
            "the log contains a secret or blob content"
        );
    }
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[test]
fn admin_commands_explain_bad_input_and_every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "issue", "--workspace", "0123", "--ttl", "1h"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("workspace 0123 not found"));

    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "issue", "--workspace", "0123", "--ttl", "soon"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("duration"));

    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "issue", "--workspace", "0123", "--role", "boss"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("coordinator") && stderr.contains("member"),
        "{stderr}"
    );

    // Restoring from a file that is not a backup changes nothing and says why.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "meeting at 3").unwrap();
    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["restore", "--from"])
        .arg(&notes)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a backup"));

    for args in [
        &[][..],
        &["serve"],
        &["workspace"],
        &["workspace", "create"],
        &["token"],
        &["token", "issue"],
        &["devices"],
        &["devices", "list"],
        &["devices", "revoke"],
        &["usage"],
        &["compact"],
        &["backup"],
        &["restore"],
    ] {
        let output = Command::new(SERVER_BIN)
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?} --help failed");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage:"));
    }

    // Human-readable tables by default.
    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("usage")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "(none)\n");
}
