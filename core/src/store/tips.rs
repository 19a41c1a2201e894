//! Tips on disk, beside the records they become: the tip page this coordinator's device keeps,
//! the tips on the server already stored as records (until the server is told to delete them),
//! and replies to tipsters waiting to be sent. Every read and write of the `tip_pages`,
//! `tips_stored` and `tip_replies_out` tables is here.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use waymark_protocol as proto;

use crate::error::{Error, Result};

/// The tip page as this device keeps it.
pub(crate) struct Page {
    /// Its path under `/t/`.
    pub(crate) page: String,
    /// Its words.
    pub(crate) languages: Vec<proto::TipPageLanguage>,
    /// The epoch whose key the server was last seen publishing it with; `None` while a change
    /// made here waits to be published.
    pub(crate) published: Option<u32>,
}

/// The page this device keeps for `workspace`.
pub(crate) fn page(c: &Connection, workspace: &str) -> Result<Option<Page>> {
    let row: Option<(String, Vec<u8>, Option<u32>)> = c
        .query_row(
            "SELECT page, languages, published_epoch FROM tip_pages WHERE workspace_id = ?1",
            params![workspace],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(page, langs, published)| {
        let languages = proto::decode(&langs)
            .map_err(|_| Error::Corrupt("the stored tip page is damaged".into()))?;
        Ok(Page {
            page,
            languages,
            published,
        })
    })
    .transpose()
}

/// Keeps `page` with these words as `workspace`'s tip page, published with the key of
/// `published` (`None`: waiting to be published).
pub(crate) fn set_page(
    c: &Connection,
    workspace: &str,
    page: &str,
    languages: &[proto::TipPageLanguage],
    published: Option<u32>,
) -> Result<()> {
    c.execute(
        "INSERT INTO tip_pages(workspace_id, page, languages, published_epoch)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(workspace_id) DO UPDATE SET page = excluded.page,
             languages = excluded.languages, published_epoch = excluded.published_epoch",
        params![workspace, page, proto::encode(&languages), published],
    )?;
    Ok(())
}

/// Records that the server's tip `server_id` is stored here as record `doc_id` (empty: dropped,
/// it could not be opened); a tip already recorded keeps its record.
pub(crate) fn mark_stored(
    c: &Connection,
    workspace: &str,
    server_id: i64,
    doc_id: &str,
) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO tips_stored(workspace_id, server_id, doc_id)
         VALUES (?1, ?2, ?3)",
        params![workspace, server_id, doc_id],
    )?;
    Ok(())
}

/// The server ids of `workspace`'s tips stored here whose record has no change left to push.
pub(crate) fn stored_and_pushed(c: &Connection, workspace: &str) -> Result<Vec<i64>> {
    let mut st = c.prepare(
        "SELECT server_id FROM tips_stored s WHERE workspace_id = ?1
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.doc_id = s.doc_id)",
    )?;
    let ids = st
        .query_map(params![workspace], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Forgets `workspace`'s tips `server_ids`: the server deletes them.
pub(crate) fn forget_stored(
    tx: &Transaction<'_>,
    workspace: &str,
    server_ids: &[i64],
) -> Result<()> {
    for id in server_ids {
        tx.execute(
            "DELETE FROM tips_stored WHERE workspace_id = ?1 AND server_id = ?2",
            params![workspace, id],
        )?;
    }
    Ok(())
}

/// Queues an encoded reply to a tipster for `workspace`'s server; returns its queue id.
pub(crate) fn queue_reply(c: &Connection, workspace: &str, request: &[u8]) -> Result<i64> {
    c.execute(
        "INSERT INTO tip_replies_out(workspace_id, request) VALUES (?1, ?2)",
        params![workspace, request],
    )?;
    Ok(c.last_insert_rowid())
}

/// The replies to tipsters queued for `workspace`'s server, oldest first: queue id and
/// encoded request.
pub(crate) fn queued_replies(c: &Connection, workspace: &str) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut st =
        c.prepare("SELECT id, request FROM tip_replies_out WHERE workspace_id = ?1 ORDER BY id")?;
    let replies = st
        .query_map(params![workspace], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(replies)
}

/// Takes reply `id` out of the queue (sent, or never to be sent).
pub(crate) fn unqueue_reply(c: &Connection, id: i64) -> Result<()> {
    c.execute("DELETE FROM tip_replies_out WHERE id = ?1", params![id])?;
    Ok(())
}
