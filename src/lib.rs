//! # points-engine
//!
//! A points ledger and live-activity backend that serves four existing API dialects.
//!
//! ## Layout
//! Floors from the ground up; a floor imports only floors below it (ARCHITECTURE.md has the
//! rules and the checklist for adding an activity).
//! - Ground: [`config`] (settings from `POINTS_*` variables, secrets redacted), [`clock`]
//!   (business time), [`error`] (domain errors and the `Dialect` trait that renders them),
//!   [`metrics`] (Prometheus), [`telemetry`] (logs).
//! - Storage: [`db`] (SQLite or Postgres behind one `Any` pool; migrations) and [`store`]
//!   (accounts, earning rules, and the ledger, whose tables only [`store::ledger`] touches).
//! - State: [`state`] (the handles every handler gets), [`http`] (extractors and the documented
//!   route table), [`auth`] (WeChat, Alipay and dev login; sessions), [`points`] (point changes
//!   through the ledger actor of `points-actors`), [`cluster`] (this node, its activity leases
//!   and the others').
//! - [`dialect`]: the four envelopes, ownership checks, one parser per caller input.
//! - [`runtime`]: registries of running actors, in-flight keys, the websocket hub.
//! - Slices, one folder each with `store.rs`, `mod.rs` and `routes_<dialect>.rs`: [`features`]
//!   (sign-in, tasks, shop, invites, content, profile, uploads) and [`activities`] (red packets,
//!   lottery, blind boxes, morning rounds, walk, leaderboards).
//! - Facades: [`facades`] (route tables per dialect, admin, service) and [`ws`] (the websocket
//!   session).
//! - Top: [`startup`] (wires pools, actors, routes and the listener), [`jobs`] (daily jobs),
//!   [`fulfilment`] (the outbox worker).

pub mod activities;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dialect;
pub mod error;
pub mod facades;
pub mod features;
pub mod fulfilment;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod points;
pub mod runtime;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ws;
