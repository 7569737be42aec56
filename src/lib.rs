//! # points-engine
//!
//! A points ledger and live-activity backend that serves four existing API dialects.
//!
//! ## Layout
//! - [`config`]: settings from `POINTS_*` variables, secrets redacted.
//! - [`startup`]: [`startup::Application`] wires pools, actors, routes and the listener.
//! - [`db`]: SQLite or Postgres behind one `Any` pool; migrations.
//! - [`store`]: SQL per concern (accounts, ledger, earning rules).
//! - [`points`]: point changes as facades ask for them, applied through the ledger actor
//!   (`points-actors`).
//! - [`auth`]: WeChat, Alipay and dev login; session tokens.
//! - [`http`]: request extractors (fields, caller, admin key) and the documented route table.
//! - [`error`]: domain errors, rendered per dialect.
//! - [`facades`]: one module per API dialect, plus admin and service routes.
//! - [`activities`]: red packets, lottery, blind boxes, morning rounds, walk, leaderboards:
//!   their SQL and routes; the actors are in `points-actors`.
//! - [`ws`]: the websocket facade and its topic hub.
//! - [`features`]: sign-in, tasks, the prize shop.
//! - [`fulfilment`]: the outbox worker delivering rewards paid outside to the webhook.
//! - [`jobs`]: the daily jobs (expiry, session purge).
//! - [`clock`]: business time; [`metrics`]: Prometheus; [`telemetry`]: logs.

pub mod activities;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod dialect;
pub mod error;
pub mod facades;
pub mod features;
pub mod fulfilment;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod points;
pub mod runtime;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;
