//! The Windows backend of moat (being written).
