//! The edge of the HTTP server: extractors that parse and authenticate requests in the caller's
//! dialect, and the route table that registers every route and documents it in OpenAPI at once.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{guard, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::error::{AppError, Dialect, Failure};
pub use crate::openapi::ApiDoc;
use crate::openapi::{Auth, Envelope, Operation, Output, TypeDoc};
use crate::state::AppState;
use crate::store::SessionUser;

/// Largest request body a JSON or form route accepts.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Largest page a listing returns.
pub const PAGE_SIZE_MAX: i64 = 100;

/// Request fields of type `T`, read from the query string (GET) or from a JSON or
/// form-encoded body (any other method), and refused in dialect `D` when they do not parse.
pub struct Params<T, D>(pub T, PhantomData<D>);

impl<T, D> Params<T, D> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The body of a request as it arrived, once its fields have been read.
#[derive(Debug, Clone)]
pub struct RawBody(pub web::Bytes);

/// Reads a request's body, at most `bytes_max` bytes of it, within the body read deadline
/// (`Bounds::body_read_deadline`): a body that trickles in slower answers 408.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
    bytes_max: usize,
) -> Result<web::Bytes, AppError> {
    let within = req
        .app_data::<web::Data<AppState>>()
        .map_or(crate::limits::Bounds::default().body_read_deadline, |s| {
            s.settings.bounds.body_read_deadline
        });
    let deadline = tokio::time::Instant::now() + within;
    let mut body = web::BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => return Err(AppError::TooSlow),
            Ok(None) => break,
            Ok(Some(chunk)) => {
                chunk.map_err(|e| AppError::invalid(format!("reading body: {e}")))?
            }
        };
        if body.len() + chunk.len() > bytes_max {
            return Err(AppError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads the request's fields as a JSON object: query string for GET, body otherwise. Form and
/// query values arrive as strings; [`lenient`] deserializers accept them where numbers are due.
async fn read_fields(req: &HttpRequest, payload: &mut Payload) -> Result<Value, AppError> {
    let mut fields = Map::new();
    // Query parameters count for every method: some clients put app_id in the URL even on POST.
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| AppError::invalid(format!("query string: {e}")))?;
    for (k, v) in query {
        fields.insert(k, Value::String(v));
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return storable(Value::Object(fields));
    }
    let body = read_body(req, payload, BODY_BYTES_MAX).await?;
    // Kept for a relay to the node that owns the request's activity.
    req.extensions_mut().insert(RawBody(body.clone()));
    let text = std::str::from_utf8(&body).map_err(|_| AppError::invalid("body is not UTF-8"))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return storable(Value::Object(fields));
    }
    let is_json = req.content_type().contains("json") || trimmed.starts_with('{');
    if is_json {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => fields.extend(map),
            Ok(_) => return Err(AppError::invalid("body must be a JSON object")),
            Err(e) => return Err(AppError::invalid(format!("body is not valid JSON: {e}"))),
        }
    } else {
        let form: Vec<(String, String)> = serde_urlencoded::from_str(text)
            .map_err(|e| AppError::invalid(format!("form body: {e}")))?;
        for (k, v) in form {
            fields.insert(k, Value::String(v));
        }
    }
    storable(Value::Object(fields))
}

/// The fields, unless a name or a text in them holds a NUL character: Postgres cannot store one
/// in text, so it is refused as bad input on every backend before anything reaches the ledger.
/// (Text that is not UTF-8, or JSON with a lone surrogate, never parses in the first place.)
fn storable(fields: Value) -> Result<Value, AppError> {
    fn check(path: &str, value: &Value) -> Result<(), AppError> {
        match value {
            Value::String(s) if s.contains('\0') => {
                Err(AppError::invalid(format!("`{path}` holds a NUL character")))
            }
            Value::Array(items) => items.iter().try_for_each(|v| check(path, v)),
            Value::Object(map) => map.iter().try_for_each(|(k, v)| {
                if k.contains('\0') {
                    return Err(AppError::invalid("a field name holds a NUL character"));
                }
                check(if path.is_empty() { k } else { path }, v)
            }),
            _ => Ok(()),
        }
    }
    check("", &fields)?;
    Ok(fields)
}

/// Turns a serde error into a clear "missing" or "invalid" error.
fn field_error(e: serde_json::Error) -> AppError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        AppError::missing(field)
    } else {
        AppError::invalid(text)
    }
}

impl<T: DeserializeOwned + 'static, D: Dialect> FromRequest for Params<T, D> {
    type Error = Failure<D>;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let value = read_fields(&req, &mut payload).await?;
            let parsed = serde_json::from_value::<T>(value).map_err(field_error)?;
            Ok(Params(parsed, PhantomData))
        })
    }
}

/// Deserializers that accept what form fields and loosely typed clients send.
pub mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn to_i64(v: &Value) -> Result<Option<i64>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("{n} is not a whole number in range")),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{s:?} is not a whole number")),
            other => Err(format!("expected a whole number, got {other}")),
        }
    }

    /// A whole number, also written as a string. Empty counts as absent.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Value::deserialize(d)?;
        to_i64(&v).map_err(serde::de::Error::custom)
    }

    /// A string, also written as a number. Empty counts as absent.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string, got {other}"
            ))),
        }
    }
}

/// A page request: 1-based `page` and `size`, bounded by [`PAGE_SIZE_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

impl Page {
    /// `page` counted from `first` (0 or 1), `size` defaulting to `default_size`.
    pub fn parse(
        page: Option<i64>,
        size: Option<i64>,
        first: i64,
        default_size: i64,
    ) -> Result<Page, AppError> {
        let page = page.unwrap_or(first);
        let size = size.unwrap_or(default_size);
        if page < first || page > 1_000_000 {
            return Err(AppError::invalid(format!(
                "page must be between {first} and 1000000"
            )));
        }
        if !(1..=PAGE_SIZE_MAX).contains(&size) {
            return Err(AppError::invalid(format!(
                "page size must be between 1 and {PAGE_SIZE_MAX}"
            )));
        }
        Ok(Page {
            offset: (page - first) * size,
            limit: size,
        })
    }
}

/// The caller behind a `Authorization: Bearer <token>` session token.
pub struct Caller<D> {
    pub session: SessionUser,
    _dialect: PhantomData<D>,
}

/// SHA-256 of a session token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?.trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}

/// The `token` query parameter (how a websocket upgrade authenticates), if any.
pub fn query_token(req: &HttpRequest) -> Option<String> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).ok()?;
    query
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The session behind `token` if it is valid now, through the session cache.
pub async fn live_session(state: &AppState, token: &str) -> Option<SessionUser> {
    let hash = token_hash(token);
    let session = state
        .caches
        .sessions
        .get_or_load(&hash, || state.stores.accounts.session(&hash))
        .await
        .ok()??;
    (session.expires_at > now_ms()).then_some(session)
}

impl<D: Dialect> FromRequest for Caller<D> {
    type Error = Failure<D>;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = AppState::of(&req)?;
            let token = bearer(&req)
                .ok_or_else(|| AppError::Unauthorized("missing bearer token".into()))?;
            let hash = token_hash(&token);
            let session = state
                .caches
                .sessions
                .get_or_load(&hash, || state.stores.accounts.session(&hash))
                .await?
                .ok_or_else(|| AppError::Unauthorized("unknown session token".into()))?;
            if session.expires_at <= now_ms() {
                return Err(AppError::Unauthorized("session token expired".into()).into());
            }
            Ok(Caller {
                session,
                _dialect: PhantomData,
            })
        })
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn secret_eq(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A request that carries the right `X-Admin-Key`.
pub struct AdminKey<D>(PhantomData<D>);

impl<D: Dialect> FromRequest for AdminKey<D> {
    type Error = Failure<D>;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let check = || -> Result<Self, AppError> {
            let state = AppState::of(req)?;
            let expected = state.settings.admin_key.as_deref().ok_or_else(|| {
                AppError::BadCredentials("admin API disabled: POINTS_ADMIN_KEY is not set".into())
            })?;
            let given = req
                .headers()
                .get("x-admin-key")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| AppError::BadCredentials("missing X-Admin-Key".into()))?;
            if !secret_eq(given, expected) {
                return Err(AppError::BadCredentials("wrong X-Admin-Key".into()));
            }
            Ok(AdminKey(PhantomData))
        };
        std::future::ready(check().map_err(Failure::new))
    }
}

/// One route's documentation.
pub struct RouteDoc {
    pub path: &'static str,
    pub methods: &'static [Method],
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
}

/// Registers routes on an actix `ServiceConfig` and records each one in the OpenAPI document, so
/// the document covers exactly the routes the server answers.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    doc: &'a mut ApiDoc,
    /// The envelope every route answers in; `None`: the one of the dialect of its path.
    envelope: Option<Envelope>,
}

/// The methods each path answers: a known path asked with another method answers 405.
#[derive(Debug, Default, Clone)]
pub struct MethodTable(pub std::collections::BTreeMap<String, Vec<Method>>);

impl MethodTable {
    /// The `Allow` header value for `path`, if it is a known path.
    pub fn allow(&self, path: &str) -> Option<String> {
        let methods = self.0.get(path)?;
        Some(
            methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig, doc: &'a mut ApiDoc) -> Self {
        Self {
            cfg,
            doc,
            envelope: None,
        }
    }

    /// Routes that answer their data without an envelope (the service routes).
    pub fn bare(cfg: &'a mut web::ServiceConfig, doc: &'a mut ApiDoc) -> Self {
        Self {
            cfg,
            doc,
            envelope: Some(Envelope::Bare),
        }
    }

    /// Registers `handler` at `doc.path` for `doc.methods`, documenting `Req` as its input and
    /// `Resp` as its answer's data.
    pub fn add<Req, Resp, F, Args>(&mut self, doc: RouteDoc, handler: F) -> &mut Self
    where
        Req: ToSchema,
        Resp: ToSchema,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.register::<Req, F, Args>(doc, handler, || Output::Json {
            data: TypeDoc::of::<Resp>(),
            beside: None,
        })
    }

    /// As [`Routes::add`], for a 000 answer with the fields of `Beside` next to `data`.
    pub fn add_beside<Req, Resp, Beside, F, Args>(&mut self, doc: RouteDoc, handler: F) -> &mut Self
    where
        Req: ToSchema,
        Resp: ToSchema,
        Beside: ToSchema,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.register::<Req, F, Args>(doc, handler, || Output::Json {
            data: TypeDoc::of::<Resp>(),
            beside: Some(TypeDoc::of::<Beside>()),
        })
    }

    /// As [`Routes::add`], for a route that answers a text body of `content_type`.
    pub fn add_text<Req, F, Args>(
        &mut self,
        doc: RouteDoc,
        content_type: &'static str,
        handler: F,
    ) -> &mut Self
    where
        Req: ToSchema,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.register::<Req, F, Args>(doc, handler, || Output::Text(content_type))
    }

    fn register<Req, F, Args>(
        &mut self,
        doc: RouteDoc,
        handler: F,
        output: impl Fn() -> Output,
    ) -> &mut Self
    where
        Req: ToSchema,
        F: actix_web::Handler<Args> + Clone,
        Args: FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        // A resource-level method guard lets two resources share a path (002 answers GET and
        // POST on `/points` with different handlers): the router skips a resource whose guard
        // refuses instead of answering 405.
        let guard = doc.methods.iter().skip(1).fold(
            guard::Any(guard::Method(doc.methods[0].clone())),
            |any, m| any.or(guard::Method(m.clone())),
        );
        let mut resource = web::resource(doc.path).guard(guard);
        for m in doc.methods {
            resource = resource.route(web::method(m.clone()).to(handler.clone()));
        }
        self.cfg.service(resource);
        self.doc
            .methods
            .entry(doc.path.to_string())
            .or_default()
            .extend(doc.methods.iter().cloned());

        let envelope = self.envelope.unwrap_or_else(|| Envelope::of_path(doc.path));
        for m in doc.methods {
            self.doc.operations.push(Operation {
                path: doc.path,
                method: m.clone(),
                tag: doc.tag,
                summary: doc.summary,
                description: doc.description,
                envelope,
                auth: Auth::of_route::<Args>(doc.path),
                input: TypeDoc::of::<Req>(),
                output: output(),
            });
        }
        self
    }
}

/// A request or answer without fields.
#[derive(serde::Serialize, serde::Deserialize, ToSchema, Default)]
pub struct Empty {}
