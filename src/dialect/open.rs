//! Seed 002's errors: the HTTP status of the error with `{"error": NAME, "message": sentence}`.
//! Successful answers are the seed's bare bodies.

use actix_web::HttpResponse;
use serde_json::json;

use crate::error::{AppError, Dialect, Failure};

/// The 002 dialect.
pub struct Open;

impl Dialect for Open {
    fn render(err: &AppError) -> HttpResponse {
        HttpResponse::build(err.status()).json(json!({
            "error": err.name(),
            "message": err.message(),
        }))
    }
}

pub type Reply = Result<HttpResponse, Failure<Open>>;
