//! No token outlives its authority, and no caller picks the server's cost
//! (issue 17, findings 1 to 3): a deleted client's tokens are dead at once,
//! the permissions a token acts with are never more than its client's or
//! user's current ones, and an argon2 hash that names a ruinous cost is
//! refused wherever a hash can be given.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::kit::{self, ROOT_AUTOMATION, cc_admin_token, introspect_active, root_token, web_client};
use crate::support::{BIN, Server, config_with};

/// A hash with the server's own parameters, and one that asks for 4 GiB.
const SALT_AND_HASH: &str = "c29tZXNhbHRzb21lc2FsdA$JGFyZ29uMmlkJHY9MTkkbT0xOTQ1Nix0PTIscD0x";

fn costly_hash() -> String {
    format!("$argon2id$v=19$m=4194304,t=2,p=1${SALT_AND_HASH}")
}

fn config() -> String {
    config_with(&format!(
        r#"{ROOT_AUTOMATION}{}
[[clients]]
id = "gateway"
secret = "gateway-secret"
grant_types = ["urn:ietf:params:oauth:grant-type:token-exchange"]
token_exchange_audiences = ["billing-api"]
"#,
        web_client(&["openid", "admin"])
    ))
}

async fn call(server: &Server, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    kit::call(server, method, path, Some(token), body).await
}

async fn root(server: &Server) -> String {
    root_token(server).await
}

/// A run-time service account `id` holding `system:administer`; its secret.
async fn create_admin_client(server: &Server, root: &str, id: &str) -> String {
    let (status, body) = call(
        server,
        "POST",
        "/admin/clients",
        root,
        Some(json!({
            "id": id,
            "grant_types": ["client_credentials"],
            "scopes": ["admin"],
            "permissions": ["system:administer"],
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["client_secret"].as_str().unwrap().to_owned()
}

/// Sign `user` in at `web` with the `admin` scope; the access token.
async fn sign_in(server: &Server, user: &str, password: &str) -> String {
    kit::sign_in(server, user, password, "openid admin").await.access()
}

#[tokio::test]
async fn a_deleted_clients_token_is_refused_at_once_and_inactive() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let secret = create_admin_client(&server, &root, "deployer").await;
    let token = cc_admin_token(&server, "deployer", &secret).await;
    assert_eq!(call(&server, "GET", "/admin/clients", &token, None).await.0, 200);
    assert!(introspect_active(&server, &token).await);

    let (status, body) = call(&server, "DELETE", "/admin/clients/deployer", &root, None).await;
    assert_eq!(status, 204, "{body}");

    // The token's exp is far away, but its client is gone.
    let (status, body) = call(&server, "GET", "/admin/clients", &token, None).await;
    assert_eq!(status, 401, "{body}");
    let new_client = json!({ "id": "backdoor", "grant_types": ["client_credentials"], "scopes": ["admin"],
        "permissions": ["system:administer"] });
    let (status, _) = call(&server, "POST", "/admin/clients", &token, Some(new_client)).await;
    assert_eq!(status, 401, "a deleted client's token creates nothing");
    let (status, _) = call(&server, "GET", "/admin/clients/backdoor", &root, None).await;
    assert_eq!(status, 404);
    assert!(!introspect_active(&server, &token).await, "introspection says inactive at once");
    let exchange = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", token.as_str()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ("audience", "billing-api"),
    ];
    let resp = server.post_form("/token", Some(("gateway", "gateway-secret")), &exchange).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("no longer exists"), "{body}");

    // A new client under the deleted one's id would bring its tokens back.
    let again = json!({ "id": "deployer", "grant_types": ["client_credentials"], "scopes": ["admin"] });
    let (status, body) = call(&server, "POST", "/admin/clients", &root, Some(again)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("was the id of a deleted client"), "{body}");
    assert_eq!(call(&server, "GET", "/admin/clients", &token, None).await.0, 401);
}

#[tokio::test]
async fn a_live_clients_token_is_still_exchanged() {
    let server = Server::start(&config(), &[]);
    let token = server.cc_token().await;
    let exchange = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", token.as_str()),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ("audience", "billing-api"),
    ];
    let resp = server.post_form("/token", Some(("gateway", "gateway-secret")), &exchange).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn permissions_removed_from_a_client_end_at_the_next_request() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let secret = create_admin_client(&server, &root, "deployer").await;
    let token = cc_admin_token(&server, "deployer", &secret).await;
    assert_eq!(call(&server, "GET", "/admin/settings/session", &token, None).await.0, 200);

    // Down to users:edit: settings are out of reach, users still in.
    let spec = json!({ "grant_types": ["client_credentials"], "scopes": ["admin"], "permissions": ["users:edit"] });
    let (status, body) = call(&server, "PUT", "/admin/clients/deployer", &root, Some(spec)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&server, "GET", "/admin/settings/session", &token, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(call(&server, "GET", "/admin/users", &token, None).await.0, 200);

    // No permissions at all: nothing of the admin API.
    let spec = json!({ "grant_types": ["client_credentials"], "scopes": ["admin"] });
    assert_eq!(call(&server, "PUT", "/admin/clients/deployer", &root, Some(spec)).await.0, 200);
    assert_eq!(call(&server, "GET", "/admin/users", &token, None).await.0, 403);
    // The token itself is still a live token of a live client.
    assert!(introspect_active(&server, &token).await);
}

#[tokio::test]
async fn a_demoted_administrator_cannot_give_the_permission_back() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let bob = json!({ "username": "bob", "password": "bob-password", "permissions": ["system:administer"] });
    assert_eq!(call(&server, "POST", "/admin/users", &root, Some(bob)).await.0, 201);
    let token = sign_in(&server, "bob", "bob-password").await;
    assert_eq!(call(&server, "GET", "/admin/settings/session", &token, None).await.0, 200);

    let (status, body) = call(&server, "PATCH", "/admin/users/bob", &root, Some(json!({ "permissions": [] }))).await;
    assert_eq!(status, 200, "{body}");

    // Bob's token still carries the claim; it no longer counts.
    let restore = json!({ "permissions": ["system:administer"] });
    let (status, body) = call(&server, "PATCH", "/admin/users/bob", &token, Some(restore)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(call(&server, "GET", "/admin/settings/session", &token, None).await.0, 403);
    let (_, user) = call(&server, "GET", "/admin/users/bob", &root, None).await;
    assert_eq!(user["permissions"], json!([]), "{user}");
    // His own sessions are still his to see.
    assert_eq!(call(&server, "GET", "/account/sessions", &token, None).await.0, 200);
}

#[tokio::test]
async fn a_password_hash_beyond_the_cost_bounds_is_refused_by_the_api_and_the_cli() {
    let server = Server::start(&config(), &[]);
    let root = root(&server).await;
    let costly = costly_hash();
    let (status, body) =
        call(&server, "POST", "/admin/users", &root, Some(json!({ "username": "mallory", "password_hash": costly })))
            .await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("password_hash:"), "{message}");
    assert!(message.contains("m=262144 KiB (256 MiB), t=16 and p=16"), "{message}");
    assert_eq!(call(&server, "GET", "/admin/users/mallory", &root, None).await.0, 404);

    // PATCH of an existing user: refused the same way, the old one kept.
    let carol = json!({ "username": "carol", "password": "carol-password" });
    assert_eq!(call(&server, "POST", "/admin/users", &root, Some(carol)).await.0, 201);
    let (status, body) =
        call(&server, "PATCH", "/admin/users/carol", &root, Some(json!({ "password_hash": costly }))).await;
    assert_eq!(status, 400, "{body}");
    sign_in(&server, "carol", "carol-password").await;

    // The server's own parameters are fine (hash-secret prints them).
    let own = {
        use std::io::Write;
        let mut child =
            crate::support::tenure().arg("hash-secret").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"dave-password\n").unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap().trim().to_owned()
    };
    assert!(own.starts_with("$argon2id$"), "{own}");
    let dave = json!({ "username": "dave", "password_hash": own });
    assert_eq!(call(&server, "POST", "/admin/users", &root, Some(dave)).await.0, 201);
    sign_in(&server, "dave", "dave-password").await;

    // The CLI sends the hash and shows the server's refusal.
    std::fs::write(server.path().join("costly.hash"), format!("{costly}\n")).unwrap();
    let out = Command::new(BIN)
        .args(["admin", "users", "create", "erin", "--password-hash-file", "costly.hash"])
        .current_dir(server.path())
        .env_clear()
        .env("TENURE_URL", &server.base)
        .env("TENURE_CLIENT_ID", "root-automation")
        .env("TENURE_CLIENT_SECRET", "root-automation-secret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("password_hash") && stderr.contains("256 MiB"), "{stderr}");
    assert_eq!(call(&server, "GET", "/admin/users/erin", &root, None).await.0, 404);
}

#[test]
fn a_config_user_with_a_costly_hash_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n\n[[users]]\nusername = \"mallory\"\npassword_hash = \"{}\"\n",
        costly_hash()
    );
    std::fs::write(dir.path().join("tenure.toml"), config).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("password_hash") && stderr.contains("256 MiB"), "{stderr}");
}
