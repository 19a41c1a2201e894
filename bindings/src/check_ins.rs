//! Staff safety check-ins at the boundary: start one before a visit, extend it, close it (with
//! the duress PIN to raise the alarm unseen), and the team's open and overdue ones.

use waymark_core as wc;

use crate::error::{Result, call, off_thread};
use crate::store::WaymarkStore;
use crate::types::{CheckIn, CheckInDetails};

#[uniffi::export]
impl WaymarkStore {
    /// Starts a safety check-in before a visit: saved at once, then sent to the server, which
    /// raises the alarm if it is not closed by `expected_back` (ms since 1970) plus its grace
    /// period. `watched` is false if the server could not be told yet: warn the worker.
    pub async fn start_check_in(
        &self,
        workspace_id: String,
        expected_back: i64,
        details: CheckInDetails,
    ) -> Result<CheckIn> {
        let store = self.store.clone();
        let details: wc::CheckInDetails = details.into();
        let started = off_thread("check-in", move || {
            store.start_check_in(&workspace_id, expected_back, &details)
        })
        .await?;
        self.listeners.notify(vec![started.id.clone()]);
        Ok(started.into())
    }

    /// Moves the expected time of one of this device's open check-ins.
    pub async fn extend_check_in(
        &self,
        check_in_id: String,
        expected_back: i64,
    ) -> Result<CheckIn> {
        let store = self.store.clone();
        let extended = off_thread("check-in", move || {
            store.extend_check_in(&check_in_id, expected_back)
        })
        .await?;
        self.listeners.notify(vec![extended.id.clone()]);
        Ok(extended.into())
    }

    /// Closes one of this device's check-ins: the worker is back. With the duress PIN it
    /// raises the alarm instead, while this device shows it closed like any other close.
    #[uniffi::method(default(pin = None))]
    pub async fn close_check_in(
        &self,
        check_in_id: String,
        pin: Option<String>,
    ) -> Result<CheckIn> {
        let store = self.store.clone();
        let closed = off_thread("check-in", move || {
            store.close_check_in(&check_in_id, pin.as_deref())
        })
        .await?;
        self.listeners.notify(vec![closed.id.clone()]);
        Ok(closed.into())
    }

    /// Sets the duress PIN that `close_check_in` turns into an alarm (`None` removes it).
    pub fn set_duress_pin(&self, pin: Option<String>) -> Result<()> {
        call(|| self.store.set_duress_pin(pin.as_deref()))
    }

    /// The check-ins of a workspace: this device's, and its teammates' open, overdue or raised
    /// ones and those closed in the last day, the most urgent first.
    pub fn check_ins(&self, workspace_id: String) -> Result<Vec<CheckIn>> {
        call(|| self.store.check_ins(&workspace_id))
            .map(|v| v.into_iter().map(Into::into).collect())
    }
}
