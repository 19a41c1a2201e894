//! Files the CLI writes. Exports and reports carry the team's records in plain text, so each file
//! is created readable by its owner only (0600), never through a symlink (`O_NOFOLLOW`), and
//! never over an existing file unless the user passed `--force`, which replaces a regular file
//! (and makes it 0600) but still never a symlink. The store's directory is 0700.
//!
//! The core writes exports to paths it opens itself; the CLI has it write into a private
//! staging directory inside the store's directory and copies each file to its destination from
//! there, so nothing is ever written to a destination the CLI did not open itself.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file the CLI writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories the CLI creates.
pub const DIR_MODE: u32 = 0o700;

/// Prefix of the staging directories inside the store's directory.
const STAGING_PREFIX: &str = ".export-";

/// Writes `bytes` to a new file at `path` (or over an existing regular file with `force`).
pub fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    let mut file = open_private(path, force)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opens `path` for writing as described in the module documentation.
fn open_private(path: &Path, force: bool) -> Result<File, String> {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    options.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| refusal(path, &e))?;
    // A replaced file keeps its old mode otherwise.
    #[cfg(unix)]
    if force {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    }
    Ok(file)
}

/// Checks, before any work, that `path` may be written: nothing there, or with `force` a
/// regular file; never a symlink.
pub fn check_target(path: &Path, force: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot check {}: {e}", path.display())),
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_refused(path)),
        Ok(meta) if !meta.is_file() => Err(format!(
            "{} exists and is not a regular file",
            path.display()
        )),
        Ok(_) if force => Ok(()),
        Ok(_) => Err(exists(path)),
    }
}

/// The error for a failed open, in words a coordinator can act on.
fn refusal(path: &Path, err: &io::Error) -> String {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    #[cfg(unix)]
    let is_link = is_link || err.raw_os_error() == Some(libc::ELOOP);
    if is_link {
        symlink_refused(path)
    } else if err.kind() == io::ErrorKind::AlreadyExists {
        exists(path)
    } else {
        format!("cannot create {}: {err}", path.display())
    }
}

fn symlink_refused(path: &Path) -> String {
    format!(
        "{} is a symbolic link; refusing to write through it (give the real path)",
        path.display()
    )
}

fn exists(path: &Path) -> String {
    format!(
        "{} already exists; give --force to replace it",
        path.display()
    )
}

/// Creates `dir` with mode 0700 if it is missing (its parents as usual); an existing directory
/// (or a link to one: the store's directory may live elsewhere) is used as it is.
pub fn create_private_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match private_dir_builder().create(dir) {
        Err(e) if !(e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir()) => {
            Err(format!("cannot create {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The directory a CSV export goes into: created 0700 if missing; an existing directory is used
/// as it is, but a symlink is refused like a symlinked file.
pub fn export_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_refused(dir)),
        Ok(meta) if !meta.is_dir() => {
            Err(format!("{} exists and is not a directory", dir.display()))
        }
        _ => create_private_dir(dir),
    }
}

/// A directory builder giving mode 0700.
fn private_dir_builder() -> DirBuilder {
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder
}

/// Takes other users' access away from the store's directory if it has any; says so on stderr.
#[cfg(not(unix))]
pub fn tighten_dir(_dir: &Path) {}

/// Takes other users' access away from the store's directory if it has any; says so on stderr.
#[cfg(unix)]
pub fn tighten_dir(dir: &Path) {
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !DIR_MODE == 0 {
        return;
    }
    let wanted = mode & DIR_MODE;
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(wanted)) {
        Ok(()) => eprintln!(
            "waymark: {} was mode {mode:04o}, open to other users; changed to {wanted:04o}",
            dir.display()
        ),
        Err(e) => eprintln!(
            "waymark: warning: {} is mode {mode:04o}, open to other users, and could not be \
             changed ({e})",
            dir.display()
        ),
    }
}

/// A private directory for the core to write an export into, removed (with what is in it) when
/// dropped.
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// A new staging directory inside `store_dir`; leftovers of an interrupted export are
    /// removed first.
    pub fn new(store_dir: &Path) -> Result<Staging, String> {
        if let Ok(entries) = std::fs::read_dir(store_dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(STAGING_PREFIX)
                    && entry.file_type().is_ok_and(|t| t.is_dir())
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = store_dir.join(format!("{STAGING_PREFIX}{:016x}", rand::random::<u64>()));
        private_dir_builder()
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Staging { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Copies the staged file `name` to `dest` with [`write_private`].
    pub fn deliver(&self, name: &str, dest: &Path, force: bool) -> Result<(), String> {
        let staged = self.dir.join(name);
        let bytes = std::fs::read(&staged)
            .map_err(|e| format!("cannot read the export {}: {e}", staged.display()))?;
        write_private(dest, &bytes, force)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn files_are_private_and_never_replace_or_follow_without_being_told() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("report.html");
        write_private(&file, b"one", false).unwrap();
        assert_eq!(mode(&file), 0o600);
        let err = write_private(&file, b"two", false).unwrap_err();
        assert!(err.contains("--force"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"two", true).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), 0o600, "a replaced file is made private");

        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let link = tmp.path().join("link.html");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for force in [false, true] {
            let err = write_private(&link, b"x", force).unwrap_err();
            assert!(err.contains("symbolic link"), "{err}");
            assert!(check_target(&link, force).is_err());
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn staging_is_private_and_gone_after_use() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(".export-0000000000000001")).unwrap();
        let staging = Staging::new(tmp.path()).unwrap();
        assert_eq!(mode(staging.path()), 0o700);
        assert!(
            !tmp.path().join(".export-0000000000000001").exists(),
            "a leftover is removed"
        );
        std::fs::write(staging.path().join("a.csv"), b"x").unwrap();
        let dir = staging.path().to_path_buf();
        drop(staging);
        assert!(!dir.exists());
    }
}
