//! One module per API dialect. Each owns its envelope, its error code table and its routes;
//! all of them call the same services underneath.
//!
//! | module | seed | paths |
//! |---|---|---|
//! | [`giftpoint`] | 000 | `/v2/*`, `/core/*` |
//! | [`center`] | 001 | `/center/api/{op}`, `/center/admin/{op}` |
//! | [`open`] | 002 | `/api/v1/open/swan/integral/*` |
//! | [`miniapp`] | 003 | `/api/*/` |
//! | [`admin`] | — | `/admin/*` (000 envelope) |
//! | [`export`] | — | `/admin/export/*` (CSV, streamed) |
//! | [`service`] | — | `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs` |

pub mod admin;
pub mod center;
pub mod export;
pub mod giftpoint;
pub mod miniapp;
pub mod open;
pub mod service;
