//! Relaying a request to the node that owns its activity.
//!
//! A handler that finds another node owning the activity answers [`AppError::Elsewhere`]; its
//! rendered response carries a [`ForwardTo`] mark. [`relay`], wrapped around every route, sees
//! the mark, sends the request as it arrived (method, path and query, headers, the body the
//! extractor kept) to the owner over a keep-alive pool with a timeout, and answers with the
//! owner's response; the client never sees a redirect. A request relays at most once: a node
//! that receives a relayed request for an activity it does not own answers "try again" (the
//! dialect's unavailable answer) instead of relaying it further. When the owner cannot be
//! reached, the same answer goes out; the owner's lease runs out within its TTL and the retry
//! lands on the next owner.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse};

use crate::error::ForwardTo;
use crate::http::RawBody;
use crate::state::AppState;

/// Header a relaying node adds: its node id.
pub const RELAYED_BY: &str = "x-points-relayed-by";
/// Header on a relayed answer: the node that served it.
pub const SERVED_BY: &str = "x-points-served-by";
/// How long a relayed request may take, end to end.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most idle keep-alive connections to one node.
pub const RELAY_IDLE_CONNECTIONS_MAX: usize = 64;
/// Most requests this node relays at once; past it a relay answers "try again".
pub const RELAYS_IN_FLIGHT_MAX: usize = 512;

/// Headers that describe one connection, never relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

/// The client nodes relay through.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(RELAY_IDLE_CONNECTIONS_MAX)
        .connect_timeout(Duration::from_secs(1))
        .timeout(RELAY_TIMEOUT)
        .build()
}

/// Middleware: relays the requests whose handler found their activity owned elsewhere.
pub async fn relay(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?;
    let Some(ForwardTo(addr)) = res.response().extensions().get::<ForwardTo>().cloned() else {
        return Ok(res.map_into_boxed_body());
    };
    let request = res.request().clone();
    if request.headers().contains_key(RELAYED_BY) {
        return Ok(res.map_into_boxed_body());
    }
    let Some(state) = request
        .app_data::<actix_web::web::Data<AppState>>()
        .cloned()
    else {
        return Ok(res.map_into_boxed_body());
    };
    let Ok(_slot) = state.cluster.relay_slots.try_acquire() else {
        return Ok(res.map_into_boxed_body());
    };
    match send(&state, &request, &addr).await {
        Ok(answer) => {
            state
                .metrics
                .cluster
                .relayed
                .with_label_values(&["ok"])
                .inc();
            Ok(ServiceResponse::new(request, answer))
        }
        Err(e) => {
            state
                .metrics
                .cluster
                .relayed
                .with_label_values(&["failed"])
                .inc();
            tracing::warn!(owner = %addr, error = %e, "relaying to the activity's owner failed");
            state.cluster.forget_holder(&addr);
            Ok(res.map_into_boxed_body())
        }
    }
}

async fn send(state: &AppState, req: &HttpRequest, addr: &str) -> anyhow::Result<HttpResponse> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())?;
    let mut out = state
        .cluster
        .relay_client
        .request(method, format!("{addr}{path}"))
        .header(RELAYED_BY, state.cluster.node_id.as_str());
    if let Some(token) = state.limiter.relay_token() {
        out = out.header(crate::limits::middleware::RELAY_TOKEN, token);
    }
    for (name, value) in req.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) || name == crate::limits::middleware::RELAY_TOKEN {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    let body = req.extensions().get::<RawBody>().map(|b| b.0.clone());
    if let Some(body) = body {
        out = out.body(body);
    }
    let answer = out.send().await?;
    let status = StatusCode::from_u16(answer.status().as_u16())?;
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        response.append_header((name.as_str(), value.as_bytes()));
    }
    let served_by = answer
        .headers()
        .get(SERVED_BY)
        .is_none()
        .then(|| addr.to_string());
    if let Some(addr) = served_by {
        response.insert_header((SERVED_BY, addr));
    }
    let body = answer.bytes().await?;
    Ok(response.body(body.to_vec()))
}
