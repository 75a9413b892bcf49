//! Clients (SPEC 10): list, create, show, replace, rotate the secret,
//! delete. The same validation as config clients (`ClientSpec::build`);
//! per-client session limits may only tighten the global policy. Clients
//! declared in the config file are listed read-only. A generated secret is
//! returned once and only its argon2id hash is kept.

use serde::Serialize;
use serde_json::Value;

use super::actor::{Actor, hash_secret, new_client_secret};
use super::error::{Result, ServiceError};
use crate::audit::{AuditEvent, EventKind};
use crate::clock::UnixTime;
use crate::oauth::client::Client;
use crate::oauth::client_spec::{ClientSpec, StoredClient};
use crate::service::AppState;
use crate::store::{RetiredName, Store};

/// The shortest client secret an administrator may set.
pub const MIN_SECRET_CHARS: usize = 16;

/// A client as the admin API shows it: its settings, never a secret.
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    #[serde(flatten)]
    pub spec: ClientSpec,
    /// `config` (read-only), `builtin` (the console client, read-only) or `admin`.
    pub source: &'static str,
}

/// A created client or a new secret: the secret is shown this once.
#[derive(Debug, Serialize)]
pub struct WithSecret {
    #[serde(flatten)]
    pub client: ClientView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

fn view(state: &AppState, client: &Client) -> ClientView {
    let source = if client.id == crate::oauth::console_client::CLIENT_ID {
        "builtin"
    } else if state.clients.is_from_config(&client.id) {
        "config"
    } else {
        "admin"
    };
    ClientView { spec: ClientSpec::of(client), source }
}

fn store_err(e: crate::store::StoreError) -> ServiceError {
    ServiceError::store("reading or writing clients", e)
}

fn unknown(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no client named {id:?}"))
}

pub fn list(state: &AppState) -> Vec<ClientView> {
    state.clients.all().iter().map(|c| view(state, c)).collect()
}

pub fn show(state: &AppState, id: &str) -> Result<ClientView> {
    state.clients.get(id).map(|c| view(state, &c)).ok_or_else(|| unknown(id))
}

/// A client's settings as the admin API and the console give them, and the
/// secret to set (`None`: keep the secret, or generate one when needed).
#[derive(Clone, Debug)]
pub struct ClientInput {
    pub spec: ClientSpec,
    pub secret: Option<String>,
}

/// Validate `spec` with `secret_hash` against the current policy.
fn build(state: &AppState, spec: ClientSpec, secret_hash: Option<crate::secret::PasswordHashString>) -> Result<Client> {
    let policy = state.policy();
    spec.build(secret_hash, &policy.0, state.config.signing_alg).map_err(|e| {
        if e.field == "session" {
            ServiceError::Invalid(e.message)
        } else {
            ServiceError::Invalid(format!("{}: {}", e.field, e.message))
        }
    })
}

/// The secret to use for a confidential client: the given one, else a new
/// one (returned once, as RFC 7591 does).
async fn secret_for(
    state: &AppState,
    spec: &ClientSpec,
    given: Option<String>,
) -> Result<(Option<crate::secret::PasswordHashString>, Option<String>)> {
    if spec.public {
        if given.is_some() {
            return Err(ServiceError::Invalid("secret: a public client has no secret".into()));
        }
        return Ok((None, None));
    }
    match given {
        Some(s) => Ok((Some(hash_secret(state, s).await?), None)),
        None => {
            let fresh = new_client_secret()?;
            Ok((Some(hash_secret(state, fresh.clone()).await?), Some(fresh)))
        }
    }
}

fn record(client: &Client, spec: ClientSpec, created_at: UnixTime) -> StoredClient {
    let secret_hash = match &client.kind {
        crate::oauth::client::ClientKind::Confidential { secret_hash } => Some(secret_hash.as_str().to_owned()),
        crate::oauth::client::ClientKind::Public => None,
    };
    StoredClient { spec, secret_hash, created_at }
}

pub async fn create(state: &AppState, actor: &Actor, input: ClientInput, now: UnixTime) -> Result<WithSecret> {
    let ClientInput { spec, secret: given } = input;
    crate::oauth::client_spec::check_client_id(&spec.id)
        .map_err(|e| ServiceError::Invalid(format!("{}: {}", e.field, e.message)))?;
    if state.clients.get(&spec.id).is_some() {
        return Err(ServiceError::Conflict(format!("id: a client {:?} already exists", spec.id)));
    }
    if state.any_user(&spec.id).await.map_err(store_err)?.is_some() {
        return Err(ServiceError::Conflict(format!(
            "id: {:?} is a username; a client id must never share a user's subject",
            spec.id
        )));
    }
    match state.store.retired_name(&spec.id).await.map_err(store_err)? {
        Some(RetiredName::User) => {
            return Err(ServiceError::Conflict(format!(
                "id: {:?} was the username of a deleted user; a client id must never share a user's subject, \
                 and a subject is never given again",
                spec.id
            )));
        }
        // Tokens name their client by id: a new client under a deleted
        // one's id would bring the deleted client's live tokens back.
        Some(RetiredName::Client) => {
            return Err(ServiceError::Conflict(format!(
                "id: {:?} was the id of a deleted client; a client id is never given again, so the deleted \
                 client's tokens stay dead",
                spec.id
            )));
        }
        None => {}
    }
    // Validate before hashing: a bad request costs no argon2.
    build(state, spec.clone(), (!spec.public).then(|| state.dummy_password_hash.clone()))?;
    check_logout_target(state, &spec).await?;
    let (hash, shown) = secret_for(state, &spec, given).await?;
    let client = build(state, spec.clone(), hash)?;
    let stored = record(&client, ClientSpec::of(&client), now);
    let event = AuditEvent::new(now, EventKind::ClientCreated, actor.name.clone(), format!("client:{}", client.id))
        .details(serde_json::to_value(&stored.spec).unwrap_or(Value::Null));
    state.store.write_client(&client.id, Some(&stored), &event).await.map_err(store_err)?;
    event.log();
    let view = view(state, &client);
    state.clients.put(client);
    Ok(WithSecret { client: ClientView { source: "admin", ..view }, client_secret: shown })
}

/// SECURITY: tenure's own outbound requests reach only what the operator
/// allows. A back-channel logout URI set through the admin API must be a
/// public address, or in `logout.allowed_private_networks` (checked again
/// at every connection, `worker::backchannel`); the configuration file's
/// clients are the operator's own word.
async fn check_logout_target(state: &AppState, spec: &ClientSpec) -> Result<()> {
    let Some(uri) = &spec.backchannel_logout_uri else { return Ok(()) };
    crate::service::feed::check_endpoint(&state.config.logout_targets, uri).await.map_err(|refused| {
        ServiceError::invalid(format!(
            "backchannel_logout_uri: {refused}; back-channel logout of clients created here reaches only public \
             addresses, unless the operator allows the network in logout.allowed_private_networks"
        ))
    })
}

/// The stored client `id`: 409 for a config client, 404 when unknown.
async fn stored(state: &AppState, id: &str) -> Result<StoredClient> {
    if id == crate::oauth::console_client::CLIENT_ID {
        return Err(ServiceError::Conflict(format!(
            "client {id:?} is the built-in web console client and cannot be changed"
        )));
    }
    if state.clients.is_from_config(id) {
        return Err(ServiceError::Conflict(format!(
            "client {id:?} is declared in the config file and is read-only here; change the file"
        )));
    }
    state.store.clients().await.map_err(store_err)?.into_iter().find(|c| c.spec.id == id).ok_or_else(|| unknown(id))
}

/// A stored client that may be changed, read before the change is read (a
/// config or the built-in client is 409, an unknown one 404).
pub struct Editable(StoredClient);

pub async fn editable(state: &AppState, id: &str) -> Result<Editable> {
    stored(state, id).await.map(Editable)
}

/// Replace the settings of the client [`editable`] found (`input.spec.id`
/// is its id). The secret stays unless `input.secret` is given (or the
/// client turns confidential, when one is generated).
pub async fn replace(
    state: &AppState,
    actor: &Actor,
    old: Editable,
    input: ClientInput,
    now: UnixTime,
) -> Result<WithSecret> {
    let Editable(old) = old;
    let id = old.spec.id.clone();
    let id = id.as_str();
    let ClientInput { spec, secret: given } = input;
    check_logout_target(state, &spec).await?;
    let secret_given = given.is_some();
    let (hash, shown) = match (&old.secret_hash, spec.public, given) {
        (Some(h), false, None) => (
            Some(
                crate::secret::PasswordHashString::stored(h)
                    .map_err(|e| ServiceError::internal_in("reading a client secret", e))?,
            ),
            None,
        ),
        (_, _, given) => secret_for(state, &spec, given).await?,
    };
    let client = build(state, spec, hash)?;
    let stored = record(&client, ClientSpec::of(&client), old.created_at);
    let event = AuditEvent::new(now, EventKind::ClientUpdated, actor.name.clone(), format!("client:{id}")).details(
        serde_json::json!({ "old": old.spec, "new": stored.spec, "secret_changed": secret_given || shown.is_some() }),
    );
    state.store.write_client(id, Some(&stored), &event).await.map_err(store_err)?;
    event.log();
    let view = view(state, &client);
    state.clients.put(client);
    Ok(WithSecret { client: view, client_secret: shown })
}

/// A new secret for client `id`, returned once; the old one stops working.
pub async fn rotate_secret(state: &AppState, actor: &Actor, id: &str, now: UnixTime) -> Result<WithSecret> {
    let old = stored(state, id).await?;
    if old.spec.public {
        return Err(ServiceError::Invalid(format!("client {id:?} is public and has no secret")));
    }
    let fresh = new_client_secret()?;
    let hash = hash_secret(state, fresh.clone()).await?;
    let client = build(state, old.spec.clone(), Some(hash))?;
    let stored = record(&client, old.spec, old.created_at);
    let event = AuditEvent::new(now, EventKind::ClientSecretRotated, actor.name.clone(), format!("client:{id}"));
    state.store.write_client(id, Some(&stored), &event).await.map_err(store_err)?;
    event.log();
    let view = view(state, &client);
    state.clients.put(client);
    Ok(WithSecret { client: view, client_secret: Some(fresh) })
}

/// Delete client `id` after revoking every live family it has, and its
/// revocation-feed stream. The deleted client gets no back-channel logout:
/// it is gone before the delivery runs.
pub async fn delete(state: &AppState, actor: &Actor, id: &str, now: UnixTime) -> Result<usize> {
    stored(state, id).await?;
    let revocation = state.revocation(now);
    let mut revoked = 0;
    for family in state.store.client_families(id).await.map_err(store_err)? {
        if family.revoked.is_none() {
            revocation.family(&family.id, &actor.name, "client_deleted").await.map_err(store_err)?;
            revoked += 1;
        }
    }
    let event = AuditEvent::new(now, EventKind::ClientDeleted, actor.name.clone(), format!("client:{id}"))
        .details(serde_json::json!({ "families_revoked": revoked }));
    state.store.write_client(id, None, &event).await.map_err(store_err)?;
    event.log();
    state.clients.remove(id);
    // Its revocation-feed stream, if it was a receiver, goes with it.
    state.store.delete_ssf_stream(id).await.map_err(store_err)?;
    Ok(revoked)
}
