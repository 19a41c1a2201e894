//! Marks in each synced workspace's blob log (`chain_marks`): a sequence number this device
//! pulled to and the log's chain hash there, to come back to when a server restored from a
//! backup rewinds its log (see `sync::restore`). Every read and write of the table is here.

use rusqlite::{Connection, params};
use waymark_protocol as proto;

use crate::error::Result;

/// Keeps a mark of `workspace`'s log at `seq`, where its chain hash is `chain`.
pub(crate) fn put(
    c: &Connection,
    workspace: &str,
    seq: i64,
    chain: &proto::ChainHash,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO chain_marks(workspace_id, seq, chain) VALUES (?1, ?2, ?3)
         ON CONFLICT(workspace_id, seq) DO UPDATE SET chain = excluded.chain",
    )?
    .execute(params![workspace, seq, chain.as_slice()])?;
    Ok(())
}

/// The marks of `workspace`, newest first: sequence numbers with their hashes (a damaged row
/// is left out).
pub(crate) fn newest_first(
    c: &Connection,
    workspace: &str,
) -> Result<Vec<(u64, proto::ChainHash)>> {
    let mut st =
        c.prepare("SELECT seq, chain FROM chain_marks WHERE workspace_id = ?1 ORDER BY seq DESC")?;
    let rows = st.query_map(params![workspace], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, chain) = row?;
        if let (Ok(seq), Ok(chain)) = (u64::try_from(seq), chain.try_into()) {
            out.push((seq, chain));
        }
    }
    Ok(out)
}

/// Drops the marks of `workspace` after `seq`: the server's log no longer holds them.
pub(crate) fn drop_after(c: &Connection, workspace: &str, seq: i64) -> Result<()> {
    c.execute(
        "DELETE FROM chain_marks WHERE workspace_id = ?1 AND seq > ?2",
        params![workspace, seq],
    )?;
    Ok(())
}
