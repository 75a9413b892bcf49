//! Activity-aware idle (SPEC 13) end to end: a chain that only refreshes in
//! the background dies at the idle deadline of its last interactive activity,
//! a chain refreshing interactively lives on; the token lifetimes say so.

use serde_json::Value;

use crate::support::kit::{self, user, web_client};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

async fn sign_in(server: &Server) -> String {
    kit::sign_in(server, "alice", "alice-password", "openid").await.refresh()
}

async fn refresh(server: &Server, token: &str, activity: Option<&str>) -> reqwest::Response {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(a) = activity {
        form.push(("activity", a));
    }
    server.post_form("/token", Some(("web", "web-secret")), &form).await
}

fn config() -> String {
    config_with(&format!("{}{}", web_client(&[]), user("alice", &[])))
}

/// In process on a manual clock: the seconds are the clock's.
#[tokio::test]
async fn a_background_refresh_keeps_the_idle_deadline_and_an_interactive_one_moves_it() {
    let server = ManualServer::start(&config(), &[("TENURE_SESSION_IDLE_TIMEOUT", "4s")]).await;
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["refresh_token_activity_values_supported"], serde_json::json!(["interactive", "background"]));
    let mut background = sign_in(&server).await;
    let mut interactive = sign_in(&server).await;
    let mut background_died_after = None;
    // Refresh both every second for 7 s: twice the idle timeout and more.
    for elapsed in 1..=7u64 {
        server.advance(1);
        if background_died_after.is_none() {
            let resp = refresh(&server, &background, Some("background")).await;
            if resp.status() == 200 {
                let body: Value = resp.json().await.unwrap();
                // Never beyond the idle deadline of the sign-in.
                let left = body["refresh_expires_in"].as_u64().unwrap();
                assert_eq!(left, 4 - elapsed, "refresh_expires_in at {elapsed} s");
                assert!(body["expires_in"].as_u64().unwrap() <= left);
                background = body["refresh_token"].as_str().unwrap().to_owned();
            } else {
                assert_eq!(resp.status(), 400);
                assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
                background_died_after = Some(elapsed);
            }
        }
        let resp = refresh(&server, &interactive, None).await;
        assert_eq!(resp.status(), 200, "an interactive chain lives on at {elapsed} s");
        let body: Value = resp.json().await.unwrap();
        assert!(body["refresh_expires_in"].as_u64().unwrap() >= 3, "the idle clock starts again");
        interactive = body["refresh_token"].as_str().unwrap().to_owned();
    }
    let died = background_died_after.expect("the background chain signed out");
    assert_eq!(died, 4, "alive at 3 s, refused at the original idle deadline");
    // An unknown activity is refused by name.
    let resp = refresh(&server, &interactive, Some("sometimes")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("activity must be interactive or background"));
}
