//! `GET /openapi.json`: the generated OpenAPI document, served without
//! authentication, the same as `docs/openapi.yaml` (the unit tests in
//! `src/http/openapi/` hold the file to the code).

use crate::support::{Server, config_with};

#[tokio::test]
async fn the_openapi_document_is_served_without_authentication() {
    let server = Server::start(&config_with(""), &[]);
    let response = server.http.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: serde_json::Value = response.json().await.unwrap();
    assert_eq!(served, serde_json::to_value(tenure::http::openapi::document()).unwrap());
    assert_eq!(served["openapi"], "3.1.0");
    for (path, method) in [("/token", "post"), ("/openapi.json", "get"), ("/admin/users/{username}", "patch")] {
        assert!(served["paths"][path][method].is_object(), "{method} {path} is described");
    }
}

#[tokio::test]
async fn the_discovery_schema_names_every_field_discovery_answers() {
    let server = Server::start(&config_with(""), &[]);
    let doc = server.get_json("/openapi.json").await;
    let schema = &doc["components"]["schemas"]["DiscoveryMetadata"]["properties"];
    let mut described: Vec<&String> = schema.as_object().unwrap().keys().collect();
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    let mut answered: Vec<&String> = metadata.as_object().unwrap().keys().collect();
    described.sort();
    answered.sort();
    assert_eq!(described, answered);
}

/// Every field of `value` is a property of schema `name`, and every
/// property the schema requires is there.
fn conforms(doc: &serde_json::Value, name: &str, value: &serde_json::Value) {
    let schema = &doc["components"]["schemas"][name];
    let properties = schema["properties"].as_object().unwrap_or_else(|| panic!("no schema {name}"));
    let object = value.as_object().unwrap_or_else(|| panic!("{name}: not an object: {value}"));
    for key in object.keys() {
        assert!(properties.contains_key(key), "{name} does not describe the field {key:?} of {value}");
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        assert!(object.contains_key(key.as_str().unwrap()), "{name} requires {key} but {value} has none");
    }
}

#[tokio::test]
async fn the_admin_schemas_describe_what_the_admin_api_answers() {
    use crate::admin_api::config;
    use crate::support::kit::{call, root_token};

    let server = Server::start(&config(), &[]);
    let doc = server.get_json("/openapi.json").await;
    let root = root_token(&server).await;
    let get = |path: &'static str| {
        let (server, root) = (&server, &root);
        async move {
            let (status, body) = call(server, "GET", path, Some(root), None).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    conforms(&doc, "Settings", &get("/admin/settings/session").await);
    conforms(&doc, "Explanation", &get("/admin/settings/session/explain").await);
    let users = get("/admin/users").await;
    conforms(&doc, "UserPage", &users);
    for user in users["users"].as_array().unwrap() {
        conforms(&doc, "UserView", user);
    }
    let clients = get("/admin/clients").await;
    conforms(&doc, "ClientList", &clients);
    for client in clients["clients"].as_array().unwrap() {
        conforms(&doc, "ClientView", client);
    }
    let keys = get("/admin/keys").await;
    conforms(&doc, "KeyList", &keys);
    for key in keys["keys"].as_array().unwrap() {
        conforms(&doc, "KeyView", key);
    }
    let audit = get("/admin/audit").await;
    conforms(&doc, "AuditPage", &audit);
    for event in audit["events"].as_array().unwrap() {
        conforms(&doc, "EventView", event);
    }
}

#[tokio::test]
async fn the_token_introspection_and_feed_schemas_describe_their_answers() {
    use crate::admin_api::config;

    let server = Server::start(&config(), &[]);
    let doc = server.get_json("/openapi.json").await;
    let client = Some(("root-automation", "root-automation-secret"));
    let response = server.post_form("/token", client, &[("grant_type", "client_credentials")]).await;
    assert_eq!(response.status(), 200);
    let tokens: serde_json::Value = response.json().await.unwrap();
    conforms(&doc, "TokenResponse", &tokens);
    let token = tokens["access_token"].as_str().unwrap();
    let response = server.post_form("/introspect", client, &[("token", token)]).await;
    let introspection: serde_json::Value = response.json().await.unwrap();
    assert_eq!(introspection["active"], true);
    conforms(&doc, "Introspection", &introspection);
    conforms(&doc, "SsfConfiguration", &server.get_json("/.well-known/ssf-configuration").await);
}

#[tokio::test]
async fn the_user_token_userinfo_and_session_schemas_describe_their_answers() {
    use crate::admin_api::config;
    use crate::support::kit::{call, sign_in};

    let server = Server::start(&config(), &[]);
    let doc = server.get_json("/openapi.json").await;
    let tokens = sign_in(&server, "alice", "alice-password", "openid profile").await;
    conforms(&doc, "TokenResponse", &tokens.body);
    let access = tokens.access();
    let response = server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    conforms(&doc, "Userinfo", &response.json().await.unwrap());
    let (status, sessions) = call(&server, "GET", "/account/sessions", Some(&access), None).await;
    assert_eq!(status, 200, "{sessions}");
    conforms(&doc, "SessionList", &sessions);
    for session in sessions["sessions"].as_array().unwrap() {
        conforms(&doc, "SessionView", session);
    }
}
