//! The rate-limit middleware: classifies the request, finds whom it counts against and answers
//! 429 in the route's dialect before anything of the request is read.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use sha2::{Digest, Sha256};

use super::limiter::Keys;
use super::RouteClass;
use crate::error::AppError;
use crate::http::{bearer, live_session, query_token};
use crate::state::AppState;

/// Header a node adds to a request it relays to the activity's owner: the owner does not count
/// it again (it was counted where it arrived, against the real client's address).
pub const RELAY_TOKEN: &str = "x-points-relay-token";

/// The token nodes that share an admin key recognise each other's relays by; `None` without
/// an admin key (relayed requests are then counted on both nodes).
pub fn relay_token(admin_key: Option<&str>) -> Option<String> {
    let key = admin_key?;
    let mut hash = Sha256::new();
    hash.update(b"points-engine relay\0");
    hash.update(key.as_bytes());
    Some(hex::encode(hash.finalize()))
}

/// Middleware: answers 429 with `Retry-After` when the caller is over a limit of the route's
/// class.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(class) = RouteClass::of(req.method(), req.path()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let limiter = &state.limiter;
    if limiter.limits().is_off() || is_relayed(&state, &req) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let keys = Keys {
        user: user_key(&state, &req).await,
        ip: ip_key(&state, &req),
    };
    match limiter.check(class, &keys, state.redis.as_ref()).await {
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
        Err(wait) => {
            state
                .metrics
                .rate_limited
                .with_label_values(&[class.name()])
                .inc();
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let answer = crate::dialect::failure_for_path(req.path(), AppError::RateLimited(secs));
            Ok(req.into_response(answer))
        }
    }
}

fn is_relayed(state: &AppState, req: &ServiceRequest) -> bool {
    let Some(expected) = state.limiter.relay_token() else {
        return false;
    };
    req.headers()
        .get(RELAY_TOKEN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| crate::http::secret_eq(given, expected))
}

/// `<app>:<user id>` of the caller: the session of a bearer token, or the 002 caller named by a
/// gateway that sent the right secret.
async fn user_key(state: &AppState, req: &ServiceRequest) -> Option<String> {
    if req.path().starts_with("/api/v1/open/") {
        let secret = state.settings.gateway_secret.as_deref()?;
        let given = req.headers().get("x-gateway-secret")?.to_str().ok()?;
        if !crate::http::secret_eq(given, secret) {
            return None;
        }
        let uid = req.headers().get("x-consumer-custom-id")?.to_str().ok()?;
        let app = req
            .headers()
            .get("x-app-id")
            .and_then(|v| v.to_str().ok())
            .map(|a| crate::dialect::AppId::parse(Some(a)).into_string())
            .unwrap_or_else(|| crate::dialect::input::DEFAULT_APP.to_string());
        return Some(format!("{app}:gateway:{uid}"));
    }
    let token = bearer(req.request()).or_else(|| {
        // A websocket upgrade authenticates in its query.
        (req.path() == "/ws")
            .then(|| query_token(req.request()))
            .flatten()
    })?;
    let session = live_session(state, &token).await?;
    Some(format!("{}:{}", session.app_id, session.user_id))
}

/// The client address, except behind the API gateway of 002: every 002 call comes from the
/// gateway's few addresses, so 002 counts by user only.
fn ip_key(state: &AppState, req: &ServiceRequest) -> Option<String> {
    if req.path().starts_with("/api/v1/open/") {
        return None;
    }
    state.settings.trusted_proxies.client_of(req.request())
}
