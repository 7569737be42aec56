//! The websocket facade: `/ws?token=<session token>`, topic subscriptions, coalesced frames.
//!
//! - [`hub`]: topics, coalescing and the shared encoded frames (it lives in the runtime, since
//!   the activities publish to it).
//! - [`session`]: one connection: authentication, the subscribe/unsubscribe protocol, heartbeat,
//!   bounds and disconnection of lagging clients.

pub mod session;

pub use crate::runtime::{hub, sockets};

use actix_web::web;

use crate::dialect::GET;
use crate::http::{ApiDoc, RouteDoc, Routes};

/// Registers `GET /ws`, documenting its protocol in the OpenAPI document.
pub fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    Routes::new(cfg, doc).add::<session::WsQuery, session::WsFrame, _, _>(
        RouteDoc {
            path: "/ws",
            methods: GET,
            tag: "websocket",
            summary: "Live updates over a websocket",
            description: "Upgrade with `?token=<session token>` (or `Authorization: Bearer`); an invalid token answers 401 before the upgrade. Send `{\"op\":\"subscribe\",\"topic\":T}` / `{\"op\":\"unsubscribe\",\"topic\":T}` (acknowledged with `{\"op\":\"subscribed\"|\"unsubscribed\",\"topic\":T}`; a malformed or refused message gets `{\"error\":\"...\"}` and the connection stays). Data frames are `{\"topic\":T,\"seq\":N,\"data\":{...}}`, `seq` growing by one per frame of the topic (a gap means missed frames: refetch), at most 5 per second per topic. Topics: `leaderboard:points`, `leaderboard:steps`, `leaderboard:invites` (the default app; other apps append `:<app_id>`; the current board is sent right after subscribing), `redpack:radio`, `redpack:pool:<id>`, `morning:<app_id>`. At most 32 topics and 4 KiB per message; the server pings every 10 s and closes after 30 s of silence; a client that falls 64 frames behind is closed with code 1013 (reconnect and refetch).",
        },
        session::connect,
    );
}
