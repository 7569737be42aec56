//! Seed 000's envelope: `{"code":200,"msg":"ok","status":true,"data":...}`, some routes with
//! fields beside `data`. Errors: HTTP 200 with `status:false`, a non-200 `code` and a Chinese
//! `msg` the client shows (the code table is [`Gift::code`]). The admin API answers in it too.

use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::error::{AppError, Dialect, Failure};
use crate::http::{lenient, Caller};

/// The 000 dialect.
pub struct Gift;

impl Gift {
    pub fn code(err: &AppError) -> i64 {
        match err {
            AppError::Missing(_) | AppError::Invalid(_) => 400,
            AppError::Unauthorized(_) | AppError::BadCredentials(_) => 401,
            AppError::Insufficient { .. } => 402,
            AppError::WrongUser => 403,
            AppError::NotFound(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::TooLarge => 413,
            AppError::TooSlow => 408,
            AppError::RateLimited(_) => 429,
            AppError::LimitReached(_) | AppError::Busy => 429,
            AppError::NotConfigured(_) => 501,
            AppError::Provider(_) => 502,
            AppError::Unavailable(_) | AppError::Elsewhere(_) => 503,
            AppError::Coded(code, _) => *code,
            AppError::Refused(_) => 410,
        }
    }
}

impl Dialect for Gift {
    fn render(err: &AppError) -> HttpResponse {
        HttpResponse::Ok().json(json!({
            "code": Gift::code(err),
            "msg": err.message_zh(),
            "status": false,
            "data": [],
        }))
    }
}

pub type Reply = Result<HttpResponse, Failure<Gift>>;

/// `{"code":200,"msg":"ok","status":true,"data":data}` plus the fields of `beside` next to
/// `data` (the type the route documents beside its data).
pub fn ok_with(data: Value, beside: impl serde::Serialize) -> HttpResponse {
    let mut body = Map::new();
    body.insert("code".into(), json!(200));
    body.insert("msg".into(), json!("ok"));
    body.insert("status".into(), json!(true));
    body.insert("data".into(), data);
    if let Ok(Value::Object(fields)) = serde_json::to_value(beside) {
        body.extend(fields);
    }
    HttpResponse::Ok().json(Value::Object(body))
}

/// `count` beside `data`: how many items all pages hold.
#[derive(serde::Serialize, ToSchema)]
pub struct Count {
    pub count: i64,
}

/// `total` beside `data`: how many items all pages hold.
#[derive(serde::Serialize, ToSchema)]
pub struct Total {
    pub total: i64,
}

pub fn ok(data: Value) -> HttpResponse {
    ok_with(data, ())
}

#[derive(Deserialize, ToSchema)]
pub struct UserReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
}

/// The caller, after checking that `user_id` (and `app_id`, if sent) name the token's user.
pub fn own_user(
    caller: &Caller<Gift>,
    user_id: &Option<String>,
    app: &Option<String>,
) -> Result<(), AppError> {
    let user_id = user_id
        .as_deref()
        .ok_or_else(|| AppError::missing("user_id"))?;
    if user_id != caller.session.platform_uid {
        return Err(AppError::WrongUser);
    }
    if let Some(app) = app {
        if *app != caller.session.app_id {
            return Err(AppError::WrongUser);
        }
    }
    Ok(())
}
