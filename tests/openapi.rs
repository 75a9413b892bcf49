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
