//! Anonymous tips at the boundary: the coordinator's tip page, the tips it brought, replies to
//! tipsters, and turning a tip into a visit; and the tipster's side, for an app that sends a
//! tip without the page.

use waymark_core as wc;

use crate::error::{Result, call, off_thread};
use crate::store::WaymarkStore;
use crate::types::{NewVisit, Tip, TipAnswer, TipFields, TipPage, TipPageLanguage, TipReply};

#[uniffi::export]
impl WaymarkStore {
    /// Sets up (or changes) the workspace's tip page: its words per language (empty: the
    /// workspace's languages with built-in words), and a new address if `new_address` (the old
    /// one stops working). A coordinator's device only; published at the next sync.
    pub fn set_tip_page(
        &self,
        workspace_id: String,
        languages: Vec<TipPageLanguage>,
        new_address: bool,
    ) -> Result<TipPage> {
        let languages: Vec<wc::TipPageLanguage> = languages.into_iter().map(Into::into).collect();
        call(|| {
            self.store
                .set_tip_page(&workspace_id, &languages, new_address)
        })
        .map(Into::into)
    }

    /// The workspace's tip page, if a coordinator set one up and this coordinator's device
    /// knows it.
    pub fn tip_page(&self, workspace_id: String) -> Result<Option<TipPage>> {
        call(|| self.store.tip_page(&workspace_id)).map(|p| p.map(Into::into))
    }

    /// The workspace's tips, newest first (only coordinators' devices hold any).
    pub fn tips(&self, workspace_id: String) -> Result<Vec<Tip>> {
        call(|| self.store.tips(&workspace_id)).map(|v| v.into_iter().map(Into::into).collect())
    }

    /// One tip.
    pub fn get_tip(&self, id: String) -> Result<Tip> {
        call(|| self.store.get_tip(&id)).map(Into::into)
    }

    /// Answers a tipster: sealed to them, left on the server at the next sync, and added to
    /// the tip for the team to see.
    pub fn reply_to_tip(&self, tip_id: String, text: String) -> Result<TipReply> {
        let reply = call(|| self.store.reply_to_tip(&tip_id, &text))?;
        self.listeners.notify(vec![tip_id]);
        Ok(reply.into())
    }

    /// Turns a tip into a visit (filled in by the app from the tip); returns the visit's id.
    pub fn tip_to_visit(&self, tip_id: String, visit: NewVisit) -> Result<String> {
        let visit: wc::NewVisit = visit.into();
        let id = call(|| self.store.tip_to_visit(&tip_id, &visit))?;
        self.listeners.notify(vec![tip_id, id.clone()]);
        Ok(id)
    }
}

/// Sends a tip through the tip page at `page_url`, sealed on this device to the team's tip key,
/// as the page itself would; returns the receipt code to show the tipster (nothing is kept).
#[uniffi::export]
pub async fn send_tip(page_url: String, fields: TipFields) -> Result<String> {
    let fields: wc::TipFields = fields.into();
    off_thread("tip", move || wc::send_tip(&page_url, &fields)).await
}

/// The team's replies to the tip whose receipt code is `code`; empty when there are none yet
/// or the code is wrong.
#[uniffi::export]
pub async fn read_tip_replies(page_url: String, code: String) -> Result<Vec<TipAnswer>> {
    off_thread("tip", move || wc::read_tip_replies(&page_url, &code))
        .await
        .map(|v| v.into_iter().map(Into::into).collect())
}
