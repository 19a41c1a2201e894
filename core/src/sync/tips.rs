//! Anonymous tips (docs/0008-tips.md): the tip page a coordinator publishes, tips opened into
//! restricted records at sync, and replies sealed to tipsters.
//!
//! The tip key is derived from the epoch's restricted key, so only coordinators' devices can
//! open tips, and a rotation (a coordinator revoked) makes a new one. The page's statement on
//! the server is signed by a coordinator; every coordinator's device checks it at each sync and
//! publishes it again when the server lost it, serves one no coordinator signed, or serves an
//! older epoch's key.
//!
//! A tip becomes a record whose id, actor and first change come from the ciphertext alone: two
//! coordinators opening the same tip at once make the same change, and the team has one record.
//! The server deletes the ciphertext once a device has pushed that record.

use automerge::{ActorId, AutoCommit, transaction::CommitOptions};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use waymark_protocol as proto;
use waymark_protocol::tip_labels as labels;

use super::http::{Call, Server};
use super::log::{AlertKind, record_alert};
use super::{Changed, Membership, team};
use crate::crypto;
use crate::error::{Error, Result, StorageError};
use crate::model::{NewVisit, RecordKind, Tip, TipReply};
use crate::records::tip;
use crate::store::{Store, docs, keys, memberships, now_ms, projection, team_lookups, tips};
use crate::validate;

/// Most languages a tip page shows.
const MAX_LANGUAGES: usize = 16;
/// Longest label of a tip page, in characters.
const MAX_LABEL_CHARS: usize = 2_000;

/// The words of the tip page in one language (plain text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TipPageLanguage {
    /// Language code (`en`, `fr`, ...).
    pub code: String,
    /// The page's title.
    pub title: String,
    /// What the page is for and what happens to a tip.
    pub intro: String,
    /// The field for what happened.
    pub what: String,
    /// The field for where.
    pub place: String,
    /// The field for when.
    pub time: String,
    /// The optional field for how to reach the tipster.
    pub contact: String,
    /// The send button.
    pub send: String,
    /// Shown after sending, above the receipt code.
    pub sent: String,
    /// The field and button to read replies with a receipt code.
    pub check: String,
    /// Shown when a receipt has no reply yet.
    pub no_reply: String,
    /// Shown when sending or reading failed.
    pub failed: String,
}

/// The workspace's tip page, as this coordinator's device knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipPage {
    /// Workspace.
    pub workspace_id: String,
    /// Where tipsters open it: the server's address and the page's unguessable path.
    pub url: String,
    /// The fingerprint of the tip key the page seals to, as the page shows it (print it on
    /// posters: a tipster can compare).
    pub fingerprint: String,
    /// The restricted-key epoch of that key.
    pub epoch: u32,
    /// Whether the server was last seen serving it, signed, with this key.
    pub published: bool,
    /// Its words, the first language the default.
    pub languages: Vec<TipPageLanguage>,
}

impl TipPageLanguage {
    /// Built-in words for a language this build knows (English for any other, with its code).
    pub fn default_for(code: &str) -> TipPageLanguage {
        let w: [&str; 11] = match code.split('-').next().unwrap_or(code) {
            "fr" => [
                "Signaler en toute sécurité",
                "Votre message est chiffré dans ce navigateur : seule l'équipe peut le lire. \
                 Nous ne demandons ni nom, ni compte, et ne gardons pas votre adresse IP.",
                "Que s'est-il passé ?",
                "Où ?",
                "Quand ?",
                "Comment vous joindre (facultatif)",
                "Envoyer",
                "Envoyé. Notez ce code pour lire notre réponse :",
                "Lire une réponse avec votre code",
                "Pas encore de réponse.",
                "Échec. Réessayez plus tard.",
            ],
            "es" => [
                "Denuncie de forma segura",
                "Su mensaje se cifra en este navegador: solo el equipo puede leerlo. No pedimos \
                 nombre ni cuenta, y no guardamos su dirección IP.",
                "¿Qué pasó?",
                "¿Dónde?",
                "¿Cuándo?",
                "Cómo contactarle (opcional)",
                "Enviar",
                "Enviado. Anote este código para leer nuestra respuesta:",
                "Leer una respuesta con su código",
                "Todavía no hay respuesta.",
                "Falló. Inténtelo más tarde.",
            ],
            _ => [
                "Report safely",
                "Your message is encrypted in this browser: only the team can read it. We ask \
                 for no name or account, and keep no IP address.",
                "What happened?",
                "Where?",
                "When?",
                "How to reach you (optional)",
                "Send",
                "Sent. Write this code down to read our reply:",
                "Read a reply with your code",
                "No reply yet.",
                "That failed. Try again later.",
            ],
        };
        let [
            title,
            intro,
            what,
            place,
            time,
            contact,
            send,
            sent,
            check,
            no_reply,
            failed,
        ] = w.map(str::to_string);
        TipPageLanguage {
            code: code.to_string(),
            title,
            intro,
            what,
            place,
            time,
            contact,
            send,
            sent,
            check,
            no_reply,
            failed,
        }
    }

    fn to_wire(&self) -> proto::TipPageLanguage {
        let labels = [
            (labels::TITLE, &self.title),
            (labels::INTRO, &self.intro),
            (labels::WHAT, &self.what),
            (labels::WHERE, &self.place),
            (labels::WHEN, &self.time),
            (labels::CONTACT, &self.contact),
            (labels::SEND, &self.send),
            (labels::SENT, &self.sent),
            (labels::CHECK, &self.check),
            (labels::NO_REPLY, &self.no_reply),
            (labels::FAILED, &self.failed),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
        proto::TipPageLanguage {
            code: self.code.clone(),
            labels,
        }
    }

    fn from_wire(l: &proto::TipPageLanguage) -> TipPageLanguage {
        let get = |k: &str| l.labels.get(k).cloned().unwrap_or_default();
        TipPageLanguage {
            code: l.code.clone(),
            title: get(labels::TITLE),
            intro: get(labels::INTRO),
            what: get(labels::WHAT),
            place: get(labels::WHERE),
            time: get(labels::WHEN),
            contact: get(labels::CONTACT),
            send: get(labels::SEND),
            sent: get(labels::SENT),
            check: get(labels::CHECK),
            no_reply: get(labels::NO_REPLY),
            failed: get(labels::FAILED),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.code.is_empty() || self.code.len() > 16 || !self.code.is_ascii() {
            return Err(Error::invalid("code", "must be a language tag such as en"));
        }
        let too_long = self
            .to_wire()
            .labels
            .values()
            .any(|v| v.chars().count() > MAX_LABEL_CHARS || v.contains('\0'));
        if too_long {
            return Err(Error::invalid(
                "labels",
                format!("each at most {MAX_LABEL_CHARS} characters"),
            ));
        }
        Ok(())
    }
}

/// A fresh unguessable page path: 128 random bits as lowercase base32.
fn new_page_path() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut s = data_encoding::BASE32_NOPAD
        .encode(&bytes)
        .to_ascii_lowercase();
    s.truncate(proto::limits::TIP_PAGE_CHARS);
    s
}

/// Whether `page` is a path this device would have made (see [`new_page_path`]).
fn valid_page_path(page: &str) -> bool {
    page.len() == proto::limits::TIP_PAGE_CHARS
        && page
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The id and Automerge actor of the record a tip becomes: from its ciphertext alone, the same
/// on every coordinator's device.
fn tip_identity(ephemeral: &[u8], nonce: &[u8]) -> (String, ActorId) {
    let digest = |label: &[u8]| {
        Sha256::new()
            .chain_update(label)
            .chain_update(ephemeral)
            .chain_update(nonce)
            .finalize()
    };
    let id = hex::encode(&digest(b"waymark/tip-doc/v1:")[..16]);
    let actor = ActorId::from(&digest(b"waymark/tip-actor/v1:")[..16]);
    (id, actor)
}

/// The document a tip becomes: the same bytes on every device that opens it.
fn tip_document(
    workspace: &str,
    opened: &tip::Sealed,
    received: i64,
    actor: ActorId,
) -> Result<AutoCommit> {
    let mut doc = AutoCommit::new().with_actor(actor);
    tip::create(&mut doc, workspace, opened, received)?;
    doc.commit_with(CommitOptions::default().with_time(received));
    Ok(doc)
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()
}

/// The tip secret of `epoch`, if this device holds that epoch's restricted key.
fn tip_secret(
    c: &Connection,
    workspace: &str,
    epoch: u32,
) -> Result<Option<zeroize::Zeroizing<[u8; 32]>>> {
    Ok(keys::restricted_secret(c, workspace, epoch)?.map(|s| crypto::tip_secret(&s)))
}

/// The current epoch and its tip key pair, when this device is a coordinator holding it.
fn current_tip_key(
    c: &Connection,
    workspace: &str,
) -> Result<Option<(u32, zeroize::Zeroizing<[u8; 32]>)>> {
    if !team::is_coordinator(c, workspace)? {
        return Ok(None);
    }
    let Some((epoch, _)) = keys::current(c, workspace)? else {
        return Ok(None);
    };
    Ok(tip_secret(c, workspace, epoch)?.map(|s| (epoch, s)))
}

impl Store {
    /// Sets up (or changes) the workspace's tip page: its words in each language (none: the
    /// workspace's languages with built-in words), and a new address if `new_address` (the old
    /// one stops working). A coordinator's device only; published at the next sync.
    pub fn set_tip_page(
        &self,
        workspace: &str,
        languages: &[TipPageLanguage],
        new_address: bool,
    ) -> Result<TipPage> {
        validate::id("workspace_id", workspace)?;
        if languages.len() > MAX_LANGUAGES {
            return Err(Error::invalid(
                "languages",
                format!("at most {MAX_LANGUAGES}"),
            ));
        }
        languages.iter().try_for_each(TipPageLanguage::validate)?;
        let languages: Vec<TipPageLanguage> = if languages.is_empty() {
            self.workspace_languages(workspace)?
                .iter()
                .map(|l| TipPageLanguage::default_for(l))
                .collect()
        } else {
            languages.to_vec()
        };
        let wire: Vec<_> = languages.iter().map(TipPageLanguage::to_wire).collect();
        self.with_writer(|w| {
            let tx = w.transaction()?;
            if current_tip_key(&tx, workspace)?.is_none() {
                return Err(Error::NotPermitted(
                    "only a coordinator's device of a synced team can set up the tip page".into(),
                ));
            }
            let page = match tips::page(&tx, workspace)? {
                Some(local) if !new_address => local.page,
                _ => new_page_path(),
            };
            tips::set_page(&tx, workspace, &page, &wire, None)?;
            tx.commit()?;
            Ok(())
        })?;
        self.tip_page(workspace)?
            .ok_or_else(|| Error::Storage("the tip page just set went missing".into()))
    }

    /// The workspace's tip page, if a coordinator set one up and this coordinator's device
    /// knows it (set here, or seen signed on the server).
    pub fn tip_page(&self, workspace: &str) -> Result<Option<TipPage>> {
        validate::id("workspace_id", workspace)?;
        self.read(|c| {
            let Some(tips::Page {
                page,
                languages: langs,
                published,
            }) = tips::page(c, workspace)?
            else {
                return Ok(None);
            };
            let Some((epoch, secret)) = current_tip_key(c, workspace)? else {
                return Ok(None);
            };
            let url = memberships::server_url(c, workspace)?;
            Ok(Some(TipPage {
                workspace_id: workspace.to_string(),
                url: format!(
                    "{}{}/{page}",
                    url.trim_end_matches('/'),
                    proto::PATH_PUBLIC_TIPS
                ),
                fingerprint: crypto::tip_fingerprint(&crypto::tip_public(&secret)),
                epoch,
                published: published == Some(epoch),
                languages: langs.iter().map(TipPageLanguage::from_wire).collect(),
            }))
        })
    }

    /// The languages of a workspace's labels, English first when present.
    fn workspace_languages(&self, workspace: &str) -> Result<Vec<String>> {
        let settings = self.settings(workspace)?;
        let mut langs: Vec<String> = Vec::new();
        for l in settings
            .taxonomies
            .iter()
            .flat_map(|t| &t.entries)
            .flat_map(|e| &e.labels)
        {
            if !langs.contains(&l.lang) && langs.len() < MAX_LANGUAGES {
                langs.push(l.lang.clone());
            }
        }
        langs.sort_by_key(|l| (l != "en", l.clone()));
        if langs.is_empty() {
            langs.push("en".into());
        }
        Ok(langs)
    }

    /// The workspace's tips, newest first (coordinators' devices only hold any).
    pub fn tips(&self, workspace: &str) -> Result<Vec<Tip>> {
        validate::id("workspace_id", workspace)?;
        let ids = self.read(|c| projection::tips(c, workspace))?;
        ids.iter().map(|id| self.get_tip(id)).collect()
    }

    /// One tip, deleted or not.
    pub fn get_tip(&self, id: &str) -> Result<Tip> {
        let (doc, h) = self.load_kind(id, RecordKind::Tip)?;
        Ok(tip::read(&doc, id, &h))
    }

    /// Answers a tipster: the reply is sealed to the key their browser made from their receipt
    /// code, left on the server at the next sync, and added to the tip for the team to see.
    pub fn reply_to_tip(&self, tip_id: &str, text: &str) -> Result<TipReply> {
        if text.trim().is_empty() {
            return Err(Error::invalid("text", "must not be empty"));
        }
        validate::notes("text", text)?;
        let (doc, h) = self.load_kind(tip_id, RecordKind::Tip)?;
        let (lookup, reply_key) = tip::reply_to(&doc).ok_or_else(|| {
            Error::invalid(
                "tip_id",
                "the tipster's page left no way to reply to this tip",
            )
        })?;
        if !self.read(|c| team::is_coordinator(c, &h.workspace))? {
            return Err(Error::NotPermitted(
                "only a coordinator's device can reply to a tip".into(),
            ));
        }
        let sent_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(StorageError::Clock)?;
        let plain = serde_json::json!({"v": 1, "text": text, "sent_at": sent_at}).to_string();
        let (ephemeral, nonce, sealed) = crypto::seal_box_once(&reply_key, plain.as_bytes())?;
        let request = proto::encode(&proto::TipReplyRequest {
            lookup,
            ephemeral,
            nonce,
            sealed,
        });
        // Queued first: a reply the tipster will read is never missing from what is sent, even
        // if the device stops before the record shows it.
        let queued = self.with_writer(|w| tips::queue_reply(w.conn(), &h.workspace, &request))?;
        let reply = self.edit_doc(tip_id, RecordKind::Tip, |doc, now| {
            tip::add_reply(doc, text, now)
        });
        let id = match reply {
            Ok(id) => id,
            Err(e) => {
                self.with_writer(|w| tips::unqueue_reply(w.conn(), queued))?;
                return Err(e);
            }
        };
        self.get_tip(tip_id)?
            .replies
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::Storage("a reply just added went missing".into()))
    }

    /// Turns a tip into a visit (the app fills `visit` in from the tip, and adds referrals to
    /// it as to any visit); the tip keeps the visit's id. Returns the visit's id.
    pub fn tip_to_visit(&self, tip_id: &str, visit: &NewVisit) -> Result<String> {
        let tip = self.get_tip(tip_id)?;
        let visit_id = self.create_visit(&tip.workspace_id, visit)?;
        self.edit_doc(tip_id, RecordKind::Tip, |doc, _| {
            tip::set_visit(doc, &visit_id)
        })?;
        Ok(visit_id)
    }

    /// At sync, after the pull, on a coordinator's device: checks the page the server
    /// publishes (publishing it again when needed), and opens waiting tips into records.
    pub(crate) fn sync_tips(
        &self,
        server: &Server,
        m: &Membership,
        changed: &mut Changed,
    ) -> Result<()> {
        let (key, waiting) = self.read(|c| {
            let waiting = memberships::tips_waiting(c, &m.workspace)?;
            Ok((current_tip_key(c, &m.workspace)?, waiting))
        })?;
        let Some((epoch, secret)) = key else {
            return Ok(());
        };
        self.check_tip_page(server, m, epoch, &secret)?;
        if waiting > 0 {
            self.open_tips(server, m, changed)?;
        }
        Ok(())
    }

    /// Fetches the page the server publishes; publishes it again if it is missing, not signed
    /// by a coordinator of the team log, or for an older key, or if this device changed it.
    fn check_tip_page(
        &self,
        server: &Server,
        m: &Membership,
        epoch: u32,
        secret: &[u8; 32],
    ) -> Result<()> {
        let public = crypto::tip_public(secret);
        let served: Option<proto::TipPageRequest> = server.get_optional(proto::PATH_TIP_PAGE)?;
        let (local, server_ws) = self.read(|c| {
            let ws = memberships::server_workspace_id(c, &m.workspace)?;
            Ok((tips::page(c, &m.workspace)?, ws))
        })?;
        let verified = match &served {
            Some(s) => self.read(|c| verify_statement(c, &m.workspace, &server_ws, s))?,
            None => None,
        };
        if served.is_some() && verified.is_none() {
            self.with_writer(|w| {
                record_alert(
                    w.conn(),
                    &m.workspace,
                    AlertKind::Substituted,
                    "the server served a tip page no coordinator of the team signed",
                    false,
                )
            })?;
        }
        let pending = local.as_ref().is_some_and(|l| l.published.is_none());
        let (page, languages) = match (&local, &verified) {
            (Some(l), _) if pending => (l.page.clone(), l.languages.clone()),
            (_, Some(st)) if st.epoch == epoch && st.public_key == public => {
                // The team's page as another coordinator (or this device) signed it.
                self.with_writer(|w| {
                    tips::set_page(w.conn(), &m.workspace, &st.page, &st.languages, Some(epoch))
                })?;
                return Ok(());
            }
            // An older epoch's key (a coordinator was revoked since): the same page, signed
            // again with the current key.
            (_, Some(st)) => (st.page.clone(), st.languages.clone()),
            (Some(l), None) => (l.page.clone(), l.languages.clone()),
            // Never seen signed here: the address the server routes (which it knows anyway),
            // with the workspace's default words, not the words nobody of the team signed.
            (None, None) => match served
                .as_ref()
                .and_then(|s| proto::decode::<proto::TipPageStatement>(&s.statement).ok())
            {
                Some(st) if valid_page_path(&st.page) => (
                    st.page,
                    self.workspace_languages(&m.workspace)?
                        .iter()
                        .map(|l| TipPageLanguage::default_for(l).to_wire())
                        .collect(),
                ),
                _ => return Ok(()),
            },
        };
        let statement = proto::encode(&proto::TipPageStatement {
            workspace_id: server_ws,
            page: page.clone(),
            epoch,
            public_key: public,
            languages: languages.clone(),
            signed_at: u64::try_from(now_ms()).unwrap_or(0),
        });
        let signature = self.read(|c| {
            Ok(crypto::sign_statement(
                &team::own_keys(c, &m.workspace)?,
                &statement,
            ))
        })?;
        let request = proto::TipPageRequest {
            statement,
            device_id: m.device_id.clone(),
            signature: signature.to_vec(),
        };
        server.put::<_, serde::de::IgnoredAny>(Call::Device, proto::PATH_TIP_PAGE, &request)?;
        self.with_writer(|w| tips::set_page(w.conn(), &m.workspace, &page, &languages, Some(epoch)))
    }

    /// Opens the waiting tips this device can, into records (see the module's note).
    fn open_tips(&self, server: &Server, m: &Membership, changed: &mut Changed) -> Result<()> {
        let answer: proto::TipsResponse = server.get(proto::PATH_TIPS)?.body;
        for entry in answer.tips {
            let s = &entry.submission;
            let parts = (
                decode_b64(&s.ephemeral).and_then(|e| <[u8; 32]>::try_from(e).ok()),
                decode_b64(&s.nonce).and_then(|n| <[u8; 24]>::try_from(n).ok()),
                decode_b64(&s.sealed),
            );
            let (Some(ephemeral), Some(nonce), Some(sealed)) = parts else {
                self.mark_tip_stored(&m.workspace, entry.id, "")?;
                continue;
            };
            let (doc_id, actor) = tip_identity(&ephemeral, &nonce);
            let (known, secret) = self.read(|c| {
                let known = docs::exists(c, &doc_id)?;
                Ok((known, tip_secret(c, &m.workspace, s.epoch)?))
            })?;
            if known {
                self.mark_tip_stored(&m.workspace, entry.id, &doc_id)?;
                continue;
            }
            // Sealed to an epoch this device never held: left for a coordinator that does.
            let Some(secret) = secret else { continue };
            let opened = crypto::open_tip(&secret, &ephemeral, &nonce, &sealed)
                .and_then(|plain| tip::Sealed::parse(&plain));
            let Ok(opened) = opened else {
                // It can never be opened: dropped from the server, which is all a forger gets.
                self.mark_tip_stored(&m.workspace, entry.id, "")?;
                continue;
            };
            let received = i64::try_from(entry.received_hour)
                .unwrap_or(0)
                .saturating_mul(1000);
            let doc = tip_document(&m.workspace, &opened, received, actor)?;
            self.insert_doc(&doc_id, RecordKind::Tip, &m.workspace, doc)?;
            self.mark_tip_stored(&m.workspace, entry.id, &doc_id)?;
            changed.insert(doc_id);
        }
        Ok(())
    }

    fn mark_tip_stored(&self, workspace: &str, server_id: u64, doc_id: &str) -> Result<()> {
        let server_id = i64::try_from(server_id).unwrap_or(i64::MAX);
        self.with_writer(|w| tips::mark_stored(w.conn(), workspace, server_id, doc_id))
    }

    /// At sync, after the last push: sends queued replies, and tells the server which tips are
    /// now records it holds (pushed), so that it deletes their ciphertext.
    pub(crate) fn finish_tips(&self, server: &Server, m: &Membership) -> Result<()> {
        let (replies, done) = self.read(|c| {
            Ok((
                tips::queued_replies(c, &m.workspace)?,
                tips::stored_and_pushed(c, &m.workspace)?,
            ))
        })?;
        for (id, request) in replies {
            let request: proto::TipReplyRequest = proto::decode(&request)
                .map_err(|_| Error::Corrupt("a queued reply to a tipster is damaged".into()))?;
            server.post::<_, serde::de::IgnoredAny>(
                Call::Device,
                proto::PATH_TIP_REPLIES,
                &request,
            )?;
            self.with_writer(|w| tips::unqueue_reply(w.conn(), id))?;
        }
        if !done.is_empty() {
            let ids = done
                .iter()
                .map(|&i| u64::try_from(i).unwrap_or(0))
                .collect();
            server.post::<_, serde::de::IgnoredAny>(
                Call::Device,
                proto::PATH_TIPS_DONE,
                &proto::TipsDoneRequest { ids },
            )?;
            self.with_writer(|w| {
                let tx = w.transaction()?;
                tips::forget_stored(&tx, &m.workspace, &done)?;
                tx.commit()?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// The statement the server serves, if a coordinator of the verified team log signed it for
/// this workspace with a tip key of an epoch this device holds.
fn verify_statement(
    c: &Connection,
    workspace: &str,
    server_ws: &str,
    served: &proto::TipPageRequest,
) -> Result<Option<proto::TipPageStatement>> {
    let sign_key = team_lookups::coordinator_sign_key(c, workspace, &served.device_id)?;
    let Some(sign_key) = sign_key.and_then(|k| <[u8; 32]>::try_from(k).ok()) else {
        return Ok(None);
    };
    if !crypto::statement_signed_by(&sign_key, &served.statement, &served.signature) {
        return Ok(None);
    }
    let Ok(st) = proto::decode::<proto::TipPageStatement>(&served.statement) else {
        return Ok(None);
    };
    let Some(secret) = tip_secret(c, workspace, st.epoch)? else {
        return Ok(None);
    };
    let ours = st.workspace_id == server_ws && st.public_key == crypto::tip_public(&secret);
    Ok(ours.then_some(st))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use automerge::ReadDoc;

    use super::*;

    #[test]
    fn two_coordinators_opening_one_tip_make_the_same_change_and_one_record() {
        let plain = br#"{"v":1,"what":"Girls locked in","where":"Lane 4","lookup":"00"}"#;
        let opened = tip::Sealed::parse(plain).unwrap();
        let (id_a, actor_a) = tip_identity(&[1; 32], &[2; 24]);
        let (id_b, actor_b) = tip_identity(&[1; 32], &[2; 24]);
        assert_eq!(id_a, id_b);
        let mut a = tip_document("ws", &opened, 3_600_000, actor_a).unwrap();
        let mut b = tip_document("ws", &opened, 3_600_000, actor_b).unwrap();
        assert_eq!(a.get_heads(), b.get_heads());
        // One coordinator's reply, merged with the other's copy: one record, no conflict.
        a.set_actor(ActorId::from(&[9u8; 16][..]));
        tip::add_reply(&mut a, "Thank you", 4_000_000).unwrap();
        a.commit();
        b.merge(&mut a).unwrap();
        assert!(!crate::records::has_conflicts(&b));
        let h = crate::records::header(&b).unwrap();
        let read = tip::read(&b, &id_a, &h);
        assert_eq!(
            (read.what.as_str(), read.replies.len()),
            ("Girls locked in", 1)
        );
        assert_eq!(b.get_all(&automerge::ROOT, "what").unwrap().len(), 1);
        // Another tip is another record.
        assert_ne!(tip_identity(&[1; 32], &[3; 24]).0, id_a);
    }
}
