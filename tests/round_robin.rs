//! Two replicas behind a plain round-robin proxy (SPEC 12: "no sticky
//! sessions, no per-replica state"): consecutive requests land on
//! different replicas (the proxy counts them), and what one replica
//! started the other continues.

use crate::support::Server;
use crate::support::round_robin::{RoundRobin, assert_alternated};

#[tokio::test]
async fn the_proxy_sends_each_request_to_the_next_replica() {
    let proxy = RoundRobin::bind().await;
    let config = crate::support::config_with("");
    let a = Server::start(&config, &[("TENURE_ISSUER", proxy.base.as_str())]);
    let b = Server::start(&config, &[("TENURE_ISSUER", proxy.base.as_str())]);
    proxy.set_backends(&[&a.base, &b.base]);
    let http = reqwest::Client::new();
    for _ in 0..6 {
        let resp = http.get(proxy.url("/.well-known/openid-configuration")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(body["issuer"], proxy.base.as_str(), "the issuer is the proxy's address");
    }
    assert_eq!(proxy.counts(), vec![3, 3]);
    assert_alternated(&proxy.take_landed(), 6);
}
