//! The 003 dialect's upload routes: upload an image, submit uploads for review.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{
    apply_audit, boundary, parse_multipart, save_upload, UPLOAD_BODY_BYTES_MAX, UPLOAD_BYTES_MAX,
};
use crate::dialect::mini::{self, own_openid, Mini};
use crate::dialect::POST;
use crate::error::{AppError, Failure};
use crate::http::{lenient, ApiDoc, Caller, Params, RouteDoc, Routes};
use crate::state::AppState;

type MiniReply = Result<HttpResponse, Failure<Mini>>;

/// 003 `/api/upload/` (multipart form).
#[derive(Deserialize, ToSchema)]
pub struct UploadReq {
    pub openid: Option<String>,
    /// The image file.
    #[schema(value_type = String, format = Binary)]
    pub image: Option<String>,
}

/// 003 `/api/upload/`'s data.
#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    /// The upload's id.
    pub id: i64,
}

/// 003 `/api/apply_audit/`.
#[derive(Deserialize, ToSchema)]
pub struct ApplyReq {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    pub openid: Option<String>,
    /// A JSON list of upload ids, or that list as a string.
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    pub files: Option<Value>,
}

/// Registers the 003 upload routes.
pub(super) fn routes(cfg: &mut web::ServiceConfig, doc: &mut ApiDoc) {
    let mut r = Routes::new(cfg, doc);
    let tag = "003 mini-program";
    r.add::<UploadReq, Uploaded, _, _>(
        RouteDoc {
            path: "/api/upload/",
            methods: POST,
            tag,
            summary: "上传文件",
            description: "Bearer token. `multipart/form-data` as `wx.uploadFile` sends it: the image under the key `image`, `openid` (the token's user) as a form field or in the query string. JPEG, PNG, GIF or WebP, recognised by the file's content (not its name), at most 5 MiB. `data.id`: the upload's id, to list in `/api/apply_audit/`. Codes: 0 ok, -1 empty parameter (no `openid` or no `image`), -2 wrong openid, -3 upload failed (not an accepted image, malformed body, or storage failure), -413 body too large.",
        },
        upload,
    );
    r.add::<ApplyReq, Value, _, _>(
        RouteDoc {
            path: "/api/apply_audit/",
            methods: POST,
            tag,
            summary: "眼底片提交审核",
            description: "Bearer token; `openid` the token's user. `files`: a JSON list of upload ids (`'[1, 2, 3]'` as a string, or a JSON array), each an upload of the caller, at most 20 (duplicates count once). Codes: 0 ok, -1 empty parameter, -2 bad parameter (wrong openid, `files` not a list of ids, or an id that is not the caller's upload; nothing is stored), -3 a submission is already in review or approved, -4 empty file list, -5 operation failed. After a rejection the user may submit again.",
        },
        apply,
    );
}

/// Reads the upload request: the `openid` field (form part or query) and the image bytes.
async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Option<String>, Option<Vec<u8>>), AppError> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let mut openid = query
        .into_iter()
        .find(|(k, _)| k == "openid")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty());
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > UPLOAD_BODY_BYTES_MAX {
            return Err(AppError::TooLarge);
        }
    }
    let mut payload = payload.into_inner();
    let body = crate::http::read_body(req, &mut payload, UPLOAD_BODY_BYTES_MAX).await?;
    // The whole header: `HttpMessage::content_type` drops the parameters, boundary included.
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = boundary(content_type) else {
        // Not multipart: there is no file, whatever else was sent.
        return Ok((openid, None));
    };
    let parts = parse_multipart(&body, &boundary)
        .ok_or_else(|| AppError::Coded(-3, "上传文件失败: malformed multipart body".into()))?;
    let mut image = None;
    for part in parts {
        match part.name.as_str() {
            "openid" if !part.data.is_empty() => {
                let text = std::str::from_utf8(part.data)
                    .map_err(|_| AppError::Coded(-2, "错误的openid".into()))?;
                openid = Some(text.trim().to_string());
            }
            "image" if !part.data.is_empty() => {
                if part.data.len() > UPLOAD_BYTES_MAX {
                    return Err(AppError::TooLarge);
                }
                image = Some(part.data.to_vec());
            }
            _ => {}
        }
    }
    Ok((openid, image))
}

async fn upload(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    req: HttpRequest,
    payload: web::Payload,
) -> MiniReply {
    let (openid, image) = read_upload(&req, payload).await?;
    own_openid(&caller, &openid, -2)?;
    let image = image.ok_or_else(|| AppError::missing("image"))?;
    let id = save_upload(&state, &caller.session, image).await?;
    Ok(mini::ok(json!(Uploaded { id })))
}

async fn apply(
    state: web::Data<AppState>,
    caller: Caller<Mini>,
    p: Params<ApplyReq, Mini>,
) -> MiniReply {
    let p = p.into_inner();
    own_openid(&caller, &p.openid, -2)?;
    let raw = match p.files {
        None | Some(Value::Null) => return Err(AppError::missing("files").into()),
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(AppError::missing("files").into())
        }
        Some(v) => v,
    };
    apply_audit(&state, &caller.session, &raw).await?;
    Ok(mini::ok(Value::Null))
}
