//! The user directory: users declared in the config, then users kept in the
//! store (the interface admin-created users will use). In-process, with a
//! manual clock.

use std::sync::Arc;

use tenure::AppState;
use tenure::audit::{AuditEvent, EventKind};
use tenure::clock::{ManualClock, UnixTime};
use tenure::config::Config;
use tenure::secret::{PasswordHashString, Secret};
use tenure::store::{NoFallout, SledStore, Store};
use tenure::user::User;

fn user(name: &str, password: &str, email: &str) -> User {
    User {
        username: name.into(),
        name: None,
        email: Some(email.into()),
        password_hash: PasswordHashString::hash(&Secret::new(password)).unwrap(),
        permissions: Default::default(),
        disabled: false,
        created_at: None,
        groups: vec![],
    }
}

#[tokio::test]
async fn stored_users_are_found_and_config_users_take_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "keys_dir = {:?}\n[[users]]\nusername = \"alice\"\npassword = \"alice-password\"\nemail = \"alice@config\"\n",
        dir.path().join("keys")
    );
    let config = Config::from_toml(&text, &Default::default()).unwrap();
    let store = SledStore::temporary().unwrap();
    for u in [user("bob", "bob-password", "bob@store"), user("alice", "other", "alice@store")] {
        let event =
            AuditEvent::new(UnixTime(1_700_000_000), EventKind::UserCreated, "root", format!("user:{}", u.username));
        store.write_user(&u.username.clone(), Some(&u), None, &NoFallout, &event).await.unwrap();
    }
    let clock = Arc::new(ManualClock::at(UnixTime(1_700_000_000)));
    let state = AppState::new(config, "http://127.0.0.1:1".into(), store.into(), clock).await.unwrap();

    let bob = state.user("bob").await.unwrap().expect("a stored user is found");
    assert!(bob.password_hash.verify("bob-password"));
    let alice = state.user("alice").await.unwrap().unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@config"), "the config wins over the store");
    assert!(state.user("carol").await.unwrap().is_none());
}
