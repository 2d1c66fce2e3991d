//! The sign-in domain of the phone sign-in service (docs/PROTOCOL.md, server side), below
//! HTTP: who the users and their devices are, how a sign-in starts, is answered and ends, the
//! rules it applies, how devices are woken, and where all of it is stored. `signin-server`
//! carries it over HTTP (JSON API, pages, OpenID Connect) and maps its [`AppError`] to HTTP
//! in one place; this crate does not depend on axum, hyper or tower.
//!
//! Layers, each using only those below it (`signin-server/tests/layering.rs` checks that no
//! two modules use each other):
//! - [`format`], [`random`], [`settings`]: helpers and run-time settings; [`outbound`]: the
//!   policy for every URL the server calls on someone's say-so (Web Push, CIBA ping);
//! - [`store`]: SQL (SQLite or PostgreSQL), migrations; [`error`]: the domain's error;
//! - [`audit`]: the audit log; [`rules`]: policy, risk, verification, location;
//! - [`accounts`]: users, groups, passwords, devices, applications, fallback codes;
//! - [`delivery`]: waking devices (long-poll, APNs, FCM, Web Push); [`oidc`]: OpenID Connect
//!   client registration;
//! - [`state`]: the handle ([`AppState`]) the flows run on;
//! - [`sign_in`]: the sign-in lifecycle; [`enrollment`]: phone registration; [`cluster`]: the
//!   relay between server instances on PostgreSQL; [`push_rotation`]: a device's new push
//!   channel (§5.10) and its delivery health.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod accounts;
pub mod audit;
pub mod cluster;
pub mod delivery;
pub mod enrollment;
pub mod error;
pub mod format;
pub mod moving;
pub mod oidc;
pub mod outbound;
pub mod push_rotation;
pub mod random;
pub mod rules;
pub mod settings;
pub mod sign_in;
pub mod state;
pub mod store;
pub mod trust;
pub mod upn;

pub use error::AppError;
pub use state::AppState;
