//! The store key: a passphrase stretched by Argon2id into the store's 32-byte key.
//!
//! Phones keep a random key in the platform keystore; a laptop has no such thing that works the
//! same everywhere, so the coordinator types a passphrase (or sets `WAYMARK_PASSPHRASE` for
//! scripts) and Argon2id (RustCrypto `argon2`, its default parameters: 19 MiB, 2 passes, 1 lane)
//! turns it into the key, with a random 16-byte salt kept in `waymark.salt` beside the store.
//! The passphrase is never taken from the command line, where other users could read it in the
//! process list and the shell would keep it in its history.

use std::path::Path;

use argon2::Argon2;
use zeroize::Zeroizing;

/// Environment variable holding the passphrase (for scripts and tests).
pub const PASSPHRASE_ENV: &str = "WAYMARK_PASSPHRASE";

/// Length of the salt in bytes.
const SALT_LEN: usize = 16;

/// The store's key, derived from the passphrase; creates the salt for a new store.
pub fn store_key(salt_path: &Path, new_store: bool) -> Result<Zeroizing<[u8; 32]>, String> {
    let salt = if new_store && !salt_path.exists() {
        let salt: [u8; SALT_LEN] = rand::random();
        crate::files::write_private(salt_path, hex(&salt).as_bytes(), false)?;
        salt.to_vec()
    } else {
        read_salt(salt_path)?
    };
    let pass = passphrase(new_store)?;
    derive(pass.as_bytes(), &salt)
}

/// Argon2id of `pass` with `salt` into 32 bytes.
pub fn derive(pass: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::default()
        .hash_password_into(pass, salt, key.as_mut())
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(key)
}

fn read_salt(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the salt file {} ({e}); it is created with the store and needed to open it",
            path.display()
        )
    })?;
    let text = text.trim();
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    match bytes {
        Some(b) if b.len() == SALT_LEN => Ok(b),
        _ => Err(format!("the salt file {} is damaged", path.display())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The passphrase from the environment, or typed at the terminal (twice for a new store).
fn passphrase(new_store: bool) -> Result<Zeroizing<String>, String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if p.is_empty() {
            return Err(format!("{PASSPHRASE_ENV} is empty"));
        }
        return Ok(Zeroizing::new(p));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(Zeroizing::new)
            .map_err(|e| {
                format!("cannot read a passphrase ({e}): set {PASSPHRASE_ENV} or run in a terminal")
            })
    };
    if !new_store {
        return prompt("Store passphrase: ");
    }
    let first = prompt("New store passphrase: ")?;
    if first.chars().count() < 8 {
        return Err("choose a passphrase of at least 8 characters".into());
    }
    let again = prompt("Same passphrase again: ")?;
    if *first != *again {
        return Err("the two passphrases differ; nothing was created".into());
    }
    Ok(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_same_passphrase_and_salt_give_the_same_key_and_another_salt_does_not() {
        let a = derive(b"correct horse", &[1; 16]).unwrap();
        let b = derive(b"correct horse", &[1; 16]).unwrap();
        let c = derive(b"correct horse", &[2; 16]).unwrap();
        let d = derive(b"correct horsf", &[1; 16]).unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
        assert_ne!(*a, *d);
    }

    #[test]
    fn a_damaged_salt_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("waymark.salt");
        std::fs::write(&p, "zz").unwrap();
        assert!(read_salt(&p).unwrap_err().contains("damaged"));
        std::fs::write(&p, hex(&[9; 16])).unwrap();
        assert_eq!(read_salt(&p).unwrap(), vec![9; 16]);
    }
}
