//! Files only the server's user can read: the data directory (0700), the SQLite database and
//! the journals SQLite keeps beside it (0600: SQLite gives its `-wal`, `-shm` and `-journal`
//! files the database file's mode), and backups (0600, created exclusively: never over an
//! existing file, never through a symlink).
//!
//! The database holds only ciphertext, but also who enrolled when, token hashes and sizes: none
//! of it is for other users of the machine.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database, its journals and backups.
pub const FILE_MODE: u32 = 0o600;

/// The files SQLite keeps next to a database, by suffix.
const JOURNALS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates `path` for writing, readable by its owner only. Fails if anything is there already,
/// a symlink included, dangling or not (`O_CREAT | O_EXCL` never follows one).
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Readies `dir` for the SQLite database file `database` in it: creates the directory 0700 (its
/// missing parents as usual), creates the database file 0600 if it is missing, and takes away
/// the group's and others' access to an existing directory, database or journal that has it.
/// Returns a line for each change made or impossible (not the owner), for the caller to warn
/// about; the server runs either way.
pub fn prepare_data_dir(dir: &Path, database: &str) -> io::Result<Vec<String>> {
    let mut notes = Vec::new();
    create_private_dir(dir)?;
    tighten(dir, DIR_MODE, &mut notes);
    let db = dir.join(database);
    match create_private(&db) {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            tighten(&db, FILE_MODE, &mut notes);
        }
        Err(err) => return Err(err),
    }
    for journal in JOURNALS {
        let path = dir.join(format!("{database}{journal}"));
        if path.exists() {
            tighten(&path, FILE_MODE, &mut notes);
        }
    }
    Ok(notes)
}

/// Creates `dir` with mode 0700 if it is missing (its parents with the usual mode).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    match builder.create(dir) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Takes the permission bits outside `mode` away from `path`, noting what it did.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32, notes: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let current = meta.permissions().mode() & 0o7777;
    if current & !mode == 0 {
        return;
    }
    let wanted = current & mode;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
        Ok(()) => notes.push(format!(
            "{} was mode {current:04o}, open to other users; changed to {wanted:04o}",
            path.display()
        )),
        Err(err) => notes.push(format!(
            "{} is mode {current:04o}, open to other users, and could not be changed to \
             {wanted:04o} ({err}); fix it by hand",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _mode: u32, _notes: &mut Vec<String>) {}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_data_directory_and_database_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/data");
        let notes = prepare_data_dir(&dir, "db.sqlite3").unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db.sqlite3")), 0o600);
    }

    #[test]
    fn an_existing_data_directory_open_to_others_is_tightened_and_said_so() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["db.sqlite3", "db.sqlite3-wal"] {
            std::fs::write(dir.join(name), b"").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        let notes = prepare_data_dir(&dir, "db.sqlite3").unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes[0].contains("was mode 0755"), "{notes:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db.sqlite3")), 0o600);
        assert_eq!(mode(&dir.join("db.sqlite3-wal")), 0o600);
        assert!(prepare_data_dir(&dir, "db.sqlite3").unwrap().is_empty());
    }

    #[test]
    fn private_files_refuse_existing_files_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        create_private(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            create_private(&file).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("missing"), &link).unwrap();
        assert!(create_private(&link).is_err());
        assert!(
            !tmp.path().join("missing").exists(),
            "the link was not followed"
        );
    }
}
