//! Live registrations: registrations applied at run time (`shr registration apply`) and kept
//! in [`REGISTRATIONS_BUCKET`](crate::subject::REGISTRATIONS_BUCKET) under
//! [`registration_key`](crate::subject::registration_key) (`<tenant>.<name>`), so a grant on
//! `$KV.shr-registrations.<tenant>.>` confines a tenant to its own.
//!
//! The registration travels as the TOML text of one `[[registrations]]` table: the same
//! syntax and the same validation as in a configuration file. Secrets stay references
//! (`env:…`, `file:…`), resolved by the processes that use them.

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

/// Where a live registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// Polled, routed and provisioned for.
    Active,
    /// Removed: no longer polled and nothing new is provisioned for it; its running jobs
    /// finish and its runners are reaped, then the entry is deleted.
    Draining,
}

/// One live registration's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRegistration {
    /// The registration's name (also the last token of its key).
    pub name: String,
    /// The owning tenant (also the first token of its key).
    pub tenant: String,
    /// The `[[registrations]]` table as TOML, exactly as validated by `apply`.
    pub toml: String,
    pub state: LiveState,
    /// When it was last applied or removed.
    pub updated_at: UnixMillis,
}
