//! The dialect kit: what every route of every seed shares, below the slices and facades.
//!
//! - one envelope type per seed ([`Gift`] 000, [`Center`] 001, [`Open`] 002, [`Mini`] 003), each
//!   with its error code table, its `Reply` type and its `ok` renderer;
//! - the ownership checks of the dialects that name the user in the request ([`own_user`],
//!   [`own_openid`]);
//! - ONE parser per caller input kind shared by every dialect ([`AppId`], [`IdempotencyKey`]).
//!
//! This module imports no facade and no slice: they import it.

pub mod center;
pub mod gift;
pub mod input;
pub mod mini;
pub mod open;

use actix_web::http::Method;

pub use center::Center;
pub use gift::{own_user, Gift, UserReq};
pub use input::{AppId, IdempotencyKey, Points, Status};
pub use mini::{own_openid, Mini};
pub use open::Open;

/// Both methods, for dialects that accept reads and writes either way.
pub const GET_POST: &[Method] = &[Method::GET, Method::POST];
pub const POST: &[Method] = &[Method::POST];
pub const GET: &[Method] = &[Method::GET];

/// The dialect that serves a path (the path prefixes of `crate::facades`; the admin API
/// answers in 000's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    Gift,
    Center,
    Open,
    Mini,
}

impl Seed {
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/api/v1/open/") {
            Seed::Open
        } else if path.starts_with("/center/") {
            Seed::Center
        } else if path.starts_with("/api/") {
            Seed::Mini
        } else {
            Seed::Gift
        }
    }
}

/// `err` answered as the dialect that serves `path` answers it: for what answers before a
/// route's handler runs (rate limits).
pub fn failure_for_path(path: &str, err: crate::error::AppError) -> actix_web::HttpResponse {
    use crate::error::Failure;
    use actix_web::ResponseError;
    match Seed::of_path(path) {
        Seed::Open => Failure::<Open>::new(err).error_response(),
        Seed::Center => Failure::<Center>::new(err).error_response(),
        Seed::Mini => Failure::<Mini>::new(err).error_response(),
        Seed::Gift => Failure::<Gift>::new(err).error_response(),
    }
}
