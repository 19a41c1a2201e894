//! The device signatures of a page of pulled blobs, checked on all cores before the page is
//! applied: verifying is the costliest step of applying a blob (more than decoding it), and it
//! needs neither the database nor the writer lock.

use waymark_protocol::PulledBlob;

use crate::crypto;

/// Fewest blobs worth a thread of their own.
const PER_THREAD_MIN: usize = 64;

/// For each blob, whether its signature holds. A blob marked false is checked again, alone,
/// when applied, which says why it is set aside.
pub(crate) fn signatures(workspace: &str, blobs: &[PulledBlob]) -> Vec<bool> {
    let check = |b: &PulledBlob| {
        crypto::verify_blob_signature(workspace, &b.doc_id, b.epoch, &b.ciphertext).is_ok()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let per = blobs.len().div_ceil(threads).max(PER_THREAD_MIN);
    if blobs.len() <= per {
        return blobs.iter().map(check).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = blobs
            .chunks(per)
            .map(|part| {
                (
                    part.len(),
                    s.spawn(move || part.iter().map(check).collect()),
                )
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(len, h)| h.join().unwrap_or_else(|_| vec![false; len]))
            .collect()
    })
}
