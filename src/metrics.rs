//! Prometheus metrics: requests by route and status, latency, and the ledger's queue, batch size
//! and commit latency. Served at `/metrics`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use points_actors::LedgerMetrics;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every metric of the process, in one registry.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub ledger: LedgerMetrics,
    pub cluster: ClusterMetrics,
    /// Requests answered 429 by a rate limit, by route class.
    pub rate_limited: IntCounterVec,
    /// Websockets refused at upgrade or closed for flooding, by reason.
    pub ws_refused: IntCounterVec,
    /// Websockets open on this node.
    pub ws_connections: IntGauge,
    /// Fulfilment orders not delivered yet (the outbox's backlog).
    pub fulfilment_pending: IntGauge,
    pub fulfilment_dead: IntGauge,
}

/// What several nodes count: leases, takeovers, fenced commits, relayed requests.
#[derive(Clone)]
pub struct ClusterMetrics {
    /// Activity leases this node holds now.
    pub leases_held: IntGauge,
    /// Leases this node took from another node or from a lapsed lease.
    pub takeovers: IntCounter,
    /// Changes a commit refused because their activity's epoch had moved on.
    pub fenced: IntCounter,
    /// Requests relayed to an activity's owner, by result (`ok`, `failed`).
    pub relayed: IntCounterVec,
    /// Websocket frames through Redis, by result (`published`, `failed`, `received`).
    pub fanout_frames: IntCounterVec,
    /// Time from a frame's publishing on its owner to its delivery on this node.
    pub fanout_lag: Histogram,
    /// Committed changes through Redis, by result (`published`, `failed`, `received`).
    pub fanout_changes: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("points".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )?;
        let queue_depth =
            IntGauge::new("ledger_queue_depth", "Changes waiting for a ledger commit")?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("ledger_batch_size", "Changes per ledger commit").buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )?;
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new("ledger_commit_seconds", "Ledger batch commit latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            ),
        )?;
        let commit_failures =
            IntCounter::new("ledger_commit_failures_total", "Ledger batches that failed")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(commit_seconds.clone()))?;
        registry.register(Box::new(commit_failures.clone()))?;
        let cluster = ClusterMetrics {
            leases_held: IntGauge::new("cluster_leases_held", "Activity leases this node holds")?,
            takeovers: IntCounter::new(
                "cluster_takeovers_total",
                "Activity leases this node took over (a new epoch)",
            )?,
            fenced: IntCounter::new(
                "cluster_fenced_changes_total",
                "Changes refused at commit because their activity has a newer owner",
            )?,
            relayed: IntCounterVec::new(
                Opts::new(
                    "cluster_relayed_requests_total",
                    "Requests relayed to the node that owns their activity, by result",
                ),
                &["result"],
            )?,
            fanout_frames: IntCounterVec::new(
                Opts::new(
                    "cluster_fanout_frames_total",
                    "Websocket frames fanned out through Redis, by result",
                ),
                &["result"],
            )?,
            fanout_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "cluster_fanout_lag_seconds",
                    "Time from a frame's publishing on its owner to its delivery on this node",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )?,
            fanout_changes: IntCounterVec::new(
                Opts::new(
                    "cluster_fanout_changes_total",
                    "Committed ledger batches shared through Redis for the leaderboards, by result",
                ),
                &["result"],
            )?,
        };
        registry.register(Box::new(cluster.leases_held.clone()))?;
        registry.register(Box::new(cluster.fanout_frames.clone()))?;
        registry.register(Box::new(cluster.fanout_lag.clone()))?;
        registry.register(Box::new(cluster.fanout_changes.clone()))?;
        registry.register(Box::new(cluster.takeovers.clone()))?;
        registry.register(Box::new(cluster.fenced.clone()))?;
        registry.register(Box::new(cluster.relayed.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_requests_total",
                "Requests answered 429 by a rate limit, by route class",
            ),
            &["class"],
        )?;
        let ws_refused = IntCounterVec::new(
            Opts::new(
                "ws_refused_total",
                "Websockets refused at upgrade or closed for flooding, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(ws_refused.clone()))?;
        let ws_connections = IntGauge::new("ws_connections", "Websockets open on this node")?;
        let fulfilment_pending = IntGauge::new(
            "fulfilment_pending_orders",
            "Fulfilment orders not delivered yet",
        )?;
        registry.register(Box::new(ws_connections.clone()))?;
        let fulfilment_dead = IntGauge::new(
            "fulfilment_dead_orders",
            "Fulfilment orders dead-lettered after their last attempt failed",
        )?;
        registry.register(Box::new(fulfilment_pending.clone()))?;
        registry.register(Box::new(fulfilment_dead.clone()))?;
        // CPU, memory, open files and threads of this process (Linux).
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            rate_limited,
            ws_refused,
            ws_connections,
            fulfilment_pending,
            fulfilment_dead,
            cluster,
            registry,
            requests,
            latency,
            ledger: LedgerMetrics {
                queue_depth,
                batch_size,
                commit_seconds,
                commit_failures,
            },
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The label of a request's method: the standard methods by name, any other as `other`, so a
/// client inventing methods cannot grow the label set.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Header of a request's id: taken from the request when it carries a sensible one (a proxy's),
/// made otherwise, and echoed on the answer.
pub const REQUEST_ID: &str = "x-request-id";
/// Longest request id taken from a request.
const REQUEST_ID_CHARS_MAX: usize = 64;

/// The request's own id, if it is 1-64 visible ASCII characters.
fn given_request_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?.trim();
    (!v.is_empty() && v.len() <= REQUEST_ID_CHARS_MAX && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

/// Middleware: gives every request an id (echoed in `X-Request-Id`), writes one access line at
/// `info` (method, route pattern, status, latency, id), and counts and times the request under
/// its route pattern (not its raw path, so the label set stays bounded).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<std::sync::Arc<Metrics>>>()
        .cloned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let id = given_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut res = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    tracing::info!(
        target: "access",
        method,
        route = %route,
        status,
        ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
        request_id = %id,
        "request"
    );
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&id) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(REQUEST_ID),
            value,
        );
    }
    if let Some(m) = metrics {
        let status = status.to_string();
        m.requests
            .with_label_values(&[route.as_str(), method, status.as_str()])
            .inc();
        m.latency
            .with_label_values(&[route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    Ok(res)
}
