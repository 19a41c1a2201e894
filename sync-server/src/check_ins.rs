//! The check-in watcher, which `serve` starts: every second it marks the check-ins still open
//! past their deadline and the grace period overdue, and runs the operator's alert hook for each
//! alert it claims (an overdue check-in, an alarm). Every minute it deletes the finished
//! check-ins older than a day whose alert is done.
//!
//! Everything it knows is in the database, so a restart loses no deadline, and an alert claimed
//! by a process that died before it was delivered is claimed again once the claim expires
//! ([`ALERT_CLAIM_SECS`]): alerts run **at least once**, with any number of server processes on
//! one PostgreSQL database. A phone that cannot reach the server to close its check-in causes a
//! false alarm, never a missed one.
//!
//! The hook is `sh -c '<command> "$@"' waymark-alert <workspace id> <device name> <minutes
//! overdue>` with `WAYMARK_ALERT_KIND` (`overdue` or `alarm`) and `WAYMARK_CHECK_IN` (the
//! check-in's id, hex) set. The device name is an argument, never part of the shell's text, so
//! no name can inject a command. Its stdin is `/dev/null` and its output is discarded (it may
//! name people); it gets the server's environment without the server's own `WAYMARK_*` settings
//! (the database URL may carry a password); after [`HOOK_TIMEOUT`] it is killed with everything
//! it started. Exit 0 records the alert delivered; anything else leaves it to be claimed again.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::{
    ALERT_CLAIM_SECS, AlertKind, CheckInAlert, MAX_ALERT_ATTEMPTS, Storage, StorageResult,
};
use crate::tokens;

/// Longest an alert hook may run before it is killed (shorter than a claim, so one process never
/// runs one alert twice at once).
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the watcher looks for overdue check-ins and alerts to run.
const TICK: Duration = Duration::from_secs(1);

/// Purges run every this many ticks: finished check-ins are kept a day, so a minute late is
/// nothing, and the watcher's every-second work stays two small queries.
const PURGE_EVERY_TICKS: u32 = 60;

/// How the watcher runs, from `serve`'s options.
#[derive(Debug, Clone)]
pub struct WatcherOptions {
    /// Time past a deadline before a check-in is overdue.
    pub grace: Duration,
    /// The operator's alert hook; without one, alerts are only logged.
    pub alert_command: Option<String>,
}

/// Runs the watcher until its task is dropped.
pub async fn watch(storage: Arc<dyn Storage>, options: WatcherOptions) {
    let options = Arc::new(options);
    let mut every = tokio::time::interval(TICK);
    // After a slow tick (a busy database), go on from now instead of catching up in a burst.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        every.tick().await;
        let purge = ticks.is_multiple_of(PURGE_EVERY_TICKS);
        ticks = ticks.wrapping_add(1);
        let work = {
            let storage = Arc::clone(&storage);
            let grace = options.grace.as_secs();
            tokio::task::spawn_blocking(move || tick(storage.as_ref(), grace, purge))
        };
        match work.await {
            Ok(alerts) => {
                for alert in alerts {
                    tokio::spawn(deliver(Arc::clone(&storage), Arc::clone(&options), alert));
                }
            }
            Err(err) => tracing::error!(error = %err, "check-in watcher task failed"),
        }
    }
}

/// One round of the watcher's database work, on a blocking thread: marks overdue check-ins,
/// purges if told to, and returns the alerts it claimed. Each step runs even if the one before
/// failed: a failing purge must not hold back an alarm.
fn tick(storage: &dyn Storage, grace_secs: u64, purge: bool) -> Vec<CheckInAlert> {
    let now = tokens::now();
    let logged = |what: &str, result: StorageResult<u64>| match result {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "{what}"),
        Err(err) => tracing::error!(error = %err, "check-in watcher: {what} failed"),
    };
    logged(
        "check-ins marked overdue",
        storage.mark_overdue_check_ins(now, grace_secs),
    );
    if purge {
        logged("finished check-ins purged", storage.purge_check_ins(now));
    }
    storage.claim_check_in_alerts(now).unwrap_or_else(|err| {
        tracing::error!(error = %err, "check-in watcher: claiming alerts failed");
        Vec::new()
    })
}

/// Delivers one claimed alert (the hook, or a log line without one) and records it delivered.
/// Logs name the workspace and the kind, never the device's name.
async fn deliver(storage: Arc<dyn Storage>, options: Arc<WatcherOptions>, alert: CheckInAlert) {
    let workspace_id = alert.workspace_id.clone();
    let kind = alert.kind.as_str();
    let delivered = match &options.alert_command {
        None => {
            match alert.kind {
                AlertKind::Overdue => tracing::warn!(workspace_id, "check-in overdue"),
                AlertKind::Alarm => tracing::warn!(workspace_id, "check-in alarm"),
            }
            true
        }
        Some(command) => match run_hook(command, &alert, HOOK_TIMEOUT).await {
            Ok(()) => {
                tracing::info!(workspace_id, kind, "check-in alert hook ran");
                true
            }
            Err(reason) if alert.attempts >= MAX_ALERT_ATTEMPTS => {
                tracing::error!(
                    workspace_id,
                    kind,
                    reason,
                    "check-in alert hook failed {MAX_ALERT_ATTEMPTS} times; giving up on this alert"
                );
                false
            }
            Err(reason) => {
                tracing::warn!(
                    workspace_id,
                    kind,
                    reason,
                    "check-in alert hook failed; it runs again in {ALERT_CLAIM_SECS} s"
                );
                false
            }
        },
    };
    if !delivered {
        return;
    }
    let now = tokens::now();
    match tokio::task::spawn_blocking(move || storage.check_in_alert_done(&alert, now)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(workspace_id, kind, error = %err,
            "could not record a check-in alert as delivered; it will run again"),
        Err(err) => tracing::error!(error = %err, "check-in alert task failed"),
    }
}

/// Runs the alert hook `command` for `alert`, killing it (and what it started) after `timeout`.
/// The error is a reason fit for the log: an exit status, a timeout, an error kind; never the
/// hook's output.
pub async fn run_hook(
    command: &str,
    alert: &CheckInAlert,
    timeout: Duration,
) -> Result<(), String> {
    let mut hook = tokio::process::Command::new("sh");
    hook.arg("-c")
        .arg(format!("{command} \"$@\""))
        .arg("waymark-alert")
        .arg(&alert.workspace_id)
        .arg(&alert.device_name)
        .arg(alert.minutes_overdue.to_string());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WAYMARK_") {
            hook.env_remove(name);
        }
    }
    let mut child = hook
        .env("WAYMARK_ALERT_KIND", alert.kind.as_str())
        .env("WAYMARK_CHECK_IN", hex::encode(alert.check_in))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a timeout kills what the command started too (a mailer, a
        // curl), not only the shell.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("could not start sh: {}", err.kind()))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(status.to_string()),
        Ok(Err(err)) => Err(format!("waiting for it failed: {}", err.kind())),
        Err(_) => {
            let group = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(group) = group {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            // Reaps the shell (killed above, or now if the group could not be signalled).
            let _ = child.kill().await;
            Err(format!(
                "timed out after {} s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn alert(name: &str) -> CheckInAlert {
        CheckInAlert {
            workspace_id: "ws1".into(),
            check_in: [0xab; 16],
            device_name: name.into(),
            kind: AlertKind::Overdue,
            minutes_overdue: 12,
            attempts: 1,
            version: 3,
        }
    }

    #[tokio::test]
    async fn the_hook_gets_its_arguments_and_environment_and_a_name_cannot_inject_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let pwned = dir.path().join("pwned");
        // `<command> "$@"`: a function that writes its arguments, as a script would.
        let command = format!(
            "f() {{ printf '%s|%s|%s|%s|%s|%s\\n' \"$#\" \"$1\" \"$2\" \"$3\" \
             \"$WAYMARK_ALERT_KIND\" \"$WAYMARK_CHECK_IN\" > {}; }}; f",
            out.display()
        );
        let name = format!(
            "Ana's \"phone\" $(touch {}) `touch {}`",
            pwned.display(),
            pwned.display()
        );
        run_hook(&command, &alert(&name), HOOK_TIMEOUT)
            .await
            .unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            written,
            format!("3|ws1|{name}|12|overdue|{}\n", "ab".repeat(16))
        );
        assert!(!pwned.exists(), "the device name ran as a command");
    }

    #[tokio::test]
    async fn a_failing_hook_says_how_and_a_hanging_one_is_killed_with_what_it_started() {
        let reason = run_hook("exit 3", &alert("a"), HOOK_TIMEOUT)
            .await
            .unwrap_err();
        assert!(reason.contains('3'), "{reason}");
        let dir = tempfile::tempdir().unwrap();
        let late = dir.path().join("late");
        // A child of the shell that would write after the timeout: killed with its group.
        let command = format!("(sleep 1; touch {}) & wait; true", late.display());
        let started = std::time::Instant::now();
        let reason = run_hook(&command, &alert("a"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(reason.contains("timed out"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!late.exists(), "what the hook started outlived its timeout");
    }
}
