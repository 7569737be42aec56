//! The websocket facade: `/ws?token=<session token>`, topic subscriptions, coalesced frames.

pub mod hub;
