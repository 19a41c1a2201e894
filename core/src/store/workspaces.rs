//! Workspace rows looked up and added by name, for invites: which workspaces this store has
//! and what they are called.

use rusqlite::{Connection, OptionalExtension, params};

use super::now_ms;
use crate::error::Result;

/// The name of workspace `id`, or `None` if this store does not have it.
pub(crate) fn name(c: &Connection, id: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT name FROM workspaces WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )
    .optional()?)
}

/// Whether this store has workspace `id`.
pub(crate) fn exists(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.prepare("SELECT 1 FROM workspaces WHERE id = ?1")?
        .exists(params![id])?)
}

/// Adds workspace `id` named `name`, unless this store has it already.
pub(crate) fn insert_named(c: &Connection, id: &str, name: &str) -> Result<()> {
    c.execute(
        "INSERT INTO workspaces(id, name, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO NOTHING",
        params![id, name, now_ms()],
    )?;
    Ok(())
}
