//! Waymark core.
