//! Random identifiers for records, attendees, referrals and workspaces.

/// A fresh random 128-bit id as 32 lowercase hex digits.
pub(crate) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
