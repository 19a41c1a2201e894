//! End-to-end encryption of everything that leaves the device: each Automerge chunk is sealed
//! with the workspace key (XChaCha20-Poly1305, random 192-bit nonce) and bound, through the
//! associated data, to its workspace, document and key epoch, so neither the server nor anyone
//! holding a bundle can read it, alter it, or pass it off as part of another document.
//!
//! Blobs sent through a sync server are also signed by the device that wrote them (Ed25519), so
//! a teammate can tell whose change it is and refuse changes from revoked or unknown devices.
//! Workspace keys of new epochs travel sealed to each device's X25519 key (libsodium sealed
//! boxes, `crypto_box`) and signed by the coordinator's device that made them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::Sha256;
use zeroize::Zeroizing;

use waymark_protocol::team_log::{Entry, SignedEntry};

use crate::error::{Error, Result, StorageError};
use crate::model::RecordKind;

/// Length of a workspace key in bytes.
pub(crate) const WORKSPACE_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Domain separation: a sealed blob can never be mistaken for any other Waymark ciphertext.
const AD_LABEL: &[u8] = b"waymark/blob/v1";
/// Domain separation of blob signatures.
const BLOB_SIG_LABEL: &[u8] = b"waymark/blob-signature/v1";
/// Domain separation of key envelope signatures.
const ENVELOPE_SIG_LABEL: &[u8] = b"waymark/key-envelope/v1";
/// Domain separation of join proofs.
const JOIN_PROOF_LABEL: &[u8] = b"waymark/join-proof/v2";
/// First byte of a signed blob: the format version.
const SIGNED_BLOB_VERSION: u8 = 2;
/// First byte of a signed restricted blob: sealed under a one-time key that is itself sealed to
/// the epoch's restricted key, which only coordinators hold.
const RESTRICTED_BLOB_VERSION: u8 = 3;
/// Domain separation of restricted blobs: a restricted blob never opens as another.
const RESTRICTED_AD_LABEL: &[u8] = b"waymark/restricted-blob/v1";
/// Domain separation of check-ins: a check-in's sealed details never open as a blob, nor a
/// blob as a check-in.
const CHECK_IN_AD_LABEL: &[u8] = b"waymark/check-in/v1";
/// Domain separation of the duress PIN's hash.
const PIN_LABEL: &[u8] = b"waymark/duress-pin/v1";
/// Length of a one-time key sealed to a restricted key (a sealed box of 32 bytes).
const WRAPPED_KEY_LEN: usize = 32 + 48;
/// Version byte, signer's public key and signature ahead of the sealed bytes.
const SIGNED_HEADER_LEN: usize = 1 + 32 + 64;

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

/// What is inside a sealed blob: the chunk, the kind of record it belongs to and the record's
/// generation (all hidden from the server too).
#[derive(Serialize, Deserialize)]
struct Inner {
    kind: String,
    chunk: ByteBuf,
    /// 0 until the record is first erased or redacted (left out then: blobs of records never
    /// rewritten are what they were before generations existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    generation: u32,
    /// The chunk is the whole record rewritten as generation `generation`, replacing every
    /// earlier one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    replaces: bool,
    /// For a rewrite: the last server sequence number of the record its author had seen.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    covers: u64,
    /// The chunk is a coordinator's snapshot of many records (see `sync::snapshot`), not a
    /// chunk of one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pack: bool,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a sealed chunk says of itself besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    /// The kind of record.
    pub(crate) kind: RecordKind,
    /// The record's generation: each erase or redaction rewrites the record as the next one,
    /// without the history of those before.
    pub(crate) generation: u32,
    /// Whether the chunk is a whole rewritten record that replaces earlier generations.
    pub(crate) replaces: bool,
    /// For a rewrite: the last server sequence number of the record its author had seen
    /// (changes after it are not in the rewrite).
    pub(crate) covers: u64,
    /// The chunk is a snapshot of many records (its `kind` means nothing then).
    pub(crate) pack: bool,
}

impl From<RecordKind> for ChunkMeta {
    fn from(kind: RecordKind) -> Self {
        ChunkMeta {
            kind,
            generation: 0,
            replaces: false,
            covers: 0,
            pack: false,
        }
    }
}

/// The 16 bytes of a record id (32 hex digits).
pub(crate) fn doc_id_bytes(id: &str) -> Result<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(id, &mut out)
        .map_err(|_| Error::invalid("id", "must be 32 hex digits"))?;
    Ok(out)
}

fn associated_data(workspace: &str, doc: &[u8; 16], epoch: u32) -> Vec<u8> {
    labelled_data(AD_LABEL, workspace, doc, epoch)
}

fn labelled_data(label: &[u8], workspace: &str, doc: &[u8; 16], epoch: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(label.len() + 1 + workspace.len() + 16 + 4);
    ad.extend_from_slice(label);
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
    meta: ChunkMeta,
    chunk: &[u8],
) -> Result<Vec<u8>> {
    seal_with(key, &associated_data(workspace, doc, epoch), meta, chunk)
}

fn seal_with(key: &WorkspaceKey, ad: &[u8], meta: ChunkMeta, chunk: &[u8]) -> Result<Vec<u8>> {
    let mut plain = Zeroizing::new(Vec::with_capacity(chunk.len() + 16));
    ciborium::into_writer(
        &Inner {
            kind: meta.kind.as_str().to_string(),
            chunk: ByteBuf::from(chunk),
            generation: meta.generation,
            replaces: meta.replaces,
            covers: meta.covers,
            pack: meta.pack,
        },
        &mut *plain,
    )
    .map_err(|source| StorageError::Encode {
        what: "encoding",
        source,
    })?;
    encrypt(key, ad, &plain)
}

/// XChaCha20-Poly1305 under `key` with a random nonce, which leads the output.
fn encrypt(key: &WorkspaceKey, ad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plain,
                aad: ad,
            },
        )
        .map_err(|_| Error::Storage("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`encrypt`] sealed; `None` unless it is authentic for this key and `ad`.
fn decrypt(key: &WorkspaceKey, ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).ok()?;
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(**key));
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: body, aad: ad })
        .ok()
        .map(Zeroizing::new)
}

/// Opens a sealed blob; fails with `Tampered` unless it was sealed with this key for exactly
/// this workspace, document and epoch, unaltered.
pub(crate) fn open(
    key: &WorkspaceKey,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    sealed: &[u8],
) -> Result<(ChunkMeta, Vec<u8>)> {
    open_with(key, &associated_data(workspace, doc, epoch), sealed)
}

fn open_with(key: &WorkspaceKey, ad: &[u8], sealed: &[u8]) -> Result<(ChunkMeta, Vec<u8>)> {
    let plain = decrypt(key, ad, sealed)
        .ok_or_else(|| Error::Tampered("a blob failed authentication".into()))?;
    // Authentic but undecodable means a buggy or hostile teammate's client: still refused.
    let inner: Inner = ciborium::from_reader(plain.as_slice())
        .map_err(|_| Error::Corrupt("a sealed blob holds no valid chunk".into()))?;
    let kind = RecordKind::parse(&inner.kind)
        .ok_or_else(|| Error::Corrupt("a sealed blob names an unknown record kind".into()))?;
    let meta = ChunkMeta {
        kind,
        generation: inner.generation,
        replaces: inner.replaces,
        covers: inner.covers,
        pack: inner.pack,
    };
    Ok((meta, inner.chunk.into_vec()))
}

/// A device's own key pairs for one workspace membership: Ed25519 to sign what it writes,
/// X25519 to receive workspace keys. Kept only inside the encrypted store.
pub(crate) struct DeviceKeys {
    sign: SigningKey,
    boxed: crypto_box::SecretKey,
}

impl DeviceKeys {
    /// Length of [`DeviceKeys::to_bytes`].
    pub(crate) const LEN: usize = 64;

    /// Fresh random key pairs.
    pub(crate) fn generate() -> Self {
        let sign: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let boxed: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        Self {
            sign: SigningKey::from_bytes(&sign),
            boxed: crypto_box::SecretKey::from_bytes(*boxed),
        }
    }

    /// The two secret keys, for the store.
    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::LEN));
        out.extend_from_slice(&self.sign.to_bytes());
        out.extend_from_slice(&self.boxed.to_bytes());
        out
    }

    /// Reads stored keys; `None` if the bytes are not keys.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN {
            return None;
        }
        let sign = Zeroizing::new(<[u8; 32]>::try_from(&b[..32]).ok()?);
        let boxed = Zeroizing::new(<[u8; 32]>::try_from(&b[32..]).ok()?);
        Some(Self {
            sign: SigningKey::from_bytes(&sign),
            boxed: crypto_box::SecretKey::from_bytes(*boxed),
        })
    }

    /// The Ed25519 public key.
    pub(crate) fn sign_public(&self) -> [u8; 32] {
        self.sign.verifying_key().to_bytes()
    }

    /// The X25519 public key.
    pub(crate) fn box_public(&self) -> [u8; 32] {
        self.boxed.public_key().to_bytes()
    }
}

fn blob_signed_message(ad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BLOB_SIG_LABEL.len() + ad.len() + sealed.len());
    m.extend_from_slice(BLOB_SIG_LABEL);
    m.extend_from_slice(ad);
    m.extend_from_slice(sealed);
    m
}

/// Seals a chunk like [`seal`] and signs the result with the device's key: the blob a sync
/// server receives.
pub(crate) fn seal_signed(
    key: &WorkspaceKey,
    signer: &DeviceKeys,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    meta: ChunkMeta,
    chunk: &[u8],
) -> Result<Vec<u8>> {
    let sealed = seal(key, workspace, doc, epoch, meta, chunk)?;
    let ad = associated_data(workspace, doc, epoch);
    let signature = signer.sign.sign(&blob_signed_message(&ad, &sealed));
    let mut out = Vec::with_capacity(SIGNED_HEADER_LEN + sealed.len());
    out.push(SIGNED_BLOB_VERSION);
    out.extend_from_slice(&signer.sign_public());
    out.extend_from_slice(&signature.to_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Seals a chunk of a restricted record and signs it: under a one-time key sealed to the
/// epoch's restricted key (`restricted_public`), so that only coordinators can open it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn seal_restricted_signed(
    restricted_public: &[u8; 32],
    signer: &DeviceKeys,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    meta: ChunkMeta,
    chunk: &[u8],
) -> Result<Vec<u8>> {
    let one_time = new_workspace_key();
    let wrapped = crypto_box::PublicKey::from_bytes(*restricted_public)
        .seal(&mut crypto_box::aead::OsRng, one_time.as_slice())
        .map_err(|_| Error::Storage("sealing a key failed".into()))?;
    let ad = labelled_data(RESTRICTED_AD_LABEL, workspace, doc, epoch);
    let mut body = wrapped;
    body.extend(seal_with(&one_time, &ad, meta, chunk)?);
    let signature = signer.sign.sign(&blob_signed_message(&ad, &body));
    let mut out = Vec::with_capacity(SIGNED_HEADER_LEN + body.len());
    out.push(RESTRICTED_BLOB_VERSION);
    out.extend_from_slice(&signer.sign_public());
    out.extend_from_slice(&signature.to_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Whether a signed blob is a restricted record's (only coordinators can open it).
pub(crate) fn is_restricted_blob(blob: &[u8]) -> bool {
    blob.first() == Some(&RESTRICTED_BLOB_VERSION)
}

/// Opens a restricted blob whose signature [`verify_blob_signature`] accepted, with the secret
/// half of its epoch's restricted key.
pub(crate) fn open_restricted_verified(
    restricted_secret: &[u8; 32],
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    blob: &[u8],
) -> Result<(ChunkMeta, Vec<u8>)> {
    let tampered = || Error::Tampered("a restricted blob failed authentication".into());
    if !is_restricted_blob(blob) || blob.len() < SIGNED_HEADER_LEN + WRAPPED_KEY_LEN {
        return Err(tampered());
    }
    let (wrapped, sealed) = blob[SIGNED_HEADER_LEN..].split_at(WRAPPED_KEY_LEN);
    let secret = crypto_box::SecretKey::from_bytes(*restricted_secret);
    let one_time = Zeroizing::new(secret.unseal(wrapped).map_err(|_| tampered())?);
    let one_time = key_from_bytes(&one_time).ok_or_else(tampered)?;
    open_with(
        &one_time,
        &labelled_data(RESTRICTED_AD_LABEL, workspace, doc, epoch),
        sealed,
    )
}

/// A fresh restricted key pair: the secret half and the public half.
pub(crate) fn new_restricted_pair() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
    let public = crypto_box::SecretKey::from_bytes(*secret)
        .public_key()
        .to_bytes();
    (secret, public)
}

/// The public half of a restricted key's secret half.
pub(crate) fn restricted_public(secret: &[u8; 32]) -> [u8; 32] {
    crypto_box::SecretKey::from_bytes(*secret)
        .public_key()
        .to_bytes()
}

/// Seals a restricted key's secret half to a coordinator's box key (a grant in the team log).
pub(crate) fn grant_to(box_key: &[u8; 32], secret: &[u8; 32]) -> Result<Vec<u8>> {
    crypto_box::PublicKey::from_bytes(*box_key)
        .seal(&mut crypto_box::aead::OsRng, secret.as_slice())
        .map_err(|_| Error::Storage("sealing a key failed".into()))
}

/// Opens a grant sealed to this device; `None` if it does not open or holds no key.
pub(crate) fn open_grant(own: &DeviceKeys, sealed: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let plain = Zeroizing::new(own.boxed.unseal(sealed).ok()?);
    <[u8; 32]>::try_from(plain.as_slice())
        .ok()
        .map(Zeroizing::new)
}

/// The public key a signed blob claims to be signed by, before any check; `Tampered` if the
/// bytes are not a signed blob at all.
pub(crate) fn blob_signer(blob: &[u8]) -> Result<[u8; 32]> {
    if blob.len() < SIGNED_HEADER_LEN
        || (blob[0] != SIGNED_BLOB_VERSION && blob[0] != RESTRICTED_BLOB_VERSION)
    {
        return Err(Error::Tampered("a blob carries no device signature".into()));
    }
    <[u8; 32]>::try_from(&blob[1..33])
        .map_err(|_| Error::Tampered("a blob carries no device signature".into()))
}

/// Verifies a signed blob's signature (by the key it names) and opens it; `Tampered` unless
/// both hold for exactly this workspace, document and epoch.
pub(crate) fn open_signed(
    key: &WorkspaceKey,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    blob: &[u8],
) -> Result<(ChunkMeta, Vec<u8>)> {
    verify_blob_signature(workspace, doc, epoch, blob)?;
    open_verified(key, workspace, doc, epoch, blob)
}

/// Checks a signed blob's signature alone (what [`open_signed`] checks first): needs no key,
/// so a page of blobs can be checked on several threads before it is applied.
pub(crate) fn verify_blob_signature(
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    blob: &[u8],
) -> Result<()> {
    let signer = blob_signer(blob)?;
    let bad = || Error::Tampered("a blob's device signature is invalid".into());
    let verifying = VerifyingKey::from_bytes(&signer).map_err(|_| bad())?;
    let signature =
        ed25519_dalek::Signature::from_slice(&blob[33..SIGNED_HEADER_LEN]).map_err(|_| bad())?;
    let sealed = &blob[SIGNED_HEADER_LEN..];
    let ad = match is_restricted_blob(blob) {
        true => labelled_data(RESTRICTED_AD_LABEL, workspace, doc, epoch),
        false => associated_data(workspace, doc, epoch),
    };
    verifying
        .verify_strict(&blob_signed_message(&ad, sealed), &signature)
        .map_err(|_| bad())
}

/// Opens a signed blob whose signature [`verify_blob_signature`] accepted.
pub(crate) fn open_verified(
    key: &WorkspaceKey,
    workspace: &str,
    doc: &[u8; 16],
    epoch: u32,
    blob: &[u8],
) -> Result<(ChunkMeta, Vec<u8>)> {
    blob_signer(blob)?;
    if is_restricted_blob(blob) {
        return Err(Error::Tampered(
            "a restricted blob opens only with the restricted key".into(),
        ));
    }
    open(key, workspace, doc, epoch, &blob[SIGNED_HEADER_LEN..])
}

/// Seals the details and state of check-in `id` for `workspace` under the key of `epoch` and
/// signs them with the device's key: teammates open them, the server cannot, and nobody but
/// the device can make the team believe it closed a check-in.
pub(crate) fn seal_check_in(
    key: &WorkspaceKey,
    signer: &DeviceKeys,
    workspace: &str,
    id: &[u8; 16],
    epoch: u32,
    plain: &[u8],
) -> Result<Vec<u8>> {
    let ad = labelled_data(CHECK_IN_AD_LABEL, workspace, id, epoch);
    let sealed = encrypt(key, &ad, plain)?;
    let signature = signer.sign.sign(&blob_signed_message(&ad, &sealed));
    let mut out = Vec::with_capacity(SIGNED_HEADER_LEN + sealed.len());
    out.push(SIGNED_BLOB_VERSION);
    out.extend_from_slice(&signer.sign_public());
    out.extend_from_slice(&signature.to_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal_check_in`] sealed, if signed by `signer` for exactly this workspace,
/// check-in and epoch; `Tampered` otherwise.
pub(crate) fn open_check_in(
    key: &WorkspaceKey,
    signer: &[u8; 32],
    workspace: &str,
    id: &[u8; 16],
    epoch: u32,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let bad = || Error::Tampered("a check-in is not sealed and signed by its device".into());
    if sealed.len() < SIGNED_HEADER_LEN || sealed[0] != SIGNED_BLOB_VERSION {
        return Err(bad());
    }
    if sealed[1..33] != signer[..] {
        return Err(bad());
    }
    let verifying = VerifyingKey::from_bytes(signer).map_err(|_| bad())?;
    let signature =
        ed25519_dalek::Signature::from_slice(&sealed[33..SIGNED_HEADER_LEN]).map_err(|_| bad())?;
    let ad = labelled_data(CHECK_IN_AD_LABEL, workspace, id, epoch);
    let body = &sealed[SIGNED_HEADER_LEN..];
    verifying
        .verify_strict(&blob_signed_message(&ad, body), &signature)
        .map_err(|_| bad())?;
    decrypt(key, &ad, body).ok_or_else(bad)
}

/// The hash a duress PIN is kept as (Argon2id over the PIN with a random `salt`): a store
/// opened by someone else does not show the PIN, and guessing it costs an Argon2id evaluation a
/// try.
pub(crate) fn pin_hash(pin: &str, salt: &[u8; 16]) -> Result<[u8; 32]> {
    let mut input = PIN_LABEL.to_vec();
    input.extend_from_slice(pin.as_bytes());
    let input = Zeroizing::new(input);
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(&input, salt, &mut out)
        .map_err(|source| StorageError::Hash {
            what: "hashing a PIN failed",
            source,
        })?;
    Ok(out)
}

fn envelope_message(workspace: &str, device_id: &str, epoch: u32, sealed_key: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ENVELOPE_SIG_LABEL.len() + 80 + sealed_key.len());
    m.extend_from_slice(ENVELOPE_SIG_LABEL);
    for part in [workspace.as_bytes(), device_id.as_bytes()] {
        m.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(part);
    }
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(sealed_key);
    m
}

/// Seals a workspace key to a device's X25519 public key and signs the envelope.
pub(crate) fn wrap_key(
    signer: &DeviceKeys,
    workspace: &str,
    device_id: &str,
    recipient_box_key: &[u8; 32],
    epoch: u32,
    key: &WorkspaceKey,
) -> Result<waymark_protocol::KeyEnvelope> {
    let recipient = crypto_box::PublicKey::from_bytes(*recipient_box_key);
    let sealed_key = recipient
        .seal(&mut crypto_box::aead::OsRng, key.as_slice())
        .map_err(|_| Error::Storage("sealing a key failed".into()))?;
    let signature = signer
        .sign
        .sign(&envelope_message(workspace, device_id, epoch, &sealed_key));
    Ok(waymark_protocol::KeyEnvelope {
        device_id: device_id.to_string(),
        epoch,
        sealed_key,
        signer_key: signer.sign_public(),
        signature: signature.to_bytes(),
    })
}

/// Checks an envelope's signature and opens the key sealed in it with this device's keys.
pub(crate) fn unwrap_key(
    own: &DeviceKeys,
    workspace: &str,
    envelope: &waymark_protocol::KeyEnvelope,
) -> Result<WorkspaceKey> {
    let bad = || Error::Tampered("a key envelope failed authentication".into());
    let verifying = VerifyingKey::from_bytes(&envelope.signer_key).map_err(|_| bad())?;
    let signature = ed25519_dalek::Signature::from_bytes(&envelope.signature);
    verifying
        .verify_strict(
            &envelope_message(
                workspace,
                &envelope.device_id,
                envelope.epoch,
                &envelope.sealed_key,
            ),
            &signature,
        )
        .map_err(|_| bad())?;
    let plain = Zeroizing::new(own.boxed.unseal(&envelope.sealed_key).map_err(|_| bad())?);
    key_from_bytes(&plain).ok_or_else(bad)
}

/// What a device enrols with and a coordinator admits: its public keys, its name and the
/// Automerge actor its changes carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    pub sign_key: &'a [u8; 32],
    pub box_key: &'a [u8; 32],
    pub name: &'a str,
    pub actor: Option<&'a [u8]>,
}

impl Identity<'_> {
    /// The bytes a proof or a code covers: both keys and the actor (length-prefixed).
    fn binding(&self) -> Zeroizing<Vec<u8>> {
        let actor = self.actor.unwrap_or(&[]);
        let mut out = Zeroizing::new(Vec::with_capacity(64 + 8 + actor.len()));
        out.extend_from_slice(self.sign_key);
        out.extend_from_slice(self.box_key);
        out.extend_from_slice(&(actor.len() as u64).to_be_bytes());
        out.extend_from_slice(actor);
        out
    }
}

/// The proof a device joining by an invite sends with its identity: an HMAC under the
/// invite's one-time secret, which the server never sees, so that the coordinator who made
/// the invite knows the keys, name and actor the server lists are the device's own.
pub(crate) fn join_proof(secret: &[u8], who: &Identity<'_>) -> [u8; 32] {
    join_mac(secret, who).finalize().into_bytes().into()
}

/// Whether `proof` is the join proof of `who` under `secret` (compared in constant time).
pub(crate) fn verify_join_proof(secret: &[u8], who: &Identity<'_>, proof: &[u8]) -> bool {
    join_mac(secret, who).verify_slice(proof).is_ok()
}

fn join_mac(secret: &[u8], who: &Identity<'_>) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(JOIN_PROOF_LABEL);
    mac.update(&who.binding());
    mac.update(&(who.name.len() as u64).to_be_bytes());
    mac.update(who.name.as_bytes());
    mac
}

/// Domain separation of verification codes; also the Argon2 salt.
const CODE_LABEL: &[u8] = b"waymark/verification-code/v2";
/// Digits of a verification code.
pub(crate) const CODE_DIGITS: u32 = 12;

/// A verification code: twelve digits derived from a device's public keys and actor, shown on the device
/// itself and, for the keys the server lists for it, on a coordinator's device, so that people
/// comparing them in person know the server did not substitute keys.
///
/// A server that wanted to substitute keys of its own would have to find key pairs whose code
/// matches the device's: 10^12 candidates, and each one costs an Argon2id evaluation (19 MiB,
/// two passes), so that matching one code takes centuries of a computer's time
/// (`cargo bench -p waymark-e2e --bench team` prints the cost per candidate).
pub(crate) fn verification_code(workspace: &str, who: &Identity<'_>) -> Result<String> {
    let input = who.binding();
    // The workspace in the salt: work spent grinding codes for one team's devices is no use
    // against another's.
    let mut salt = CODE_LABEL.to_vec();
    salt.extend_from_slice(workspace.as_bytes());
    let mut out = [0u8; 8];
    argon2::Argon2::default()
        .hash_password_into(&input, &salt, &mut out)
        .map_err(|source| StorageError::Hash {
            what: "deriving a verification code failed",
            source,
        })?;
    let n = u64::from_be_bytes(out) % 10u64.pow(CODE_DIGITS);
    Ok(format!(
        "{:04} {:04} {:04}",
        n / 100_000_000,
        n / 10_000 % 10_000,
        n % 10_000
    ))
}

/// Signs a team log entry with a device's key.
pub(crate) fn sign_log_entry(signer: &DeviceKeys, entry: &Entry) -> SignedEntry {
    let bytes = entry.to_bytes();
    SignedEntry {
        signature: signer.sign.sign(&Entry::message(&bytes)).to_bytes(),
        entry: bytes,
    }
}

/// Label of the tip key's derivation from the restricted key (docs/0008-tips.md).
const TIP_KEY_LABEL: &[u8] = b"waymark/tip-key/v1:";

/// The tip secret key of the epoch whose restricted key's secret half is `restricted_secret`:
/// only devices holding the restricted key (coordinators) can derive it.
pub(crate) fn tip_secret(restricted_secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    use sha2::Digest;
    let mut digest: Zeroizing<[u8; 64]> = Zeroizing::new(
        sha2::Sha512::new()
            .chain_update(TIP_KEY_LABEL)
            .chain_update(restricted_secret)
            .finalize()
            .into(),
    );
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&digest[..32]);
    zeroize::Zeroize::zeroize(&mut *digest);
    secret
}

/// The public half of a tip secret key: what the tip page seals to.
pub(crate) fn tip_public(tip_secret: &[u8; 32]) -> [u8; 32] {
    crypto_box::SecretKey::from_bytes(*tip_secret)
        .public_key()
        .to_bytes()
}

/// The fingerprint of a tip public key that the page shows and posters print: the first 8
/// bytes of its SHA-512, hex, in groups of four.
pub(crate) fn tip_fingerprint(public: &[u8; 32]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha512::digest(public);
    hex::encode(&digest[..8])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opens what a tipster's browser sealed with `nacl.box` from `ephemeral` to the tip key.
pub(crate) fn open_tip(
    tip_secret: &[u8; 32],
    ephemeral: &[u8; 32],
    nonce: &[u8; 24],
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let b = crypto_box::SalsaBox::new(
        &crypto_box::PublicKey::from_bytes(*ephemeral),
        &crypto_box::SecretKey::from_bytes(*tip_secret),
    );
    crypto_box::aead::Aead::decrypt(&b, nonce.into(), sealed)
        .map_err(|_| Error::Tampered("a tip failed authentication".into()))
}

/// Seals `plain` with `nacl.box` from a fresh one-time key to `to` (a tipster's reply key, or
/// the tip key for a tipster): the one-time public key, the nonce and the sealed bytes.
pub(crate) fn seal_box_once(to: &[u8; 32], plain: &[u8]) -> Result<([u8; 32], [u8; 24], Vec<u8>)> {
    let one_time = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
    let nonce: [u8; 24] = rand::random();
    let b = crypto_box::SalsaBox::new(&crypto_box::PublicKey::from_bytes(*to), &one_time);
    let sealed = crypto_box::aead::Aead::encrypt(&b, (&nonce).into(), plain)
        .map_err(|_| Error::Storage("sealing failed".into()))?;
    Ok((one_time.public_key().to_bytes(), nonce, sealed))
}

/// Opens a `nacl.box` sealed to `secret` from `from` (a tipster reading a reply).
pub(crate) fn open_box(
    secret: &[u8; 32],
    from: &[u8; 32],
    nonce: &[u8; 24],
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let b = crypto_box::SalsaBox::new(
        &crypto_box::PublicKey::from_bytes(*from),
        &crypto_box::SecretKey::from_bytes(*secret),
    );
    crypto_box::aead::Aead::decrypt(&b, nonce.into(), sealed)
        .map_err(|_| Error::Tampered("a sealed reply failed authentication".into()))
}

/// Signs a tip page statement with this device's team-log key.
pub(crate) fn sign_statement(signer: &DeviceKeys, statement: &[u8]) -> [u8; 64] {
    signer.sign.sign(statement).to_bytes()
}

/// Whether `signature` is `sign_key`'s over `statement`.
pub(crate) fn statement_signed_by(sign_key: &[u8; 32], statement: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(sign_key) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(statement, &sig).is_ok()
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
        let sealed = seal(&key, WS, &doc, 3, RecordKind::Visit.into(), b"chunk bytes").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"chunk"), "no plaintext");
        let (meta, chunk) = open(&key, WS, &doc, 3, &sealed).unwrap();
        assert_eq!(
            (meta.kind, chunk.as_slice()),
            (RecordKind::Visit, &b"chunk bytes"[..])
        );

        let tampered =
            |r: Result<(ChunkMeta, Vec<u8>)>| assert!(matches!(r, Err(Error::Tampered(_))));
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
        let again = seal(&key, WS, &doc, 3, RecordKind::Visit.into(), b"chunk bytes").unwrap();
        assert_ne!(again, sealed, "a fresh nonce every time");
    }

    #[test]
    fn a_signed_blob_names_its_signer_and_fails_when_any_byte_changes() {
        let key = new_workspace_key();
        let device = DeviceKeys::generate();
        let doc = [7u8; 16];
        let blob = seal_signed(
            &key,
            &device,
            WS,
            &doc,
            1,
            RecordKind::Workshop.into(),
            b"c",
        )
        .unwrap();
        assert_eq!(blob_signer(&blob).unwrap(), device.sign_public());
        let (meta, chunk) = open_signed(&key, WS, &doc, 1, &blob).unwrap();
        assert_eq!(
            (meta.kind, chunk.as_slice()),
            (RecordKind::Workshop, &b"c"[..])
        );
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(
                    open_signed(&key, WS, &doc, 1, &bad),
                    Err(Error::Tampered(_))
                ),
                "byte {i}"
            );
        }
        // Re-signed by another device over the same sealed bytes: a different signer.
        let other = DeviceKeys::generate();
        let mut forged = blob.clone();
        forged[1..33].copy_from_slice(&other.sign_public());
        assert!(open_signed(&key, WS, &doc, 1, &forged).is_err());
        assert!(open_signed(&key, WS, &[8; 16], 1, &blob).is_err(), "moved");
        assert!(blob_signer(&blob[..50]).is_err());
        let unsigned = seal(&key, WS, &doc, 1, RecordKind::Visit.into(), b"c").unwrap();
        assert!(open_signed(&key, WS, &doc, 1, &unsigned).is_err());
    }

    #[test]
    fn a_wrapped_key_opens_only_for_its_device_and_only_unaltered() {
        let coordinator = DeviceKeys::generate();
        let member = DeviceKeys::generate();
        let key = new_workspace_key();
        let env = wrap_key(&coordinator, WS, "dev1", &member.box_public(), 4, &key).unwrap();
        assert_eq!(*unwrap_key(&member, WS, &env).unwrap(), *key);
        assert!(
            unwrap_key(&coordinator, WS, &env).is_err(),
            "not sealed to it"
        );
        let mut moved = env.clone();
        moved.epoch = 5;
        assert!(unwrap_key(&member, WS, &moved).is_err(), "epoch is signed");
        let mut other_ws = env.clone();
        other_ws.device_id = "dev2".into();
        assert!(
            unwrap_key(&member, WS, &other_ws).is_err(),
            "recipient is signed"
        );
        assert!(unwrap_key(&member, "fedcba9876543210fedcba9876543210", &env).is_err());
        let mut flipped = env.clone();
        flipped.sealed_key[40] ^= 1;
        assert!(unwrap_key(&member, WS, &flipped).is_err());
        let restored = DeviceKeys::from_bytes(&member.to_bytes()).unwrap();
        assert_eq!(restored.box_public(), member.box_public());
        assert_eq!(restored.sign_public(), member.sign_public());
        assert!(DeviceKeys::from_bytes(&[0; 10]).is_none());
    }

    #[test]
    fn a_join_proof_covers_keys_name_and_actor_and_a_code_keys_and_actor() {
        let keys: Vec<[u8; 32]> = (0..4).map(|n| [n; 32]).collect();
        let who =
            |sign: usize, boxk: usize, name: &'static str, actor: Option<&'static [u8]>| Identity {
                sign_key: &keys[sign],
                box_key: &keys[boxk],
                name,
                actor,
            };
        let me = who(1, 2, "Phone 1", Some(b"actor-1"));
        let p = join_proof(b"secret", &me);
        let code = verification_code(WS, &me).unwrap();
        assert!(verify_join_proof(b"secret", &me, &p));
        assert!(!verify_join_proof(b"secret", &me, &p[..31]));
        assert!(!verify_join_proof(b"secreT", &me, &p));
        let renamed = who(1, 2, "Phone 2", Some(b"actor-1"));
        assert!(!verify_join_proof(b"secret", &renamed, &p));
        assert_eq!(
            code,
            verification_code(WS, &renamed).unwrap(),
            "names are shown anyway"
        );
        for other in [
            who(3, 2, "Phone 1", Some(b"actor-1")),
            who(1, 3, "Phone 1", Some(b"actor-1")),
            who(1, 2, "Phone 1", Some(b"actor-2")),
            who(1, 2, "Phone 1", None),
        ] {
            assert!(!verify_join_proof(b"secret", &other, &p), "{other:?}");
            assert_ne!(code, verification_code(WS, &other).unwrap(), "{other:?}");
        }
        assert_eq!(code, verification_code(WS, &me).unwrap(), "stable");
        assert_ne!(code, verification_code("another team", &me).unwrap());
        assert_eq!(code.len(), 14, "{code}");
        assert_eq!(code.chars().filter(char::is_ascii_digit).count(), 12);
    }
}
