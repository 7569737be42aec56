//! One parser per kind of caller input, the same rule in every dialect.
//!
//! - **App id** ([`AppId`]): absent, empty or blank means the default app `default`; anything
//!   else is the app id as sent, trimmed.
//! - **Idempotency key** ([`IdempotencyKey`]): a caller-chosen key (`transactionId`,
//!   `operationId`, `transaction_id`, or the `Idempotency-Key` header; a body field wins over the
//!   header). Trimmed, it must be 1-[`IDEMPOTENCY_KEY_BYTES_MAX`] bytes of text without control
//!   characters and without `#` (the ledger names a change's extra entries `<key>#<n>`). A header
//!   that is not visible ASCII is refused, never dropped. The stored key is namespaced by the
//!   route family (`core:`, `center:`, `open:`, `shop:` ...) so one family's keys never collide
//!   with another's. A key sent for a user (002's `transactionId` and `operationId`, the shop's
//!   `transaction_id`) is also scoped to that user ([`IdempotencyKey::for_user`]:
//!   `open@<user id>:<key>`), so one user's key never blocks another user's request; the server
//!   routes that move points for any user (`core:`, `center:`) keep one key space per app.
//! - **Points** ([`Points`]): an amount of points to move, signed (credit positive, debit
//!   negative), non-zero and at most the ledger's `CHANGE_AMOUNT_ABS_MAX` in magnitude, so no
//!   accepted amount can overflow a balance.
//! - **Status** ([`Status`]): the seeds' `"10"` / `"20"` / `"30"` codes of anything an admin
//!   configures, named in one place.

use actix_web::HttpRequest;
use points_actors::ledger::CHANGE_AMOUNT_ABS_MAX;
use points_actors::LedgerError;

use crate::error::AppError;

/// Longest idempotency key accepted from a client.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;
/// The app a request names when it names none.
pub const DEFAULT_APP: &str = "default";

/// The app a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppId(String);

impl AppId {
    /// The app named by `raw` (see the module doc for the rule).
    pub fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim) {
            Some(app) if !app.is_empty() => AppId(app.to_string()),
            _ => AppId(DEFAULT_APP.to_string()),
        }
    }

    /// [`AppId::parse`] of an optional owned field.
    pub fn of(raw: &Option<String>) -> Self {
        Self::parse(raw.as_deref())
    }

    /// The app id named by an optional owned field, as text.
    pub fn text(raw: Option<String>) -> String {
        Self::parse(raw.as_deref()).0
    }

    /// The app id named by an optional field, as text.
    pub fn text_of(raw: &Option<String>) -> String {
        Self::of(raw).0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount of points to move: a credit (positive) or a debit (negative), never zero, at most
/// [`CHANGE_AMOUNT_ABS_MAX`] in magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Points(i64);

impl Points {
    /// The amount, or the ledger's own "out of range" error.
    pub fn parse(amount: i64) -> Result<Points, AppError> {
        if amount == 0 || amount.unsigned_abs() > CHANGE_AMOUNT_ABS_MAX.unsigned_abs() {
            return Err(LedgerError::InvalidAmount(amount).into());
        }
        Ok(Points(amount))
    }

    /// The signed amount.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Whether the amount credits the user.
    pub fn is_credit(self) -> bool {
        self.0 > 0
    }
}

/// A caller-chosen idempotency key, checked and namespaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `raw` and namespaces it under `namespace`.
    pub fn parse(namespace: &str, raw: &str) -> Result<Self, AppError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(AppError::invalid("idempotency key is empty"));
        }
        if raw.len() > IDEMPOTENCY_KEY_BYTES_MAX || raw.chars().any(char::is_control) {
            return Err(AppError::invalid(format!(
                "idempotency key must be 1-{IDEMPOTENCY_KEY_BYTES_MAX} printable bytes"
            )));
        }
        if raw.contains('#') {
            return Err(AppError::invalid("idempotency key must not contain '#'"));
        }
        Ok(IdempotencyKey(format!("{namespace}:{raw}")))
    }

    /// The key from the body field `body`, else from the `Idempotency-Key` header; `None` when
    /// the caller sent neither.
    pub fn from_request(
        namespace: &str,
        body: Option<&str>,
        req: &HttpRequest,
    ) -> Result<Option<Self>, AppError> {
        if let Some(raw) = body {
            return Self::parse(namespace, raw).map(Some);
        }
        match req.headers().get("idempotency-key") {
            None => Ok(None),
            Some(value) => {
                let raw = value
                    .to_str()
                    .map_err(|_| AppError::invalid("Idempotency-Key must be printable ASCII"))?;
                Self::parse(namespace, raw).map(Some)
            }
        }
    }

    /// The key scoped to the user the change is for: `<namespace>@<user id>:<key>`. No key of
    /// another user, and no unscoped key (`<namespace>:<key>`), can equal it.
    pub fn for_user(self, user_id: i64) -> Self {
        match self.0.split_once(':') {
            Some((namespace, raw)) => IdempotencyKey(format!("{namespace}@{user_id}:{raw}")),
            None => self,
        }
    }

    /// The caller's own key from a key stored with [`IdempotencyKey::for_user`] in `namespace`.
    pub fn raw_of<'a>(namespace: &str, stored: &'a str) -> Option<&'a str> {
        let scoped = stored.strip_prefix(namespace)?.strip_prefix('@')?;
        Some(scoped.split_once(':')?.1)
    }

    /// The namespaced key, as the ledger stores it.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The status of something an admin configures (a red-packet session, card or pool, a lottery
/// board, a shop prize, a task, a banner), with the seeds' string codes: `"10"` on (shown, open),
/// `"20"` off (hidden, paused), `"30"` deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    On,
    Off,
    Deleted,
}

impl Status {
    /// Every code, in order.
    pub const CODES: [&'static str; 3] = ["10", "20", "30"];

    /// The seed's code of this status.
    pub const fn code(self) -> &'static str {
        match self {
            Status::On => "10",
            Status::Off => "20",
            Status::Deleted => "30",
        }
    }

    /// The status a code names, if any.
    pub fn parse(code: &str) -> Option<Status> {
        match code {
            "10" => Some(Status::On),
            "20" => Some(Status::Off),
            "30" => Some(Status::Deleted),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        assert_eq!(AppId::parse(None).as_str(), "default");
        assert_eq!(AppId::parse(Some("")).as_str(), "default");
        assert_eq!(AppId::parse(Some("  ")).as_str(), "default");
        assert_eq!(AppId::parse(Some(" wx1 ")).as_str(), "wx1");
    }

    #[test]
    fn idempotency_keys() {
        assert_eq!(
            IdempotencyKey::parse("core", " k1 ")
                .map(IdempotencyKey::into_string)
                .ok(),
            Some("core:k1".to_string())
        );
        for bad in ["", "  ", "a#b", "a\u{0}b", &"x".repeat(129)] {
            assert!(IdempotencyKey::parse("core", bad).is_err(), "{bad:?}");
        }
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Idempotency-Key", "h1"))
            .to_http_request();
        let from_header = IdempotencyKey::from_request("open", None, &req)
            .ok()
            .flatten()
            .map(IdempotencyKey::into_string);
        assert_eq!(from_header.as_deref(), Some("open:h1"));
        let from_body = IdempotencyKey::from_request("open", Some("b1"), &req)
            .ok()
            .flatten()
            .map(IdempotencyKey::into_string);
        assert_eq!(from_body.as_deref(), Some("open:b1"));
    }
}
