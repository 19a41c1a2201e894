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

/// An alert hook for the check-in tests: a script appending one line per run to `alerts.txt`
/// in `dir` (kind, check-in id, how many arguments, the arguments, and one of the server's own
/// settings, which the hook must not see). Returns the script and the file.
fn alert_hook(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let alerts = dir.join("alerts.txt");
    let hook = dir.join("alert.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s|%s\\n' \"$WAYMARK_ALERT_KIND\" \
             \"$WAYMARK_CHECK_IN\" \"$#\" \"$1\" \"$2\" \"$3\" \
             \"${{WAYMARK_CHECK_IN_GRACE-not set}}\" >> '{}'\n",
            alerts.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    (hook, alerts)
}

/// The lines the alert hook wrote so far.
fn alert_lines(alerts: &Path) -> Vec<String> {
    std::fs::read_to_string(alerts)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (at most 20 s, polling) until the hook wrote `n` lines, then two more watcher rounds to
/// see that no other line comes; returns them.
fn wait_for_alerts(alerts: &Path, n: usize) -> Vec<String> {
    let started = std::time::Instant::now();
    while alert_lines(alerts).len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the alert hook did not run {n} times: {:?}",
            alert_lines(alerts)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    let mut lines = alert_lines(alerts);
    lines.sort();
    lines
}

fn check_in_request(id: u8, state: &str, due_in_secs: u64, version: u64) -> Vec<u8> {
    encode(&waymark_protocol::CheckInRequest {
        id: [id; 16],
        due_in_secs,
        state: state.into(),
        version,
        epoch: 0,
        sealed: format!("CHECKIN-SEALED-MARKER {id}").into_bytes(),
    })
}

#[test]
fn check_in_alerts_run_the_operators_hook_once_even_across_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let (hook, alerts) = alert_hook(dir.path());
    let ws = admin(&data, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let enrollment = admin(&data, &["token", "issue", "--workspace", &ws])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let backend = [OsStr::new("--data-dir"), data.as_os_str()];
    let hook_path = hook.display().to_string();
    let server = common::serve(
        &backend,
        &[
            "--log-format",
            "json",
            "--check-in-grace",
            "1s",
            "--alert-command",
            &hook_path,
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let http = Http::new(&server.base);
    // A name a shell would trip over: it reaches the hook as one argument, as it is.
    let name = "Amina's \"work\" phone $(id)";
    let (status, body) = http.post(
        "/v1/enroll",
        None,
        &encode(&EnrollRequest {
            token: enrollment,
            device_name: name.into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    assert_eq!(status, 200);
    let amina: EnrollResponse = decode(&body).unwrap();
    let token = Some(amina.device_token.as_str());
    let post = |request: Vec<u8>| {
        let (status, body) = http.post("/v1/check-ins", token, &request);
        assert_eq!(status, 200, "{:?}", decode::<ErrorBody>(&body));
    };

    // Closed in time (its deadline before the late one's: any round that finds the late one
    // overdue would have found this one too); late; raised with the duress PIN.
    post(check_in_request(2, "open", 1, 1));
    post(check_in_request(2, "closed", 0, 2));
    post(check_in_request(1, "open", 1, 1));
    post(check_in_request(3, "open", 3600, 1));
    post(check_in_request(3, "alarm", 0, 2));
    let expected = |kind: &str, id: u8, grace: &str| {
        format!("{kind}|{}|3|{ws}|{name}|0|{grace}", hex::encode([id; 16]))
    };
    assert_eq!(
        wait_for_alerts(&alerts, 2),
        vec![
            expected("alarm", 3, "not set"),
            expected("overdue", 1, "not set")
        ],
        "each alert runs once; the check-in closed in time never alerts"
    );
    // Teammates see the same at their next sync.
    let (_, body) = http.get("/v1/pull?after=0", token);
    let page: PullResponse = decode(&body).unwrap();
    let (status, body) = http.get("/v1/check-ins", token);
    assert_eq!(status, 200);
    let list: waymark_protocol::CheckInsResponse = decode(&body).unwrap();
    assert_eq!((list.version, list.grace_secs), (page.check_ins, 1));
    let mut states: Vec<(u8, String)> = list
        .check_ins
        .iter()
        .map(|c| (c.id[0], c.state.clone()))
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec![
            (1, "overdue".into()),
            (2, "closed".into()),
            (3, "alarm".into())
        ]
    );

    // Killed (SIGKILL) with a check-in open; started again (options from the environment this
    // time): the deadline is still watched and the hook runs once.
    post(check_in_request(4, "open", 2, 1));
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log_again = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let _restarted = common::serve_in_env(
        &backend,
        &["--log-format", "json"],
        &[
            ("WAYMARK_CHECK_IN_GRACE", "1s"),
            ("WAYMARK_ALERT_COMMAND", &hook_path),
        ],
        Stdio::from(log_again),
    );
    assert_eq!(
        wait_for_alerts(&alerts, 3),
        vec![
            expected("alarm", 3, "not set"),
            expected("overdue", 1, "not set"),
            expected("overdue", 4, "not set"),
        ]
    );

    // The log says an alert ran, for which workspace; never who, nor any sealed byte.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("check-in alert hook ran"), "{logs}");
    assert!(logs.contains(&ws));
    for secret in [
        name,
        "Amina",
        "CHECKIN-SEALED-MARKER",
        amina.device_token.as_str(),
    ] {
        assert!(!logs.contains(secret), "the log contains {secret:?}");
    }
}

#[test]
fn without_a_hook_check_in_alerts_are_logged_and_an_empty_hook_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(SERVER_BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--alert-command", " "])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--alert-command"));

    let log = dir.path().join("server.log");
    let ws = admin(&data, &["workspace", "create"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let enrollment = admin(&data, &["token", "issue", "--workspace", &ws])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = common::serve(
        &[OsStr::new("--data-dir"), data.as_os_str()],
        &["--log-format", "json", "--check-in-grace", "1s"],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let http = Http::new(&server.base);
    let (_, body) = http.post(
        "/v1/enroll",
        None,
        &encode(&EnrollRequest {
            token: enrollment,
            device_name: "Ben's phone".into(),
            sign_key: rand::random(),
            box_key: rand::random(),
            join_proof: None,
            actor: None,
        }),
    );
    let ben: EnrollResponse = decode(&body).unwrap();
    let token = Some(ben.device_token.as_str());
    assert_eq!(
        http.post("/v1/check-ins", token, &check_in_request(1, "open", 1, 1))
            .0,
        200
    );
    assert_eq!(
        http.post("/v1/check-ins", token, &check_in_request(2, "alarm", 0, 1))
            .0,
        200
    );
    let started = std::time::Instant::now();
    let logged = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(what) && l.contains(&ws))
            .count()
    };
    while logged("\"check-in overdue\"") + logged("\"check-in alarm\"") < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no alert was logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        (logged("\"check-in overdue\""), logged("\"check-in alarm\"")),
        (1, 1)
    );
    assert!(!std::fs::read_to_string(&log).unwrap().contains("Ben"));
}
