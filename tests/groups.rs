//! Group policy (SPEC 14): groups tighten the session policy of their
//! members, the strictest group and client override win, explain names who
//! decided, the preview counts what a group change does, bad values and
//! unknown groups are refused (at start too), and membership changes apply
//! at the next refresh. Timing cases run the real router on a manual clock;
//! start-up refusals run the real binary.

use serde_json::{Value, json};

use crate::support::kit::{
    ROOT_AUTOMATION, WEB, WEB_REDIRECT, call, introspect_active, refresh, root_token, sign_in, sign_in_without_pkce,
    user, web_client,
};
use crate::support::manual::ManualServer;
use crate::support::{Server, config_with};

/// alice is in `admins` (10 min idle) and `ops` (20 min idle, 2 h max);
/// bob is in no group; `kube` has its own 5 min idle timeout.
fn config() -> String {
    let kube = format!(
        r#"
[[clients]]
id = "kube"
secret = "kube-secret"
redirect_uris = ["{WEB_REDIRECT}"]
grant_types = ["authorization_code", "refresh_token"]
scopes = ["openid"]
session = {{ idle_timeout = "5m" }}
"#
    );
    config_with(&format!(
        r#"{ROOT_AUTOMATION}{web}{kube}{bob}
[[users]]
username = "alice"
password = "alice-password"
groups = ["ops", "admins"]

[session.groups.admins]
idle_timeout = "10m"

[session.groups.ops]
idle_timeout = "20m"
max_lifetime = "2h"
"#,
        web = web_client(&["openid"]),
        bob = user("bob", &[]),
    ))
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

async fn refresh_status(server: &Server, client: (&str, &str), token: &str) -> (u16, Value) {
    let resp = refresh(server, client, token).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_strictest_group_tightens_its_members_sessions_and_the_client_is_stricter_still() {
    let server = ManualServer::start(&config(), &[]).await;
    let alice = sign_in(&server, "alice", "alice-password", "openid").await;
    let bob = sign_in(&server, "bob", "bob-password", "openid").await;
    // The access token follows the (tightened) idle timeout.
    assert_eq!(alice.body["expires_in"], 600, "admins: 10 min, stricter than ops' 20 min: {}", alice.body);
    assert_eq!(bob.body["expires_in"], 1800, "no group: the global 30 min");
    assert!(alice.body["session_expires_in"].as_u64().unwrap() <= 7200, "ops: 2 h at most: {}", alice.body);

    server.advance(9 * 60);
    let (s, b) = refresh_status(&server, WEB, &alice.refresh()).await;
    assert_eq!(s, 200, "within 10 min: {b}");
    let alice_refresh = b["refresh_token"].as_str().unwrap().to_owned();
    server.advance(10 * 60);
    let (s, b) = refresh_status(&server, WEB, &alice_refresh).await;
    assert_eq!(s, 400, "idle 10 min under the admins group: {b}");
    assert_eq!(b["error"], "invalid_grant");
    assert!(!introspect_active(&server, &alice_refresh).await, "dead at introspection too");
    let (s, b) = refresh_status(&server, WEB, &bob.refresh()).await;
    assert_eq!(s, 200, "bob is in no group: 19 min is within 30: {b}");

    // With a client override, the strictest of all: kube's 5 min.
    let kube = sign_in_without_pkce(&server, ("kube", "kube-secret"), "alice", "alice-password", "openid", false).await;
    assert_eq!(kube.body["expires_in"], 300, "{}", kube.body);
    let kube_bob = sign_in_without_pkce(&server, ("kube", "kube-secret"), "bob", "bob-password", "openid", false).await;
    assert_eq!(kube_bob.body["expires_in"], 300);
    server.advance(6 * 60);
    let (s, _) = refresh_status(&server, ("kube", "kube-secret"), &kube.refresh()).await;
    assert_eq!(s, 400, "idle 5 min at kube");
}

#[tokio::test]
async fn explain_names_the_group_or_client_that_decided() {
    let server = Server::start(&config(), &[]);
    let root = root_token(&server).await;
    let (s, b) =
        call(&server, "GET", "/admin/settings/session/explain?client_id=web&username=alice", Some(&root), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["groups"], json!(["admins", "ops"]));
    assert_eq!(b["idle_timeout"]["value"], 600);
    assert_eq!(b["idle_timeout"]["rule"], "group");
    assert!(b["idle_timeout"]["reason"].as_str().unwrap().contains("session.groups.admins.idle_timeout (10m)"), "{b}");
    assert_eq!(b["max_lifetime"]["value"], 7200);
    assert_eq!(b["max_lifetime"]["rule"], "group");
    assert!(b["max_lifetime"]["reason"].as_str().unwrap().contains("group ops"), "{b}");
    let (_, b) =
        call(&server, "GET", "/admin/settings/session/explain?client_id=kube&username=alice", Some(&root), None).await;
    assert_eq!((b["idle_timeout"]["value"].clone(), b["idle_timeout"]["rule"].clone()), (json!(300), json!("client")));
    assert_eq!(b["max_lifetime"]["rule"], "group", "the client sets no max: ops decides");
    let (_, b) =
        call(&server, "GET", "/admin/settings/session/explain?client_id=web&username=bob", Some(&root), None).await;
    assert_eq!(b["idle_timeout"]["rule"], "default", "{b}");
    assert!(b.get("groups").is_none(), "{b}");
}

#[tokio::test]
async fn groups_are_set_previewed_and_deleted_through_the_admin_api_and_bad_values_are_refused() {
    let server = ManualServer::start(&config(), &[]).await;
    let root = root_token(&server).await;
    let path = "/admin/settings/session/groups/helpdesk";

    let (s, b) = call(&server, "GET", "/admin/settings/session/groups", Some(&root), None).await;
    assert_eq!(s, 200, "{b}");
    let names: Vec<&str> = b["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admins", "ops"]);
    assert_eq!(b["groups"][0]["source"], "file");

    // A loosening, zero, negative or unknown value: 400 naming the key and the rule.
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"idle_timeout": 3600}))).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        message(&b).contains("session.groups.helpdesk.idle_timeout (1h) must not exceed session.idle_timeout (30m)"),
        "{b}"
    );
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"max_lifetime": 0}))).await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("session.groups.helpdesk.max_lifetime must be greater than 0"), "{b}");
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"max_sessions": -1}))).await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("max_sessions must be a whole number (>= 0), not -1"), "{b}");
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"max_sessions": 0}))).await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("session.groups.helpdesk.max_sessions must be at least 1"), "{b}");
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"idle_timout": 600}))).await;
    assert_eq!(s, 400);
    assert!(message(&b).contains("unknown field \"idle_timout\""), "{b}");
    let (s, _) = call(&server, "PUT", "/admin/settings/session/groups/a%20b", Some(&root), Some(json!({}))).await;
    assert_eq!(s, 400, "a group name fits a path segment");

    // Set, then a member.
    let (s, b) = call(&server, "PUT", path, Some(&root), Some(json!({"idle_timeout": 900, "max_sessions": 3}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"name": "helpdesk", "idle_timeout": 900, "max_sessions": 3, "source": "admin"}));
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&root),
        Some(json!({"username": "dave", "password": "dave-password", "groups": ["helpdesk"]})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["groups"], json!(["helpdesk"]));
    let dave = sign_in(&server, "dave", "dave-password", "openid").await;
    assert_eq!(dave.body["expires_in"], 900);

    // The preview counts the members' sessions a change ends or shortens.
    server.advance(7 * 60);
    let preview = format!("{path}/preview");
    let (s, b) = call(&server, "POST", &preview, Some(&root), Some(json!({"idle_timeout": 600}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["sessions_shortened"].clone(), b["sessions_ending_now"].clone()), (json!(1), json!(0)), "{b}");
    let (_, b) = call(&server, "POST", &preview, Some(&root), Some(json!({"idle_timeout": 300}))).await;
    assert_eq!(b["sessions_ending_now"], 1, "idle 7 min, 5 min would end it: {b}");
    let (_, b) = call(&server, "POST", &preview, Some(&root), Some(json!({"delete": true}))).await;
    assert_eq!(b["sessions_extended"], 1, "without the group, the global 30 min: {b}");
    let (s, b) = call(&server, "POST", &preview, Some(&root), Some(json!({"idle_timeout": 7200}))).await;
    assert_eq!(s, 400, "refused as the change would be: {b}");
    // A change of the global settings counts the group's members by their tightened policy.
    let (_, b) =
        call(&server, "POST", "/admin/settings/session/preview", Some(&root), Some(json!({"idle_timeout": 1200})))
            .await;
    assert!(b["sessions_unchanged"].as_u64().unwrap() >= 1, "dave's 15 min is stricter than 20: {b}");
    // Nothing changed.
    let (s, _) = refresh_status(&server, WEB, &dave.refresh()).await;
    assert_eq!(s, 200);

    // Delete: refused while members remain, and for a group of the file.
    let (s, b) = call(&server, "DELETE", path, Some(&root), None).await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("dave"), "{b}");
    let (s, b) = call(&server, "DELETE", "/admin/settings/session/groups/admins", Some(&root), None).await;
    assert_eq!(s, 409, "{b}");
    assert!(message(&b).contains("config file"), "{b}");
    let (s, _) = call(&server, "PATCH", "/admin/users/dave", Some(&root), Some(json!({"groups": []}))).await;
    assert_eq!(s, 200);
    let (s, _) = call(&server, "DELETE", path, Some(&root), None).await;
    assert_eq!(s, 204);
    let (s, _) = call(&server, "GET", path, Some(&root), None).await;
    assert_eq!(s, 404);

    // Audited.
    let (_, b) = call(&server, "GET", "/admin/audit?kind=settings_changed", Some(&root), None).await;
    let targets: Vec<&str> = b["events"].as_array().unwrap().iter().filter_map(|e| e["target"].as_str()).collect();
    assert!(targets.iter().filter(|t| **t == "session.groups.helpdesk").count() >= 2, "{b}");
}

#[tokio::test]
async fn a_membership_change_applies_at_the_next_refresh_and_unknown_groups_are_refused() {
    let server = ManualServer::start(&config(), &[]).await;
    let root = root_token(&server).await;
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&root),
        Some(json!({"username": "carol", "password": "carol-password", "groups": ["nope"]})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("users[carol].groups: \"nope\" is not a group"), "{b}");
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&root),
        Some(json!({"username": "carol", "password": "carol-password"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let carol = sign_in(&server, "carol", "carol-password", "openid").await;
    let other = sign_in(&server, "carol", "carol-password", "openid").await;
    server.advance(11 * 60);
    // Still alive under the global 30 min...
    let (s, b) = refresh_status(&server, WEB, &other.refresh()).await;
    assert_eq!(s, 200, "{b}");
    let other_refresh = b["refresh_token"].as_str().unwrap().to_owned();
    // ... until carol joins admins (10 min): her idle session is dead at its next check.
    let (s, b) = call(&server, "PATCH", "/admin/users/carol", Some(&root), Some(json!({"groups": ["admins"]}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["groups"], json!(["admins"]));
    let (s, b) = call(&server, "PATCH", "/admin/users/carol", Some(&root), Some(json!({"groups": ["nope"]}))).await;
    assert_eq!(s, 400, "{b}");
    assert!(message(&b).contains("\"nope\" is not a group"), "{b}");
    let (s, b) = refresh_status(&server, WEB, &carol.refresh()).await;
    assert_eq!(s, 400, "idle 11 min, the group allows 10: {b}");
    assert!(!introspect_active(&server, &carol.refresh()).await);
    let (s, _) = refresh_status(&server, WEB, &other_refresh).await;
    assert_eq!(s, 200, "refreshed just now: alive");
    let (_, b) = call(&server, "GET", "/admin/users/carol/sessions", Some(&root), None).await;
    let live = b["sessions"].as_array().unwrap().iter().filter(|s| s["ended"] != json!(true)).count();
    assert_eq!(live, 1, "the listing judges by the group too: {b}");
    // Audited with the old and new groups.
    let (_, b) = call(&server, "GET", "/admin/audit?kind=user_updated", Some(&root), None).await;
    assert!(b["events"].as_array().unwrap().iter().any(|e| e["details"]["groups"]["new"] == json!(["admins"])), "{b}");
}

#[test]
fn a_loosening_group_or_an_unknown_group_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tenure.toml"), "[session.groups.admins]\nidle_timeout = \"1h\"\n").unwrap();
    let out = crate::support::tenure().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("session.groups.admins.idle_timeout (1h) must not exceed session.idle_timeout (30m)"),
        "{stderr}"
    );

    std::fs::write(
        dir.path().join("tenure.toml"),
        "[[users]]\nusername = \"alice\"\npassword = \"alice-password\"\ngroups = [\"nope\"]\n",
    )
    .unwrap();
    let out = crate::support::tenure().current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("users[alice].groups"), "{stderr}");
    assert!(stderr.contains("\"nope\" is not a group"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

/// `tenure admin ...` as `root-automation`: (exit status, stdout, stderr).
fn admin(server: &Server, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::support::BIN)
        .arg("admin")
        .args(args)
        .current_dir(server.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENURE_URL", &server.base)
        .env("TENURE_CLIENT_ID", "root-automation")
        .env("TENURE_CLIENT_SECRET", "root-automation-secret")
        .output()
        .expect("run tenure admin");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_sets_previews_and_deletes_groups_and_sets_a_users_groups() {
    let server = Server::start(&config(), &[]);
    let (s, out, err) = admin(&server, &["settings", "group", "set", "helpdesk", "idle_timeout=15m", "max_sessions=3"]);
    assert_eq!(s, Some(0), "{out}{err}");
    assert!(out.contains("group helpdesk set"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("helpdesk") && l.contains("15m") && l.contains("admin")), "{out}");
    let (s, out, _) = admin(&server, &["settings", "group", "list"]);
    assert_eq!(s, Some(0));
    for name in ["admins", "ops", "helpdesk"] {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}: {out}");
    }
    let (s, _, err) = admin(&server, &["settings", "group", "set", "helpdesk", "idle_timeout=1h"]);
    assert_eq!(s, Some(1), "{err}");
    assert!(
        err.contains("session.groups.helpdesk.idle_timeout (1h) must not exceed session.idle_timeout (30m)"),
        "{err}"
    );
    let (s, _, err) = admin(&server, &["settings", "group", "set", "helpdesk", "idle_timout=10m"]);
    assert_ne!(s, Some(0));
    assert!(err.contains("unknown group key \"idle_timout\""), "{err}");

    let root = root_token(&server).await;
    let (s, b) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&root),
        Some(json!({"username": "dave", "password": "dave-password"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let (s, out, err) = admin(&server, &["users", "set-groups", "dave", "--group", "helpdesk"]);
    assert_eq!(s, Some(0), "{out}{err}");
    let (_, out, _) = admin(&server, &["users", "show", "dave"]);
    assert!(out.lines().any(|l| l.starts_with("groups") && l.contains("helpdesk")), "{out}");
    let _dave = sign_in(&server, "dave", "dave-password", "openid").await;
    let (s, out, _) = admin(&server, &["settings", "group", "preview", "helpdesk", "idle_timeout=10m"]);
    assert_eq!(s, Some(0));
    assert!(out.lines().any(|l| l.starts_with("sessions shortened") && l.trim_end().ends_with('1')), "{out}");
    let (_, out, _) = admin(&server, &["settings", "explain", "--client", "web", "--user", "dave"]);
    assert!(out.lines().any(|l| l.starts_with("idle_timeout") && l.contains("group")), "{out}");
    let (s, _, err) = admin(&server, &["users", "set-groups", "dave", "--group", "nope"]);
    assert_eq!(s, Some(1));
    assert!(err.contains("\"nope\" is not a group"), "{err}");
    let (s, _, _) = admin(&server, &["users", "set-groups", "dave"]);
    assert_eq!(s, Some(0));
    let (s, out, err) = admin(&server, &["settings", "group", "delete", "helpdesk"]);
    assert_eq!(s, Some(0), "{err}");
    assert!(out.contains("group helpdesk deleted"), "{out}");
}

#[tokio::test]
async fn the_console_adds_changes_and_deletes_groups_and_sets_membership() {
    use crate::support::flow::Browser;
    let server = Server::start(&crate::console::config(), &[]);
    let root = root_token(&server).await;
    let browser = Browser::new();
    crate::console::sign_in(&server, &browser, "/console/settings", "root", "root-password").await;
    let csrf = crate::console::csrf(&server, &browser, "/console/settings").await;
    let page = browser.get(&server, "/console/settings").await.text().await.unwrap();
    assert!(page.contains("Group policies") && page.contains("No groups yet."), "{page}");

    // Add a group; a loosening value is refused with the API's message.
    let resp = browser
        .post_form(&server, "/console/settings/groups", &[("csrf", &csrf), ("name", "admins"), ("idle_minutes", "10")])
        .await;
    assert_eq!(resp.status(), 303);
    let (_, b) = call(&server, "GET", "/admin/settings/session/groups/admins", Some(&root), None).await;
    assert_eq!(b, json!({"name": "admins", "idle_timeout": 600, "source": "admin"}));
    let resp = browser
        .post_form(&server, "/console/settings/groups", &[("csrf", &csrf), ("name", "admins"), ("idle_minutes", "60")])
        .await;
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("session.groups.admins.idle_timeout (1h) must not exceed session.idle_timeout (30m)"),
        "{text}"
    );
    let resp = browser
        .post_form(&server, "/console/settings/groups", &[("csrf", &csrf), ("name", "ops"), ("idle_minutes", "ten")])
        .await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Idle timeout must be whole minutes"));

    // Membership on the user page.
    let (s, _) = call(
        &server,
        "POST",
        "/admin/users",
        Some(&root),
        Some(json!({"username": "dave", "password": "dave-password"})),
    )
    .await;
    assert_eq!(s, 201);
    let page = browser.get(&server, "/console/users/dave").await.text().await.unwrap();
    assert!(page.contains("name=\"groups\" value=\"admins\""), "a checkbox per group: {page}");
    let resp = browser.post_form(&server, "/console/users/dave/groups", &[("csrf", &csrf), ("groups", "admins")]).await;
    assert_eq!(resp.status(), 303);
    let (_, b) = call(&server, "GET", "/admin/users/dave", Some(&root), None).await;
    assert_eq!(b["groups"], json!(["admins"]));

    // A change that shortens a live session of a member asks first.
    let _dave = sign_in(&server, "dave", "dave-password", "openid").await;
    let form = [("csrf", csrf.as_str()), ("name", "admins"), ("idle_minutes", "5")];
    let resp = browser.post_form(&server, "/console/settings/groups", &form).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("Apply to live sessions?") && text.contains("1 sessions get shorter"), "{text}");
    let (_, b) = call(&server, "GET", "/admin/settings/session/groups/admins", Some(&root), None).await;
    assert_eq!(b["idle_timeout"], 600, "nothing saved before the confirmation");
    let confirmed = [("csrf", csrf.as_str()), ("name", "admins"), ("idle_minutes", "5"), ("confirmed", "1")];
    assert_eq!(browser.post_form(&server, "/console/settings/groups", &confirmed).await.status(), 303);
    let (_, b) = call(&server, "GET", "/admin/settings/session/groups/admins", Some(&root), None).await;
    assert_eq!(b["idle_timeout"], 300);

    // Delete: asked first, refused while dave is a member, then done.
    let resp = browser.post_form(&server, "/console/settings/groups/admins/delete", &[("csrf", &csrf)]).await;
    assert!(resp.text().await.unwrap().contains("Delete this group policy?"));
    let confirmed = [("csrf", csrf.as_str()), ("confirmed", "1")];
    let resp = browser.post_form(&server, "/console/settings/groups/admins/delete", &confirmed).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("dave"));
    browser.post_form(&server, "/console/users/dave/groups", &[("csrf", &csrf)]).await;
    let resp = browser.post_form(&server, "/console/settings/groups/admins/delete", &confirmed).await;
    assert_eq!(resp.status(), 303);
    let (s, _) = call(&server, "GET", "/admin/settings/session/groups/admins", Some(&root), None).await;
    assert_eq!(s, 404);
}
