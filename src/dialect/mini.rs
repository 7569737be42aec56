//! Seed 003's envelope: `{"code":0,"msg":"success","data":...}` with negative codes; the code
//! table beyond each route's own codes is [`Mini::code`].

use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::error::{AppError, Dialect, Failure};
use crate::http::Caller;

/// The 003 dialect.
pub struct Mini;

impl Mini {
    pub fn code(err: &AppError) -> i64 {
        match err {
            AppError::Missing(_) => -1,
            AppError::WrongUser => -2,
            AppError::Invalid(_) => -400,
            AppError::Unauthorized(_) | AppError::BadCredentials(_) => -401,
            AppError::Insufficient { .. } => -402,
            AppError::NotFound(_) => -404,
            AppError::Conflict(_) => -409,
            AppError::TooLarge => -413,
            AppError::TooSlow => -408,
            AppError::RateLimited(_) => -429,
            AppError::LimitReached(_) | AppError::Busy => -429,
            AppError::NotConfigured(_) => -501,
            AppError::Provider(_) => -502,
            AppError::Unavailable(_) | AppError::Elsewhere(_) => -503,
            AppError::Coded(code, _) => *code,
            AppError::Refused(_) => -410,
        }
    }
}

impl Dialect for Mini {
    fn render(err: &AppError) -> HttpResponse {
        HttpResponse::Ok().json(json!({
            "code": Mini::code(err),
            "msg": err.message_zh(),
            "data": null,
        }))
    }
}

pub type Reply = Result<HttpResponse, Failure<Mini>>;

pub fn ok(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "data": data}))
}

/// Checks that `openid` is present and names the caller; `wrong_openid` is the route's code.
pub fn own_openid(
    caller: &Caller<Mini>,
    openid: &Option<String>,
    wrong_openid: i64,
) -> Result<(), AppError> {
    let openid = openid
        .as_deref()
        .ok_or_else(|| AppError::missing("openid"))?;
    if openid != caller.session.platform_uid {
        return Err(AppError::Coded(wrong_openid, "错误的openid".into()));
    }
    Ok(())
}
