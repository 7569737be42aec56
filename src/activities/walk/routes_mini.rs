//! The walk route of seed 003: WeRun authorisation (`/api/wx_run/`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::routes_gift::StepCount;
use super::{grant_auth_reward, ingest, IngestError, StepData};
use crate::dialect::mini::{self, own_openid, Mini};
use crate::dialect::GET_POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type MiniReply = Result<HttpResponse, Failure<Mini>>;

pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    r.add::<WxRunReq, StepCount, _, _>(
        RouteDoc {
            path: "/api/wx_run/",
            methods: GET_POST,
            tag: "003 mini-program",
            summary: "微信运动授权",
            description: "Bearer token; `openid` must be the token's user. `encryptedData` and `iv` from `wx.getWeRunData`, decrypted with the session key of the user's WeChat login. Stores today's steps (entering today's rank) and, the first time, grants the app's WeRun authorisation reward (`auth_reward`, see `/admin/walk/config`). `data.count`: today's steps. Codes: 0 ok, -1 empty parameter, -2 WeChat not configured, -3 no valid session key, -4 wrong openid, -5 decryption or parsing failed (also: watermark of another mini-program).",
        },
        wx_run,
    );
}

#[derive(Deserialize, ToSchema)]
pub struct WxRunReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    #[serde(
        default,
        rename = "encryptedData",
        deserialize_with = "lenient::opt_string"
    )]
    pub encrypted_data: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub iv: Option<String>,
}

async fn wx_run(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<WxRunReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    let (Some(_), Some(data), Some(iv)) = (&p.openid, &p.encrypted_data, &p.iv) else {
        return Err(AppError::Coded(-1, "参数字段不能为空".into()).into());
    };
    own_openid(&caller, &p.openid, -4)?;
    let s = &caller.session;
    let encrypted = StepData::Wechat { data, iv };
    let count = ingest(&state, s, encrypted).await.map_err(|e| match e {
        IngestError::NoWechat | IngestError::NoAesKey => AppError::Coded(-2, "微信配置为空".into()),
        IngestError::BadSessionKey => AppError::Coded(-3, "错误的session key".into()),
        IngestError::Undecryptable(m) => AppError::Coded(-5, format!("解析失败: {m}")),
        IngestError::Other(e) => e,
    })?;
    grant_auth_reward(&state, s).await?;
    Ok(mini::ok(json!(StepCount { count })))
}
