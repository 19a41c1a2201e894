//! End-to-end encryption of everything that leaves the device: each Automerge chunk is sealed
//! with the workspace key (XChaCha20-Poly1305, random 192-bit nonce) and bound, through the
//! associated data, to its workspace, document and key epoch, so neither the server nor anyone
//! holding a bundle can read it, alter it, or pass it off as part of another document.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::model::RecordKind;

/// Length of a workspace key in bytes.
pub(crate) const WORKSPACE_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Domain separation: a sealed blob can never be mistaken for any other Waymark ciphertext.
const AD_LABEL: &[u8] = b"waymark/blob/v1";

/// A workspace key, wiped from memory when dropped.
pub(crate) type WorkspaceKey = Zeroizing<[u8; WORKSPACE_KEY_LEN]>;

/// A fresh random workspace key.
pub(crate) fn new_workspace_key() -> WorkspaceKey {
    Zeroizing::new(rand::random())
}

/// Reads a stored key; `None` if the bytes are not a key.
pub(crate) fn key_from_bytes(b: &[u8]) -> Option<WorkspaceKey> {
    <[u8; WORKSPACE_KEY_LEN]>::try_from(b)
        .ok()
        .map(Zeroizing::new)
}

/// What is inside a sealed blob: the chunk and the kind of record it belongs to (hidden from
/// the server too).
#[derive(Serialize, Deserialize)]
struct Inner {
    kind: String,
    chunk: ByteBuf,
}

/// The 16 bytes of a record id (32 hex digits).
pub(crate) fn doc_id_bytes(id: &str) -> Result<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(id, &mut out)
        .map_err(|_| Error::invalid("id", "must be 32 hex digits"))?;
    Ok(out)
}

fn associated_data(workspace: &str, doc: &[u8; 16], epoch: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_LABEL.len() + 1 + workspace.len() + 16 + 4);
    ad.extend_from_slice(AD_LABEL);
    // Length-prefixed so that no two (workspace, doc) pairs share an encoding.
    ad.push(u8::try_from(workspace.len()).unwrap_or(u8::MAX));
    ad.extend_from_slice(workspace.as_bytes());
    ad.extend_from_slice(doc);
    ad.extend_from_slice(&epoch.to_be_bytes());
    ad
}

/// Seals one chunk of document `doc` for `workspace` under the key of `epoch`.
pub(crate) fn seal(
    key: &WorkspaceKey,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    kind: RecordKind,
    chunk: &[u8],
) -> Result<Vec<u8>> {
    let mut plain = Zeroizing::new(Vec::with_capacity(chunk.len() + 16));
    ciborium::into_writer(
        &Inner {
            kind: kind.as_str().to_string(),
            chunk: ByteBuf::from(chunk),
        },
        &mut *plain,
    )
    .map_err(|e| Error::Storage(format!("encoding: {e}")))?;
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let ad = associated_data(workspace, doc, epoch);
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &ad,
            },
        )
        .map_err(|_| Error::Storage("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a sealed blob; fails with `Tampered` unless it was sealed with this key for exactly
/// this workspace, document and epoch, unaltered.
pub(crate) fn open(
    key: &WorkspaceKey,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    sealed: &[u8],
) -> Result<(RecordKind, Vec<u8>)> {
    let tampered = || Error::Tampered("a blob failed authentication".into());
    if sealed.len() < NONCE_LEN + 16 {
        return Err(tampered());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| tampered())?;
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key));
    let ad = associated_data(workspace, doc, epoch);
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &ad,
                },
            )
            .map_err(|_| tampered())?,
    );
    // Authentic but undecodable means a buggy or hostile teammate's client: still refused.
    let inner: Inner = ciborium::from_reader(plain.as_slice())
        .map_err(|_| Error::Corrupt("a sealed blob holds no valid chunk".into()))?;
    let kind = RecordKind::parse(&inner.kind)
        .ok_or_else(|| Error::Corrupt("a sealed blob names an unknown record kind".into()))?;
    Ok((kind, inner.chunk.into_vec()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const WS: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_chunk_opens_only_in_its_own_place() {
        let key = new_workspace_key();
        let doc = [7u8; 16];
        let sealed = seal(&key, WS, &doc, 3, RecordKind::Visit, b"chunk bytes").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"chunk"), "no plaintext");
        let (kind, chunk) = open(&key, WS, &doc, 3, &sealed).unwrap();
        assert_eq!(
            (kind, chunk.as_slice()),
            (RecordKind::Visit, &b"chunk bytes"[..])
        );

        let tampered =
            |r: Result<(RecordKind, Vec<u8>)>| assert!(matches!(r, Err(Error::Tampered(_))));
        tampered(open(&key, WS, &[8u8; 16], 3, &sealed)); // moved to another document
        tampered(open(
            &key,
            "fedcba9876543210fedcba9876543210",
            &doc,
            3,
            &sealed,
        )); // another workspace
        tampered(open(&key, WS, &doc, 4, &sealed)); // another epoch
        tampered(open(&new_workspace_key(), WS, &doc, 3, &sealed)); // another key
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        tampered(open(&key, WS, &doc, 3, &flipped));
        tampered(open(&key, WS, &doc, 3, &sealed[..20]));
        let again = seal(&key, WS, &doc, 3, RecordKind::Visit, b"chunk bytes").unwrap();
        assert_ne!(again, sealed, "a fresh nonce every time");
    }
}
