//! Logs (tracing) and metrics (Prometheus text format via prometheus-client).
//!
//! Nothing here ever records a token, secret, code or request body: request
//! logs carry the method, the route template (not the URI, whose query may
//! hold codes), the status and the latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::config::LogFormat;

/// Install the global tracing subscriber (the one global tenure has: the
/// logging facade itself).
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| format!("log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// The `method` label of a request: the standard methods (RFC 9110 9.3,
/// RFC 5789) by name, anything else as `other`, so a client inventing
/// methods cannot grow the metrics without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN.iter().find(|(m, _)| m == method).map_or("other", |(_, label)| label)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

/// How a revocation-feed SET left the queue, or failed to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SsfLabels {
    /// `poll` or `push`.
    pub delivery: String,
    /// `delivered` (pushed and accepted, or acknowledged by a poll),
    /// `rejected` (a receiver's 400 or `setErrs`), `failed` (a push to retry).
    pub outcome: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The process's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub oauth_errors: Family<ErrorLabels, Counter>,
    pub store_sweeps_removed: Counter,
    /// argon2 verifications run (passwords and client secrets).
    pub secret_verifications: Counter,
    /// Verifications turned away because every hashing slot stayed busy.
    pub hashing_busy: Counter,
    pub ssf_sets: Family<SsfLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Count `n` revocation-feed SETs that went out by `delivery` with `outcome`.
    pub fn ssf(&self, delivery: &str, outcome: &str, n: usize) {
        let labels = SsfLabels { delivery: delivery.to_owned(), outcome: outcome.to_owned() };
        self.ssf_sets.get_or_create(&labels).inc_by(n as u64);
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tenure");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        let oauth_errors = Family::<ErrorLabels, Counter>::default();
        let store_sweeps_removed = Counter::default();
        registry.register("http_requests", "HTTP requests by method, route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", http_duration.clone());
        registry.register("tokens_issued", "Access tokens issued by grant type", tokens_issued.clone());
        registry.register("oauth_errors", "OAuth error responses by error code", oauth_errors.clone());
        registry.register(
            "store_swept_records",
            "Expired records removed by the sweeper",
            store_sweeps_removed.clone(),
        );
        let secret_verifications = Counter::default();
        let hashing_busy = Counter::default();
        registry.register(
            "secret_verifications",
            "argon2 verifications of passwords and client secrets",
            secret_verifications.clone(),
        );
        registry.register(
            "hashing_busy",
            "Sign-ins and client authentications refused because every hashing slot was busy",
            hashing_busy.clone(),
        );
        let ssf_sets = Family::<SsfLabels, Counter>::default();
        registry.register("ssf_sets", "Revocation-feed SETs by delivery method and outcome", ssf_sets.clone());
        Metrics {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            oauth_errors,
            store_sweeps_removed,
            secret_verifications,
            hashing_busy,
            ssf_sets,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["FOO", "BREW", "get", "X-1"] {
            assert_eq!(method_label(&Method::from_bytes(invented.as_bytes()).expect("token")), "other", "{invented}");
        }
    }
}
