//! `/metrics` (Prometheus text format 0.0.4), `/healthz` and `/readyz` for `lb controller`
//! and `lb speaker`, with MetalLB's metric names where the meaning is the same, so existing
//! dashboards and alerts keep working.
//!
//! Invariants: counters only go up (values read from the announcers, which restart their
//! own counts with a session, are added as deltas); `/healthz` answers while the process
//! runs; `/readyz` answers 200 only once the process has had its initial lists.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Whether the process is ready (served on `/readyz`).
pub type Ready = Arc<AtomicBool>;

/// Starts serving on `addr`; returns the bound address.
pub async fn serve(addr: SocketAddr, registry: Registry, ready: Ready) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (registry, ready) = (registry.clone(), ready.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(req, registry.clone(), ready.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    Ok(bound)
}

/// Serves `registry` on `addr` (a flag error when it cannot) and logs where; returns the
/// readiness flag that `/readyz` reports.
pub async fn start(addr: SocketAddr, registry: &Registry) -> crate::Result<Ready> {
    let ready = Ready::default();
    let bound = serve(addr, registry.clone(), ready.clone())
        .await
        .map_err(|e| crate::Error::Invalid(format!("--metrics-addr {addr}: {e}")))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(ready)
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    registry: Registry,
    ready: Ready,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (code, ctype, body) = match req.uri().path() {
        "/metrics" => {
            let mut buf = Vec::new();
            let enc = TextEncoder::new();
            match enc.encode(&registry.gather(), &mut buf) {
                Ok(()) => (StatusCode::OK, enc.format_type().to_string(), buf),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain".into(), e.to_string().into_bytes()),
            }
        }
        "/healthz" | "/livez" => (StatusCode::OK, "text/plain".into(), b"ok\n".to_vec()),
        "/readyz" if ready.load(Ordering::SeqCst) => (StatusCode::OK, "text/plain".into(), b"ok\n".to_vec()),
        "/readyz" => {
            (StatusCode::SERVICE_UNAVAILABLE, "text/plain".into(), b"waiting for the initial lists\n".to_vec())
        }
        _ => (StatusCode::NOT_FOUND, "text/plain".into(), b"not found\n".to_vec()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert("content-type", v);
    }
    Ok(resp)
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are constants, registered once per registry: a failure is a programming error
    // that the tests catch; the metric then simply is not served.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "cannot register a metric");
    }
    c
}

/// Whether the configuration in force is the one in the cluster, with MetalLB's names:
/// `metallb_k8s_client_config_loaded_bool` (1 once a valid configuration has loaded) and
/// `metallb_k8s_client_config_stale_bool` (1 while the latest one is invalid and the last
/// valid one is kept).
#[derive(Clone)]
pub struct ConfigMetrics {
    loaded: prometheus::IntGauge,
    stale: prometheus::IntGauge,
}

impl ConfigMetrics {
    /// Registers them in `r`.
    pub fn new(r: &Registry) -> Self {
        let g = |n: &str, h: &str| register(r, prometheus::IntGauge::new(n, h).expect("valid"));
        ConfigMetrics {
            loaded: g("metallb_k8s_client_config_loaded_bool", "1 if a valid configuration has been loaded"),
            stale: g(
                "metallb_k8s_client_config_stale_bool",
                "1 if the latest configuration is invalid and the last valid one is in force",
            ),
        }
    }

    /// After a validation: whether any valid configuration is loaded, and whether the latest
    /// one was rejected.
    pub fn set(&self, loaded: bool, stale: bool) {
        self.loaded.set(i64::from(loaded));
        self.stale.set(i64::from(stale));
    }
}

/// The controller's metrics.
pub struct ControllerMetrics {
    in_use: IntGaugeVec,
    total: GaugeVec,
    /// Write and watch errors, by kind (`conflict`, `api`, `watch`).
    pub errors: IntCounterVec,
}

impl ControllerMetrics {
    /// Registers them in `r`.
    pub fn new(r: &Registry) -> Self {
        let g = |n: &str, h: &str| IntGaugeVec::new(Opts::new(n, h), &["pool"]);
        ControllerMetrics {
            in_use: register(
                r,
                g("metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool")
                    .expect("valid"),
            ),
            total: register(
                r,
                GaugeVec::new(
                    Opts::new("metallb_allocator_addresses_total", "Number of usable IP addresses, per pool"),
                    &["pool"],
                )
                .expect("valid"),
            ),
            errors: register(
                r,
                IntCounterVec::new(
                    Opts::new("lb_controller_errors_total", "Errors talking to the API server, by kind"),
                    &["kind"],
                )
                .expect("valid"),
            ),
        }
    }

    /// Pool sizes and use after a pass (pools that are gone are dropped).
    pub fn pools(&self, stats: &[lbcore::ipam::PoolStats]) {
        self.in_use.reset();
        self.total.reset();
        for s in stats {
            self.in_use.with_label_values(&[&s.name]).set(i64::try_from(s.assigned).unwrap_or(i64::MAX));
            self.total.with_label_values(&[&s.name]).set(s.size as f64);
        }
    }
}

/// The speaker's metrics.
pub struct SpeakerMetrics {
    announced: IntGaugeVec,
    requests: IntCounterVec,
    responses: IntCounterVec,
    gratuitous: IntCounterVec,
    dropped: IntCounterVec,
    session_up: IntGaugeVec,
    updates: IntCounterVec,
    prefixes: IntGaugeVec,
    /// Last values read from the announcers, to add deltas.
    seen: Mutex<BTreeMap<(String, String), u64>>,
}

impl SpeakerMetrics {
    /// Registers them in `r`.
    pub fn new(r: &Registry) -> Self {
        let counter =
            |n: &str, h: &str, l: &[&str]| register(r, IntCounterVec::new(Opts::new(n, h), l).expect("valid"));
        let gauge = |n: &str, h: &str, l: &[&str]| register(r, IntGaugeVec::new(Opts::new(n, h), l).expect("valid"));
        SpeakerMetrics {
            announced: gauge(
                "metallb_speaker_announced",
                "Services being announced from this node (1)",
                &["ip", "node", "protocol", "service"],
            ),
            requests: counter("metallb_layer2_requests_received", "ARP/NDP requests received for an owned IP", &["ip"]),
            responses: counter("metallb_layer2_responses_sent", "ARP/NDP responses sent for an owned IP", &["ip"]),
            gratuitous: counter("metallb_layer2_gratuitous_sent", "Gratuitous ARP/NDP sent for an owned IP", &["ip"]),
            dropped: counter(
                "lb_layer2_responses_dropped",
                "ARP/NDP responses not sent for an owned IP because the reply rate bound was reached",
                &["ip"],
            ),
            session_up: gauge("metallb_bgp_session_up", "BGP session state (1 is up, 0 is down)", &["peer"]),
            updates: counter("metallb_bgp_updates_total", "BGP UPDATE messages sent", &["peer"]),
            prefixes: gauge(
                "metallb_bgp_announced_prefixes_total",
                "Prefixes currently announced on the session",
                &["peer"],
            ),
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds to `c{label}` what `value` (a count that may restart from 0) grew by.
    fn advance(&self, c: &IntCounterVec, name: &str, label: &str, value: u64) {
        let Ok(mut seen) = self.seen.lock() else { return };
        let last = seen.entry((name.to_string(), label.to_string())).or_insert(0);
        let delta = if value >= *last { value - *last } else { value };
        *last = value;
        c.with_label_values(&[label]).inc_by(delta);
    }

    /// What this node announces: (service, protocol, ip) triples.
    pub fn announced(&self, node: &str, items: &[(String, &str, String)]) {
        self.announced.reset();
        for (svc, protocol, ip) in items {
            self.announced.with_label_values(&[ip, node, protocol, svc]).set(1);
        }
    }

    /// The L2 announcer's counters.
    pub fn layer2(&self, counts: &BTreeMap<std::net::IpAddr, announcer_l2::L2Counts>) {
        for (ip, c) in counts {
            let ip = ip.to_string();
            self.advance(&self.requests, "requests", &ip, c.requests);
            self.advance(&self.responses, "responses", &ip, c.responses);
            self.advance(&self.gratuitous, "gratuitous", &ip, c.gratuitous);
            self.advance(&self.dropped, "dropped", &ip, c.dropped);
        }
    }

    /// The BGP sessions' counters.
    pub fn bgp(&self, stats: &BTreeMap<String, announcer_bgp::PeerStats>) {
        self.session_up.reset();
        self.prefixes.reset();
        for (peer, s) in stats {
            self.session_up.with_label_values(&[peer]).set(i64::from(s.up));
            self.prefixes.with_label_values(&[peer]).set(i64::try_from(s.prefixes).unwrap_or(i64::MAX));
            self.advance(&self.updates, "updates", peer, s.updates_sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn bgp_counters_only_grow_across_session_restarts() {
        let r = Registry::new();
        let m = SpeakerMetrics::new(&r);
        let stats = |up, updates_sent, prefixes| {
            BTreeMap::from([("tor".to_string(), announcer_bgp::PeerStats { up, updates_sent, prefixes })])
        };
        m.bgp(&stats(true, 5, 3));
        let t = text(&r);
        assert!(t.contains("metallb_bgp_session_up{peer=\"tor\"} 1"), "{t}");
        assert!(t.contains("metallb_bgp_updates_total{peer=\"tor\"} 5"), "{t}");
        assert!(t.contains("metallb_bgp_announced_prefixes_total{peer=\"tor\"} 3"), "{t}");
        // The session restarts: its own count starts again from 0.
        m.bgp(&stats(false, 0, 0));
        m.bgp(&stats(true, 2, 3));
        let t = text(&r);
        assert!(t.contains("metallb_bgp_updates_total{peer=\"tor\"} 7"), "{t}");
        assert!(t.contains("metallb_bgp_session_up{peer=\"tor\"} 1"), "{t}");
    }
}
