//! `[metrics]`: where Prometheus metrics are served, if anywhere (a warning when other hosts
//! can reach it).

use super::{raw, Checker};

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served (Prometheus), if anywhere.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[metrics]` checked.
pub(super) fn check(
    m: &raw::RawMetrics,
    c: &mut Checker,
    warnings: &mut Vec<String>,
) -> MetricsSettings {
    MetricsSettings {
        listen: m
            .listen
            .as_deref()
            .and_then(|l| match l.parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    if !a.ip().is_loopback() {
                        warnings.push(format!(
                            "metrics.listen = {l:?} is reachable from other hosts: the metrics \
                             hold no secrets, but job names and counts are visible; prefer \
                             127.0.0.1 behind a firewall or a scraping proxy"
                        ));
                    }
                    Some(a)
                }
                Err(_) => {
                    c.push(
                        "metrics.listen",
                        format!("{l:?} is not an address and port, such as \"127.0.0.1:9464\""),
                    );
                    None
                }
            }),
    }
}
