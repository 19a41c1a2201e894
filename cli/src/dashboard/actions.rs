//! What the dashboard's buttons do: resolve a conflict, invite, approve or revoke a device,
//! answer a tip or turn it into a visit, sync, show or hide restricted records. Each answers
//! with a redirect to the page to show next and a message on it, so reloading that page never
//! repeats the action.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use waymark_core as wc;

use super::views::{self, Flash};
use super::web::{Reply, Req};
use super::{App, Error};

/// How long an approval invite made on the team page stays valid.
const INVITE_TTL_SECONDS: u64 = 24 * 3600;

/// The page of a record: `base` is `visits` or `workshops`.
fn record_page(base: &str, id: &str) -> String {
    format!("/{base}/{}", super::encode(id))
}

/// Keeps one of a conflict's values; refuses a value the conflict no longer holds (a sync
/// changed it since the page was shown).
pub fn resolve(app: &App, req: &Req, base: &str, id: &str) -> Result<Reply, Error> {
    let field = req.field("field")?;
    let chosen = req.field("value")?;
    let conflicts = app.store.conflicts(id)?;
    let value = conflicts
        .iter()
        .filter(|c| c.field == field)
        .flat_map(|c| &c.values)
        .find(|v| views::value_key(&v.value) == chosen)
        .map(|v| v.value.clone());
    match value {
        Some(v) => {
            app.store.resolve_conflict(id, field, &v)?;
            app.flash(Flash::ok(format!(
                "Kept “{}” for {field}; the team gets it at the next sync.",
                views::value_text(&v)
            )));
        }
        None => app.flash(Flash::failed(
            "That conflict changed since the page was shown (a sync?): look at it again.",
        )),
    }
    Ok(Reply::redirect(&record_page(base, id)))
}

/// Makes an approval invite: a code without keys, for a device the team page then admits.
pub fn invite(app: &App, req: &Req) -> Result<Reply, Error> {
    let ws = req.field("workspace")?;
    let code = app.store.create_approval_invite(ws, INVITE_TTL_SECONDS)?;
    app.flash(Flash {
        ok: true,
        text: "Invite to approve, valid for 24 hours: pass it to the new device, then approve \
               it below once it has joined, after comparing its confirmation code."
            .into(),
        code: Some(code),
    });
    Ok(Reply::redirect("/team"))
}

/// Admits a waiting device: by the invite this device made, or once a person compared the
/// confirmation codes.
pub fn approve(app: &App, req: &Req) -> Result<Reply, Error> {
    let ws = req.field("workspace")?;
    let device = req.field("device")?;
    let name = req.form.get("name").cloned().unwrap_or_default();
    let done = if req.form.get("how").map(String::as_str) == Some("confirm") {
        app.store.confirm_device(ws, device)
    } else {
        app.store.approve_join(ws, device)
    };
    match done {
        Ok(()) => app.flash(Flash::ok(format!(
            "Admitted {name}: it receives the team's keys at its next sync."
        ))),
        Err(e) => app.flash(Flash::failed(format!("Not admitted: {e}"))),
    }
    Ok(Reply::redirect("/team"))
}

/// Revokes a device: it can no longer sync, and the workspace key is rotated.
pub fn revoke(app: &App, req: &Req) -> Result<Reply, Error> {
    let ws = req.field("workspace")?;
    let device = req.field("device")?;
    let name = req.form.get("name").cloned().unwrap_or_default();
    match app.store.revoke_device(ws, device) {
        Ok(()) => app.flash(Flash::ok(format!(
            "Revoked {name}: it can no longer sync, and nothing written from now on can be read \
             with its keys."
        ))),
        Err(e) => app.flash(Flash::failed(format!("Not revoked: {e}"))),
    }
    Ok(Reply::redirect("/team"))
}

/// Answers a tipster (sealed to them, sent at the next sync).
pub fn reply_to_tip(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let text = req.field("text")?;
    match app.store.reply_to_tip(id, text) {
        Ok(_) => app.flash(Flash::ok(
            "Reply sealed to the tipster; it is sent at the next sync.",
        )),
        Err(e) => app.flash(Flash::failed(format!("Not sent: {e}"))),
    }
    Ok(Reply::redirect(&format!("/tips/{}", super::encode(id))))
}

/// Turns a tip into a restricted visit to follow up.
pub fn tip_to_visit(app: &App, req: &Req, id: &str) -> Result<Reply, Error> {
    let day = req.field("date")?;
    let occurred_at = crate::query::parse_day(day, false).map_err(Error::BadRequest)?;
    let visit = wc::NewVisit {
        place: wc::Place {
            name: req.field("place")?.trim().to_string(),
            area: req.field("area")?.trim().to_string(),
            coordinates: None,
        },
        occurred_at,
        visit_type: req.field("type")?.to_string(),
        notes: req.field("notes")?.to_string(),
        // It comes from a tip, which is restricted: so is what it becomes.
        sensitivity: wc::Sensitivity::Restricted,
        ..Default::default()
    };
    match app.store.tip_to_visit(id, &visit) {
        Ok(visit_id) => {
            app.flash(Flash::ok("Visit made from the tip (restricted)."));
            Ok(Reply::redirect(&record_page("visits", &visit_id)))
        }
        Err(e) => {
            app.flash(Flash::failed(format!("No visit made: {e}")));
            Ok(Reply::redirect(&format!("/tips/{}", super::encode(id))))
        }
    }
}

/// Starts a sync (the page's script then polls its progress).
pub fn sync(app: &App, req: &Req) -> Reply {
    if !app.sync.start(Arc::clone(&app.store)) {
        app.flash(Flash::failed("A sync is already running."));
    }
    Reply::redirect(&req.back())
}

/// Shows or hides restricted records.
pub fn toggle_restricted(app: &App, req: &Req) -> Reply {
    let shown = req.form.get("show").map(String::as_str) == Some("1");
    app.show_restricted.store(shown, Ordering::Relaxed);
    Reply::redirect(&req.back())
}
