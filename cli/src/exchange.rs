//! Changes carried on a memory card where there is no network: `export-changes` writes this
//! store's changes to a file (0600, never through a symlink), `import-changes` merges a file
//! another device wrote.

use std::path::Path;

use serde_json::json;
use waymark_core as wc;

use crate::output::Out;

/// The largest bundle read back (a bundle holds whole records' changes, never media).
const MAX_BUNDLE: u64 = 512 * 1024 * 1024;

/// Writes every change this store holds to `path`.
pub fn export_changes(store: &wc::Store, path: &Path, force: bool) -> Result<(), String> {
    crate::files::check_target(path, force)?;
    let bundle = store.export_changes(None).map_err(|e| e.to_string())?;
    crate::files::write_private(path, &bundle, force)?;
    say!(
        "wrote this store's changes ({} bytes) to {}; carry it to the other device and run \
         `waymark import-changes` there (or import it in the app)",
        bundle.len(),
        path.display()
    );
    Ok(())
}

/// Merges the bundle in `path` into the store, all or nothing.
pub fn import_changes(store: &wc::Store, path: &Path, json: bool) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    if meta.len() > MAX_BUNDLE {
        return Err(format!(
            "{} is too large to be a bundle of changes",
            path.display()
        ));
    }
    let bundle = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report = store.import_changes(&bundle).map_err(|e| e.to_string())?;
    if json {
        Out::print_json(&json!({
            "changed": report.changed,
            "unchanged": report.unchanged,
            "refused": report.refused.iter()
                .map(|r| json!({"doc_id": r.doc_id, "reason": r.reason}))
                .collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    say!(
        "imported {}: {} records changed, {} already known",
        path.display(),
        report.changed.len(),
        report.unchanged
    );
    for r in &report.refused {
        say!("left out {}: {}", r.doc_id, r.reason);
    }
    Ok(())
}
