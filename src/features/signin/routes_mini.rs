//! The 003 sign-in routes (`/api/sign/`, `/api/sign_status/`): thin handlers, their request and
//! reply shapes, and their docs.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{sign, Signed};
use crate::dialect::mini::{self, own_openid, Mini};
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type MiniReply = Result<HttpResponse, Failure<Mini>>;

/// Registers the 003 sign-in routes, recording each in `doc`.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<OpenidReq, Signed, _, _>(
        RouteDoc {
            path: "/api/sign/",
            methods: GET_POST,
            tag,
            summary: "每日签到",
            description: "Bearer token; `openid` must be the token's user. Signs in for today (business time) with the same rules as 000 `v2/sign/do.json`. `data` (beyond the seed's `code`/`msg`): `reward` points credited, bonus included, and `combo_sum` the streak reached. Codes: 0 ok, -1 empty parameter, -2 already signed today, -3 wrong openid, -4 sign-in failed (storage busy or unavailable; nothing was credited).",
        },
        mini_sign,
    );
    r.add::<OpenidReq, SignStatus, _, _>(
        RouteDoc {
            path: "/api/sign_status/",
            methods: GET_POST,
            tag,
            summary: "查询签到状态",
            description: "Bearer token; `openid` must be the token's user. `data.is_sign`: true when the user signed in today (business time). Codes: 0 ok, -1 empty parameter, -2 wrong openid.",
        },
        mini_sign_status,
    );
}

/// A 003 request naming the caller.
#[derive(Deserialize, ToSchema)]
pub struct OpenidReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
}

/// 003 `/api/sign_status/`.
#[derive(Serialize, ToSchema)]
pub struct SignStatus {
    pub is_sign: bool,
}

async fn mini_sign(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -3)?;
    let signed = sign(&state, &caller.session).await.map_err(|e| match e {
        AppError::Refused(_) => AppError::Coded(-2, "每天只能签到一次".into()),
        AppError::Unavailable(_)
        | AppError::Busy
        | AppError::Conflict(_)
        | AppError::LimitReached(_)
        | AppError::Insufficient { .. }
        | AppError::Invalid(_) => AppError::Coded(-4, "签到失败".into()),
        other => other,
    })?;
    Ok(mini::ok(json!(signed)))
}

async fn mini_sign_status(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<OpenidReq, Mini>,
) -> MiniReply {
    own_openid(&caller, &p.into_inner().openid, -2)?;
    Ok(mini::ok(json!(SignStatus {
        is_sign: super::signed_today(&state, &caller.session).await?,
    })))
}
