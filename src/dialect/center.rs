//! Seed 001's envelope: `{"code":0,"msg":"ok","result":...}`; the code table is
//! [`Center::code`] (300013 insufficient points, 4xxxx/5xxxx for the rest).

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::error::{AppError, Dialect, Failure};

/// The 001 dialect.
pub struct Center;

/// 001's code for a deduction larger than the balance.
pub const INSUFFICIENT_POINTS: i64 = 300_013;

impl Center {
    pub fn code(err: &AppError) -> i64 {
        match err {
            AppError::Missing(_) | AppError::Invalid(_) => 40000,
            AppError::Unauthorized(_) | AppError::BadCredentials(_) => 40100,
            AppError::WrongUser => 40300,
            AppError::NotFound(_) => 40400,
            AppError::Insufficient { .. } => INSUFFICIENT_POINTS,
            AppError::Conflict(_) => 40900,
            AppError::TooLarge => 41300,
            AppError::TooSlow => 40800,
            AppError::RateLimited(_) => 42900,
            AppError::LimitReached(_) | AppError::Busy => 42900,
            AppError::NotConfigured(_) => 50100,
            AppError::Provider(_) => 50200,
            AppError::Unavailable(_) | AppError::Elsewhere(_) => 50300,
            AppError::Coded(code, _) => *code,
            AppError::Refused(_) => 40910,
        }
    }
}

impl Dialect for Center {
    fn render(err: &AppError) -> HttpResponse {
        HttpResponse::Ok().json(json!({
            "code": Center::code(err),
            "msg": err.message_zh(),
            "result": null,
        }))
    }
}

pub type Reply = Result<HttpResponse, Failure<Center>>;

pub fn ok(result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "msg": "ok", "result": result}))
}
