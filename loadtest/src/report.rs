//! Result accounting and output: latency histogram, error counts by kind, and the markdown row or
//! JSON line a run prints.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::args::Options;

/// Highest latency the histogram tracks exactly, in microseconds (one minute); larger values are
/// clamped, which only happens far beyond any request timeout we allow by default.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Three significant digits: 0.1% resolution at every magnitude.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Error kind used for open-loop requests that were never sent because of `--max-inflight`.
pub const DROPPED_KIND: &str = "dropped (max-inflight)";

pub const TABLE_HEADER: &str = "\
| label | scenario | requests ok | errors | seconds | req/s | p50 ms | p99 ms | max ms |
|---|---|---:|---:|---:|---:|---:|---:|---:|";

/// How one request ended.
pub enum Outcome {
    Ok,
    /// A failed request, described by a short stable kind such as `http 503`.
    Error(String),
}

/// Counters and latencies of one worker, or of a whole run once merged.
pub struct Stats {
    /// Latency of successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    pub fn new() -> Result<Self> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .context("creating latency histogram")?;
        Ok(Stats {
            latency_us,
            ok: 0,
            errors: BTreeMap::new(),
        })
    }

    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok => {
                self.ok += 1;
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Outcome::Error(kind) => self.count_error(kind),
        }
    }

    pub fn count_error(&mut self, kind: String) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Stats) -> Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .context("merging latency histograms")?;
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_insert(0) += count;
        }
        Ok(())
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Why a run stopped issuing requests.
#[derive(Clone, Copy)]
pub enum StopReason {
    /// The request budget was used up.
    Requests,
    /// The time budget ran out first.
    Duration,
    /// The open-loop schedule was completed.
    Schedule,
}

impl StopReason {
    fn name(self) -> &'static str {
        match self {
            StopReason::Requests => "requests",
            StopReason::Duration => "duration",
            StopReason::Schedule => "schedule",
        }
    }
}

/// Everything a finished run reports.
pub struct Summary {
    pub stats: Stats,
    /// From the first request issued until the last response arrived.
    pub elapsed: Duration,
    pub stopped_by: StopReason,
}

impl Summary {
    fn req_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency at `quantile` in milliseconds, or `None` when nothing succeeded.
    fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        let h = &self.stats.latency_us;
        (!h.is_empty()).then(|| h.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn max_ms(&self) -> Option<f64> {
        let h = &self.stats.latency_us;
        (!h.is_empty()).then(|| h.max() as f64 / 1000.0)
    }

    fn mean_ms(&self) -> Option<f64> {
        let h = &self.stats.latency_us;
        (!h.is_empty()).then(|| h.mean() / 1000.0)
    }

    pub fn markdown_row(&self, options: &Options) -> String {
        let ms = |value: Option<f64>| value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        format!(
            "| {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} |",
            options.label.replace('|', "\\|"),
            options.scenario.name(),
            self.stats.ok,
            self.stats.error_total(),
            self.elapsed.as_secs_f64(),
            self.req_per_s(),
            ms(self.quantile_ms(0.5)),
            ms(self.quantile_ms(0.99)),
            ms(self.max_ms()),
        )
    }

    pub fn json_line(&self, options: &Options) -> String {
        let round2 = |value: f64| (value * 100.0).round() / 100.0;
        // Latencies are recorded in microseconds, so three decimals of a millisecond are exact.
        let ms = |value: Option<f64>| value.map(|v| (v * 1000.0).round() / 1000.0);
        let dropped = self.stats.errors.get(DROPPED_KIND).copied().unwrap_or(0);
        let value = json!({
            "label": options.label,
            "scenario": options.scenario.name(),
            "ok": self.stats.ok,
            "errors": self.stats.error_total(),
            "dropped": dropped,
            "seconds": round2(self.elapsed.as_secs_f64()),
            "req_per_s": round2(self.req_per_s()),
            "p50_ms": ms(self.quantile_ms(0.5)),
            "p90_ms": ms(self.quantile_ms(0.9)),
            "p99_ms": ms(self.quantile_ms(0.99)),
            "p999_ms": ms(self.quantile_ms(0.999)),
            "max_ms": ms(self.max_ms()),
            "mean_ms": ms(self.mean_ms()),
            "error_kinds": self.stats.errors,
            "stopped_by": self.stopped_by.name(),
            "concurrency": match options.scenario {
                crate::args::Scenario::LedgerRate => None,
                _ => Some(options.concurrency),
            },
            "rate": options.rate,
            "max_inflight": options.rate.map(|_| options.max_inflight),
        });
        value.to_string()
    }

    /// Writes the result to stdout (and `--json-out`), and the error breakdown to stderr.
    pub fn print(&self, options: &Options) -> Result<()> {
        let json_line = self.json_line(options);
        let mut out = std::io::stdout().lock();
        if options.json {
            writeln!(out, "{json_line}")?;
        } else {
            if !options.no_header {
                writeln!(out, "{TABLE_HEADER}")?;
            }
            writeln!(out, "{}", self.markdown_row(options))?;
        }
        out.flush()?;

        if let Some(path) = &options.json_out {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening --json-out file {path}"))?;
            writeln!(file, "{json_line}").with_context(|| format!("writing {path}"))?;
        }

        if !self.stats.errors.is_empty() {
            let mut err = std::io::stderr().lock();
            writeln!(
                err,
                "{} {}: {} errors by kind:",
                options.label,
                options.scenario.name(),
                self.stats.error_total()
            )?;
            for (kind, count) in &self.stats.errors {
                writeln!(err, "  {count:>8}  {kind}")?;
            }
        }
        Ok(())
    }
}
