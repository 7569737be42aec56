//! Domain errors, mapped once per facade.
//!
//! Handlers return [`AppError`]; each API dialect renders it into its own envelope and code table
//! through a [`Dialect`] implementation (see `crate::dialect`). Bad input is always one of the
//! 4xx-like variants: nothing here turns a caller's mistake into a 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use points_actors::activity::{ActivityError, Refusal};
use points_actors::LedgerError;
use std::fmt;
use std::marker::PhantomData;

/// What went wrong, independent of the API dialect that reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// A required field is missing or empty.
    Missing(String),
    /// A field has the wrong type or an invalid value.
    Invalid(String),
    /// No valid session token (absent, unknown or expired).
    Unauthorized(String),
    /// The admin key or gateway secret is missing or wrong.
    BadCredentials(String),
    /// The request names a user that is not the caller.
    WrongUser,
    /// The named user or thing does not exist.
    NotFound(String),
    /// A deduction larger than the balance.
    Insufficient { balance: i64, needed: i64 },
    /// An idempotency key reused with other parameters, or a state that forbids the action.
    Conflict(String),
    /// A daily cap or similar limit is used up.
    LimitReached(String),
    /// The body is larger than the route accepts.
    TooLarge,
    /// The body did not arrive within the read deadline.
    TooSlow,
    /// The caller (a user or a client address) is over a rate limit of the route's class; try
    /// again after this many seconds. Nothing changed.
    RateLimited(u64),
    /// The server is shedding load; try again later.
    Busy,
    /// A login provider (WeChat, Alipay) is not configured for the app.
    NotConfigured(String),
    /// A login provider refused or failed.
    Provider(String),
    /// Storage failed; nothing was changed.
    Unavailable(String),
    /// Another node owns the activity the request is for: the request is relayed to it (its
    /// base URL), and answered as unavailable (try again) if it cannot be.
    Elsewhere(String),
    /// A dialect-specific code chosen by the handler (003's per-route codes).
    Coded(i64, String),
    /// The activity's state forbids the action now: before start, after end, twice, sold out,
    /// not signed up. Nothing changed.
    Refused(Refusal),
}

impl AppError {
    pub fn missing(field: &str) -> Self {
        AppError::Missing(format!("missing field `{field}`"))
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::Invalid(msg.into())
    }

    pub fn unknown_user() -> Self {
        AppError::NotFound("user not found".into())
    }

    /// The HTTP-style class of the error, used by dialects that report HTTP statuses.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Missing(_) | AppError::Invalid(_) | AppError::Coded(..) => {
                StatusCode::BAD_REQUEST
            }
            AppError::Unauthorized(_) | AppError::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            AppError::WrongUser => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Insufficient { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) | AppError::Refused(_) => StatusCode::CONFLICT,
            AppError::LimitReached(_) | AppError::Busy | AppError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::TooSlow => StatusCode::REQUEST_TIMEOUT,
            AppError::NotConfigured(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Provider(_) => StatusCode::BAD_GATEWAY,
            AppError::Unavailable(_) | AppError::Elsewhere(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable name.
    pub fn name(&self) -> &'static str {
        match self {
            AppError::Missing(_) => "MISSING_FIELD",
            AppError::Invalid(_) => "INVALID_ARGUMENT",
            AppError::Unauthorized(_) => "UNAUTHORIZED",
            AppError::BadCredentials(_) => "BAD_CREDENTIALS",
            AppError::WrongUser => "WRONG_USER",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::Insufficient { .. } => "INSUFFICIENT_POINTS",
            AppError::Conflict(_) => "CONFLICT",
            AppError::LimitReached(_) => "LIMIT_REACHED",
            AppError::TooLarge => "PAYLOAD_TOO_LARGE",
            AppError::TooSlow => "REQUEST_TIMEOUT",
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::Busy => "BUSY",
            AppError::NotConfigured(_) => "NOT_CONFIGURED",
            AppError::Provider(_) => "PROVIDER_ERROR",
            AppError::Unavailable(_) | AppError::Elsewhere(_) => "UNAVAILABLE",
            AppError::Coded(..) => "REJECTED",
            AppError::Refused(_) => "REFUSED",
        }
    }

    /// An English sentence for logs and the English dialects.
    pub fn message(&self) -> String {
        match self {
            AppError::Missing(m)
            | AppError::Invalid(m)
            | AppError::Unauthorized(m)
            | AppError::BadCredentials(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::LimitReached(m)
            | AppError::NotConfigured(m)
            | AppError::Provider(m)
            | AppError::Coded(_, m) => m.clone(),
            AppError::Refused(r) => r.en(),
            AppError::WrongUser => "the request names another user than the caller".into(),
            AppError::Insufficient { balance, needed } => {
                format!("insufficient points: balance {balance}, needed {needed}")
            }
            AppError::TooLarge => "request body too large".into(),
            AppError::TooSlow => "the request body did not arrive in time".into(),
            AppError::RateLimited(secs) => {
                format!("too many requests; try again in {secs} s, nothing was changed")
            }
            AppError::Busy => "server busy, try again shortly".into(),
            AppError::Unavailable(_) | AppError::Elsewhere(_) => {
                "service temporarily unavailable, nothing was changed".into()
            }
        }
    }

    /// A Chinese sentence for the dialects whose clients show `msg` to the user.
    pub fn message_zh(&self) -> String {
        match self {
            AppError::Missing(m) => format!("参数不能为空: {m}"),
            AppError::Invalid(m) => format!("参数不正确: {m}"),
            AppError::Unauthorized(_) => "登录已失效，请重新登录".into(),
            AppError::BadCredentials(_) => "无权访问".into(),
            AppError::WrongUser => "用户不匹配".into(),
            AppError::NotFound(m) => format!("不存在: {m}"),
            AppError::Insufficient { .. } => "积分不足".into(),
            AppError::Conflict(m) => format!("请求冲突: {m}"),
            AppError::LimitReached(_) => "已达上限".into(),
            AppError::TooLarge => "请求内容过大".into(),
            AppError::TooSlow => "请求超时".into(),
            AppError::RateLimited(_) => "操作太频繁，请稍后再试".into(),
            AppError::Busy => "活动太火爆，请稍后再试".into(),
            AppError::NotConfigured(m) => format!("未配置: {m}"),
            AppError::Provider(m) => format!("登录失败: {m}"),
            AppError::Unavailable(_) | AppError::Elsewhere(_) => "系统繁忙，请稍后再试".into(),
            AppError::Coded(_, m) => m.clone(),
            AppError::Refused(r) => r.zh(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message())
    }
}

impl From<ActivityError> for AppError {
    fn from(e: ActivityError) -> Self {
        match e {
            ActivityError::Refused(r) => AppError::Refused(r),
            ActivityError::Ledger(e) => e.into(),
            ActivityError::Busy => AppError::Busy,
        }
    }
}

impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        AppError::Refused(r)
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Insufficient { balance, needed } => {
                AppError::Insufficient { balance, needed }
            }
            LedgerError::Conflict => {
                AppError::Conflict("idempotency key already used with other parameters".into())
            }
            LedgerError::LimitReached { .. } => AppError::LimitReached("limit reached".into()),
            LedgerError::InvalidAmount(a) => AppError::Invalid(format!(
                "amount {a} is out of range (non-zero, at most {} in magnitude)",
                points_actors::ledger::CHANGE_AMOUNT_ABS_MAX
            )),
            LedgerError::Busy => AppError::Busy,
            LedgerError::Storage(m) => {
                tracing::error!(error = %m, "ledger commit failed");
                AppError::Unavailable(m)
            }
            LedgerError::Fenced { activity } => AppError::Unavailable(format!(
                "activity {activity} moved to another node; try again"
            )),
            LedgerError::Rejected(m) => {
                tracing::warn!(error = %m, "ledger refused a change");
                AppError::invalid("the change holds a value that cannot be stored")
            }
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error");
        AppError::Unavailable(e.to_string())
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        tracing::error!(error = %e, "actor mailbox error");
        AppError::Busy
    }
}

/// How one API dialect renders errors.
pub trait Dialect: 'static {
    fn render(err: &AppError) -> HttpResponse;
}

/// An [`AppError`] on its way out through dialect `D`.
pub struct Failure<D: Dialect>(pub AppError, PhantomData<D>);

impl<D: Dialect> Failure<D> {
    pub fn new(err: AppError) -> Self {
        Failure(err, PhantomData)
    }
}

impl<D: Dialect> From<AppError> for Failure<D> {
    fn from(err: AppError) -> Self {
        Failure::new(err)
    }
}

impl<D: Dialect> From<LedgerError> for Failure<D> {
    fn from(err: LedgerError) -> Self {
        Failure::new(err.into())
    }
}

impl<D: Dialect> From<sqlx::Error> for Failure<D> {
    fn from(err: sqlx::Error) -> Self {
        Failure::new(err.into())
    }
}

impl<D: Dialect> From<actix::MailboxError> for Failure<D> {
    fn from(err: actix::MailboxError) -> Self {
        Failure::new(err.into())
    }
}

impl<D: Dialect> fmt::Debug for Failure<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<D: Dialect> fmt::Display for Failure<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Marks a response as "relay this request to the node at this base URL instead"; the
/// cluster's relay middleware acts on it.
#[derive(Debug, Clone)]
pub struct ForwardTo(pub String);

impl<D: Dialect> ResponseError for Failure<D> {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = D::render(&self.0);
        match &self.0 {
            AppError::Elsewhere(addr) => {
                response.extensions_mut().insert(ForwardTo(addr.clone()));
            }
            // Whatever the dialect answers other errors with, these two keep their HTTP status
            // (proxies and clients back off on it).
            AppError::RateLimited(secs) => {
                *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&secs.to_string())
                {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
            }
            AppError::TooSlow => *response.status_mut() = StatusCode::REQUEST_TIMEOUT,
            _ => {}
        }
        response
    }
}
