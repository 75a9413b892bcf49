//! The signing-key life cycle against the real binary: generated on first
//! start (mode 0600), reloaded on restart, rotated by `tenure keys rotate`
//! while serving, the old key kept in the JWKS for tokens it signed.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::{Server, config_with, eventually, verify};

fn key_files(server: &Server) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(server.keys_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect()
}

#[tokio::test]
async fn first_start_generates_a_private_key_and_a_restart_reuses_it() {
    let server = Server::start(&config_with(""), &[]);
    let files = key_files(&server);
    assert_eq!(files.len(), 2, "the ES256 key and its RS256 companion for ID tokens");
    for file in &files {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    }
    let jwks = server.get_json("/jwks.json").await;
    let kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(jwks["keys"][0]["alg"], "ES256", "the signing key first");
    assert_eq!(jwks["keys"][1]["alg"], "RS256");
    let stems: Vec<&str> = files.iter().map(|f| f.file_stem().unwrap().to_str().unwrap()).collect();
    assert!(stems.contains(&kid.as_str()), "kid = RFC 7638 thumbprint = file name");
    for key in jwks["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none() && key.get("p").is_none(), "no private material is published");
    }
    let token = server.cc_token().await;

    // Restart in the same directory: same key, and the earlier token verifies.
    let config = std::fs::read_to_string(server.path().join("tenure.toml")).unwrap();
    let dir = server.kill_keep_dir();
    let again = Server::start_in(dir, &config, &[]);
    assert_eq!(key_files(&again).len(), 2);
    let jwks = again.jwks().await;
    assert!(jwks.find(&kid).is_some());
    // The issuer is the bound address, which changed; check the signature only.
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    let fresh = again.cc_token().await;
    verify(&fresh, &jwks, &again.base, &again.base);
}

#[tokio::test]
async fn rotation_while_serving_publishes_the_new_key_and_keeps_the_old_one() {
    // No publish-ahead here (interop.rs tests it): the new key signs at once.
    let server = Server::start(&format!("key_publish_ahead = \"0s\"\n{}", config_with("")), &[]);
    let before = server.cc_token().await;
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();

    let out = server.cli(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("new key") && stdout.contains("signs from now on"), "{stdout}");

    // The running server picks the new key up (it watches keys.json).
    let rotated = eventually(Duration::from_secs(10), || async {
        let token = server.cc_token().await;
        jsonwebtoken::decode_header(&token).unwrap().kid.unwrap() != old_kid
    })
    .await;
    assert!(rotated, "new tokens are signed with the new key");

    let jwks = server.jwks().await;
    assert_eq!(jwks.keys.len(), 4, "both keys (and both RS256 companions) are published");
    let after = server.cc_token().await;
    verify(&after, &jwks, &server.base, &server.base);
    verify(&before, &jwks, &server.base, &server.base);
    let first_kid = server.get_json("/jwks.json").await["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_ne!(first_kid, old_kid, "the active key is listed first");

    let list = server.cli(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing.contains("active")
            && listing.contains(&format!("{old_kid}  ES256"))
            && listing.contains("published until"),
        "{listing}"
    );
    // Pruning now deletes nothing: tokens of the old key may still be alive.
    let prune = server.cli(&["keys", "prune"]);
    assert!(prune.status.success());
    assert!(String::from_utf8_lossy(&prune.stdout).is_empty());
    assert_eq!(key_files(&server).len(), 4);
}

#[tokio::test]
async fn a_corrupt_key_directory_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/keys.json"), "{not json").unwrap();
    std::fs::write(dir.path().join("tenure.toml"), config_with("")).unwrap();
    let out = crate::support::tenure().current_dir(dir.path()).env("TENURE_LOG", "off").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key manifest") && stderr.contains("keys.json"), "{stderr}");
}
