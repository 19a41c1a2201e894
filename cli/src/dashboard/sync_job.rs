//! "Sync now": one sync at a time on a thread of its own, its progress kept here for the page
//! to poll (`GET /sync/status`), so the pages stay usable while it runs.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use waymark_core as wc;

/// How the last sync ended.
#[derive(Clone, Debug)]
enum Outcome {
    Done {
        pushed: u64,
        pulled: u64,
        changed: usize,
    },
    Failed(String),
}

#[derive(Clone, Debug, Default)]
struct State {
    running: bool,
    phase: Option<&'static str>,
    done: u64,
    total: u64,
    bytes: u64,
    /// When the last sync ended (ms since 1970).
    ended_at: Option<i64>,
    outcome: Option<Outcome>,
}

/// The dashboard's sync: whether one runs, how far it is, how the last one ended.
#[derive(Default)]
pub struct SyncJob {
    state: Mutex<State>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl SyncJob {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts a sync of `store` unless one is running; `false` if one was.
    pub fn start(self: &Arc<Self>, store: Arc<wc::Store>) -> bool {
        let started = self.with(|s| {
            if s.running {
                return false;
            }
            *s = State {
                running: true,
                ended_at: s.ended_at,
                outcome: s.outcome.clone(),
                ..State::default()
            };
            true
        });
        if !started {
            return false;
        }
        let job = Arc::clone(self);
        let seen = Arc::clone(self);
        std::thread::spawn(move || {
            let progress: wc::ProgressFn = Arc::new(move |p: &wc::SyncProgress| {
                seen.with(|s| {
                    s.phase = Some(match p.phase {
                        wc::SyncPhase::Push => "push",
                        wc::SyncPhase::Pull => "pull",
                    });
                    s.done = p.blobs_done;
                    s.total = p.blobs_total.max(p.blobs_done);
                    s.bytes = p.bytes_done;
                });
            });
            let result = store.sync_with(&wc::SyncOptions {
                progress: Some(progress),
                ..Default::default()
            });
            job.with(|s| {
                s.running = false;
                s.ended_at = Some(now_ms());
                s.outcome = Some(match result {
                    Ok(r) => Outcome::Done {
                        pushed: r.pushed,
                        pulled: r.pulled,
                        changed: r.changed.len(),
                    },
                    Err(e) => Outcome::Failed(e.to_string()),
                });
            });
        });
        true
    }

    /// Whether a sync runs now.
    pub fn running(&self) -> bool {
        self.with(|s| s.running)
    }

    /// One line on the last sync, for the top of every page.
    pub fn summary(&self) -> String {
        self.with(|s| {
            if s.running {
                return "Syncing…".to_string();
            }
            let at = s
                .ended_at
                .map(crate::output::day)
                .unwrap_or_default();
            match &s.outcome {
                None => "Not synced since the dashboard started".to_string(),
                Some(Outcome::Done {
                    pushed,
                    pulled,
                    changed,
                }) => format!(
                    "Synced at {at} UTC: {pushed} sent, {pulled} received, {changed} records changed"
                ),
                Some(Outcome::Failed(e)) => format!("Sync failed at {at} UTC: {e}"),
            }
        })
    }

    /// The state as the page's script polls it.
    pub fn status(&self) -> Value {
        let summary = self.summary();
        self.with(|s| {
            json!({
                "running": s.running,
                "phase": s.phase,
                "done": s.done,
                "total": s.total,
                "bytes": s.bytes,
                "failed": matches!(s.outcome, Some(Outcome::Failed(_))),
                "summary": summary,
            })
        })
    }
}
