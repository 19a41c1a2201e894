//! The plaintext of a store's pages: every page of an SQLCipher database file and of its
//! write-ahead log, decrypted with the store's raw key, for tests that must show what is (and is
//! not) anywhere in a phone's files, freed pages included.

use std::io;
use std::path::Path;

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::NoPadding};

/// SQLCipher 4's defaults, which stores keep: 4096-byte pages, each ending in 80 reserved bytes
/// (a 16-byte IV, then the HMAC); the file's first 16 bytes are the salt.
const PAGE: usize = 4096;
const RESERVE: usize = 80;
const SALT: usize = 16;
/// The WAL's file header and each frame's header.
const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// Decrypts page `number` (1-based) of a store keyed with the raw `key`.
fn decrypt_page(key: &[u8; 32], number: u32, page: &[u8]) -> io::Result<Vec<u8>> {
    let start = if number == 1 { SALT } else { 0 };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an SQLCipher page");
    let iv = page
        .get(PAGE - RESERVE..PAGE - RESERVE + 16)
        .ok_or_else(bad)?;
    let mut body = page.get(start..PAGE - RESERVE).ok_or_else(bad)?.to_vec();
    cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut body)
        .map_err(|_| bad())?;
    Ok(body)
}

/// Every page of the store's database file `db` and of its write-ahead log, decrypted with its
/// raw `key` and concatenated.
pub fn plaintext(db: &Path, key: &[u8; 32]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (i, page) in std::fs::read(db)?.chunks_exact(PAGE).enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        out.extend(decrypt_page(key, number, page)?);
    }
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(wal) = std::fs::read(wal)
        && let Some(frames) = wal.get(WAL_HEADER..)
    {
        for frame in frames.chunks_exact(FRAME_HEADER + PAGE) {
            let mut number = [0; 4];
            number.copy_from_slice(&frame[..4]);
            out.extend(decrypt_page(
                key,
                u32::from_be_bytes(number),
                &frame[FRAME_HEADER..],
            )?);
        }
    }
    Ok(out)
}
