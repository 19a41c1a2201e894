//! A pull answer written as its wire bytes while the rows are read.
//!
//! A page is mostly ciphertext (256 KiB by default) served to every device of a team, so the
//! server's main cost under load is moving those bytes. [`PullPageWriter`] copies each ciphertext
//! once, from the database row into the answer, instead of into a [`PulledBlob`] first and then
//! through serde into a growing buffer. The bytes are exactly what
//! [`waymark_protocol::encode`] makes of the same [`PullResponse`] (a test compares them), so
//! clients cannot tell the difference.
//!
//! The CBOR written here (RFC 8949) is a map per struct with its fields' names as text keys, in
//! declaration order, integers in their shortest form and byte strings for the `serde_bytes`
//! fields: the encoding ciborium gives those types.

use waymark_protocol::{ChainHash, ContentId, DocId, PullResponse, PulledBlob};

/// Room kept in front of the blobs for the answer's opening (map header, `"blobs"` and the array
/// header), written once the number of blobs is known: 1 + 6 + at most 9 bytes.
const PREFIX: usize = 16;

/// CBOR major types used here.
const UNSIGNED: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;

/// A pull answer in its wire form, and how many blobs it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPull {
    /// Blobs in the answer.
    pub blobs: usize,
    buffer: Vec<u8>,
    start: usize,
    /// Where the value of `tips`, the answer's last item, starts in `buffer`.
    tips_at: usize,
}

impl EncodedPull {
    /// Encodes an answer built the ordinary way.
    pub fn from_response(page: &PullResponse) -> Self {
        let budget = page.blobs.iter().map(|b| b.ciphertext.len()).sum();
        let mut writer = PullPageWriter::with_capacity(budget);
        for blob in &page.blobs {
            writer.blob(&BlobRef::from(blob));
        }
        writer.finish(&PageEnd {
            more: page.more,
            head: page.head,
            team_version: page.team_version,
            chain_after: page.chain_after,
            chain_last: page.chain_last,
            chain_head: page.chain_head,
            check_ins: page.check_ins,
            tips: page.tips,
        })
    }

    /// The same answer saying no tip is waiting: what a device that is not a coordinator's is
    /// told (only coordinators' devices can open tips, and the rest need not know of them).
    pub fn without_tips(mut self) -> Self {
        self.buffer.truncate(self.tips_at);
        head(&mut self.buffer, UNSIGNED, 0);
        self
    }

    /// The CBOR bytes of the answer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or_default()
    }

    /// The buffer holding the answer and where in it the answer starts (so it can be sent
    /// without copying).
    pub fn into_parts(self) -> (Vec<u8>, usize) {
        (self.buffer, self.start)
    }
}

/// One blob of a page, borrowed from wherever it is stored.
#[derive(Debug, Clone, Copy)]
pub struct BlobRef<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// SHA-256 of the ciphertext.
    pub content_id: &'a ContentId,
    /// Its document.
    pub doc_id: &'a DocId,
    /// Its key epoch.
    pub epoch: u32,
    /// The sealed bytes.
    pub ciphertext: &'a [u8],
    /// The device that pushed it first.
    pub device_id: &'a str,
}

impl<'a> From<&'a PulledBlob> for BlobRef<'a> {
    fn from(blob: &'a PulledBlob) -> Self {
        Self {
            seq: blob.seq,
            content_id: &blob.content_id,
            doc_id: &blob.doc_id,
            epoch: blob.epoch,
            ciphertext: &blob.ciphertext,
            device_id: &blob.device_id,
        }
    }
}

/// What a pull answer says after its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageEnd {
    /// Whether blobs after the last one exist.
    pub more: bool,
    /// The head sequence number.
    pub head: u64,
    /// The team's version.
    pub team_version: u64,
    /// The chain hash at the pull's `after`, if within the log.
    pub chain_after: Option<ChainHash>,
    /// The chain hash at the last blob of the page, if any.
    pub chain_last: Option<ChainHash>,
    /// The chain hash at the head.
    pub chain_head: Option<ChainHash>,
    /// The version of the workspace's check-ins.
    pub check_ins: u64,
    /// Tips waiting for a coordinator's device.
    pub tips: u64,
}

/// Writes a pull answer blob by blob; [`finish`](Self::finish) adds what is known only at the
/// end.
#[derive(Debug)]
pub struct PullPageWriter {
    out: Vec<u8>,
    blobs: usize,
}

impl PullPageWriter {
    /// A writer with room for about `ciphertext_bytes` of ciphertext.
    pub fn with_capacity(ciphertext_bytes: usize) -> Self {
        // Per blob: about 150 bytes of keys, ids and numbers besides the ciphertext.
        let mut out = Vec::with_capacity(PREFIX + ciphertext_bytes + ciphertext_bytes / 4 + 64);
        out.resize(PREFIX, 0);
        Self { out, blobs: 0 }
    }

    /// Appends one blob.
    pub fn blob(&mut self, blob: &BlobRef<'_>) {
        let out = &mut self.out;
        head(out, MAP, 6);
        text(out, "seq");
        head(out, UNSIGNED, blob.seq);
        text(out, "content_id");
        bytes(out, blob.content_id);
        text(out, "doc_id");
        bytes(out, blob.doc_id);
        text(out, "epoch");
        head(out, UNSIGNED, u64::from(blob.epoch));
        text(out, "ciphertext");
        bytes(out, blob.ciphertext);
        text(out, "device_id");
        text(out, blob.device_id);
        self.blobs += 1;
    }

    /// Blobs written so far.
    pub fn len(&self) -> usize {
        self.blobs
    }

    /// Whether no blob was written.
    pub fn is_empty(&self) -> bool {
        self.blobs == 0
    }

    /// Ends the answer with what follows the blobs.
    pub fn finish(mut self, end: &PageEnd) -> EncodedPull {
        let out = &mut self.out;
        text(out, "more");
        out.push(if end.more { TRUE } else { FALSE });
        text(out, "head");
        head(out, UNSIGNED, end.head);
        text(out, "team_version");
        head(out, UNSIGNED, end.team_version);
        text(out, "chain_after");
        optional_bytes(out, end.chain_after.as_ref());
        text(out, "chain_last");
        optional_bytes(out, end.chain_last.as_ref());
        text(out, "chain_head");
        optional_bytes(out, end.chain_head.as_ref());
        text(out, "check_ins");
        head(out, UNSIGNED, end.check_ins);
        text(out, "tips");
        let tips_at = out.len();
        head(out, UNSIGNED, end.tips);

        let mut opening = Vec::with_capacity(PREFIX);
        head(&mut opening, MAP, 9);
        text(&mut opening, "blobs");
        head(&mut opening, ARRAY, self.blobs as u64);
        // At most 16 bytes by construction (see PREFIX).
        let start = PREFIX.saturating_sub(opening.len());
        if let Some(room) = self.out.get_mut(start..PREFIX) {
            room.copy_from_slice(&opening);
        }
        EncodedPull {
            blobs: self.blobs,
            buffer: self.out,
            start,
            tips_at,
        }
    }
}

/// A CBOR item head: the major type and its argument in the shortest form.
fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    if value < 24 {
        out.push(major | value as u8);
    } else if let Ok(v) = u8::try_from(value) {
        out.extend_from_slice(&[major | 24, v]);
    } else if let Ok(v) = u16::try_from(value) {
        out.push(major | 25);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(value) {
        out.push(major | 26);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

fn text(out: &mut Vec<u8>, value: &str) {
    head(out, TEXT, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    head(out, BYTES, value.len() as u64);
    out.extend_from_slice(value);
}

fn optional_bytes(out: &mut Vec<u8>, value: Option<&ChainHash>) {
    match value {
        Some(v) => bytes(out, v),
        None => out.push(NULL),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use waymark_protocol::{decode, encode};

    fn blob(seq: u64, len: usize, device: &str) -> PulledBlob {
        PulledBlob {
            seq,
            content_id: [seq as u8; 32],
            doc_id: [7; 16],
            epoch: u32::try_from(seq % 70_000).unwrap(),
            ciphertext: (0..len).map(|i| i as u8).collect(),
            device_id: device.into(),
        }
    }

    #[test]
    fn pages_are_byte_for_byte_what_the_protocol_encodes() {
        // Sizes and numbers on both sides of every CBOR length boundary.
        let numbers = [
            0,
            1,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            1 << 32,
            u64::MAX >> 1,
        ];
        let lens = [0, 1, 23, 24, 255, 256, 70_000];
        for count in [0, 1, 23, 24, 300] {
            for &n in &numbers {
                let blobs = (0..count)
                    .map(|i| {
                        blob(
                            n.saturating_add(i as u64),
                            lens[i % lens.len()],
                            &"d".repeat(i % 30),
                        )
                    })
                    .collect();
                let page = PullResponse {
                    blobs,
                    more: n % 2 == 0,
                    head: n,
                    team_version: n / 3,
                    chain_after: (n % 3 == 0).then_some([n as u8; 32]),
                    chain_last: (count > 0).then_some([count as u8; 32]),
                    chain_head: (n % 2 == 1).then_some([3; 32]),
                    check_ins: n / 5,
                    tips: n / 7,
                };
                let encoded = EncodedPull::from_response(&page);
                assert_eq!(encoded.as_bytes(), &encode(&page)[..], "{count} blobs, {n}");
                assert_eq!(encoded.blobs, count);
                assert_eq!(decode::<PullResponse>(encoded.as_bytes()).unwrap(), page);
                let hidden = PullResponse { tips: 0, ..page };
                assert_eq!(encoded.without_tips().as_bytes(), &encode(&hidden)[..]);
            }
        }
    }
}
