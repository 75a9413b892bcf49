//! `/console/clients` (`system:administer`): the client list, the client
//! form, new secrets (shown once) and deletion.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::ConsoleState;
use super::extract::{AdminViewer, Administer, CsrfForm, PageViewer};
use super::page::{Confirm, actor, chrome, confirm, enc, failed, message_of, render, status_of};
use super::session::{Viewer, see_other};
use super::view::{Chrome, span};
use crate::duration::Secs;
use crate::http::form::Form;
use crate::http::pages::PageError;
use crate::oauth::client::GrantType;
use crate::oauth::client_spec::ClientSpec;
use crate::policy::ClientSessionOverride;
use crate::service::clients::ClientInput;
use crate::service::{self, ServiceError};

pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub grant_types: String,
    pub limits: String,
    pub source: &'static str,
    pub editable: bool,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
pub struct ClientsPage {
    pub chrome: Chrome,
    pub clients: Vec<ClientRow>,
}

/// The client form's values (as typed, or from the client).
#[derive(Default)]
pub struct ClientForm {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub redirect_uris: String,
    pub web_origins: String,
    pub grant_types: Vec<(&'static str, bool)>,
    pub scopes: String,
    pub idle: String,
    pub max: String,
    pub access: String,
}

#[derive(Template)]
#[template(path = "console/client.html")]
pub struct ClientPage {
    pub chrome: Chrome,
    pub creating: bool,
    pub f: ClientForm,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub struct SecretPage {
    pub chrome: Chrome,
    pub client_id: String,
    pub secret: String,
}

fn limits_text(spec: &crate::oauth::client_spec::ClientSpec) -> String {
    let Some(s) = &spec.session else { return "global".to_owned() };
    let mut parts = Vec::new();
    if let Some(d) = s.idle_timeout {
        parts.push(format!("idle {}", span(d.as_secs())));
    }
    if let Some(d) = s.max_lifetime {
        parts.push(format!("max {}", span(d.as_secs())));
    }
    if let Some(d) = s.access_token_ttl {
        parts.push(format!("access token {}", span(d.as_secs())));
    }
    if parts.is_empty() { "global".to_owned() } else { parts.join(", ") }
}

/// `GET /console/clients` (`system:administer`).
pub async fn clients(
    State(state): State<ConsoleState>,
    PageViewer { viewer, .. }: AdminViewer,
) -> Result<Response, PageError> {
    let rows = service::clients::list(&state)
        .into_iter()
        .map(|c| ClientRow {
            name: c.spec.name.clone().unwrap_or_default(),
            public: c.spec.public,
            grant_types: c.spec.grant_types.join(", "),
            limits: limits_text(&c.spec),
            editable: c.source == "admin",
            source: c.source,
            id: c.spec.id,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        ClientsPage { chrome: chrome(&viewer, "Clients", "/console/clients").await, clients: rows },
    ))
}

fn grant_boxes(checked: &[String]) -> Vec<(&'static str, bool)> {
    GrantType::ALL.iter().map(|g| (g.as_str(), checked.iter().any(|c| c == g.as_str()))).collect()
}

fn client_form_of(spec: &crate::oauth::client_spec::ClientSpec) -> ClientForm {
    let session = spec.session.as_ref();
    let dur = |d: Option<crate::duration::Secs>| d.map(|d| d.to_string()).unwrap_or_default();
    ClientForm {
        id: spec.id.clone(),
        name: spec.name.clone().unwrap_or_default(),
        public: spec.public,
        redirect_uris: spec.redirect_uris.join("\n"),
        web_origins: spec.web_origins.join("\n"),
        grant_types: grant_boxes(&spec.grant_types),
        scopes: spec.scopes.as_ref().map(|s| s.join(" ")).unwrap_or_default(),
        idle: dur(session.and_then(|s| s.idle_timeout)),
        max: dur(session.and_then(|s| s.max_lifetime)),
        access: dur(session.and_then(|s| s.access_token_ttl)),
    }
}

fn client_form_typed(form: &Form) -> ClientForm {
    ClientForm {
        id: form.text("id"),
        name: form.text("name"),
        public: form.get("public") == Some("on"),
        redirect_uris: form.get("redirect_uris").unwrap_or_default().to_owned(),
        web_origins: form.get("web_origins").unwrap_or_default().to_owned(),
        grant_types: grant_boxes(&form.all("grant_types")),
        scopes: form.text("scopes"),
        idle: form.text("session_idle_timeout"),
        max: form.text("session_max_lifetime"),
        access: form.text("session_access_token_ttl"),
    }
}

/// The client the form describes, refused as the admin API refuses the
/// same body: a session value that is not a duration names itself, the
/// first by key name.
fn client_input(form: &Form) -> Result<ClientInput, ServiceError> {
    let lines = |name: &str| -> Vec<String> {
        form.get(name).unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
    };
    let secs = |key: &str| -> Result<Option<Secs>, ServiceError> {
        let v = form.text(&format!("session_{key}"));
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<Secs>().map(Some).map_err(|e| ServiceError::invalid(e.to_string()))
    };
    let access_token_ttl = secs("access_token_ttl")?;
    let idle_timeout = secs("idle_timeout")?;
    let max_lifetime = secs("max_lifetime")?;
    let session = (access_token_ttl.is_some() || idle_timeout.is_some() || max_lifetime.is_some())
        .then_some(ClientSessionOverride { idle_timeout, max_lifetime, access_token_ttl });
    let name = form.text("name");
    let scopes: Vec<String> = form.text("scopes").split_whitespace().map(str::to_owned).collect();
    let spec = ClientSpec {
        id: form.text("id"),
        name: (!name.is_empty()).then_some(name),
        public: form.get("public") == Some("on"),
        redirect_uris: lines("redirect_uris"),
        web_origins: lines("web_origins"),
        grant_types: form.all("grant_types"),
        scopes: (!scopes.is_empty()).then_some(scopes),
        session,
        ..ClientSpec::default()
    };
    Ok(ClientInput { spec, secret: None })
}

/// `GET /console/clients/new`.
pub async fn client_new(
    State(_state): State<ConsoleState>,
    PageViewer { viewer, .. }: AdminViewer,
) -> Result<Response, PageError> {
    let f = ClientForm {
        grant_types: grant_boxes(&["authorization_code".to_owned(), "refresh_token".to_owned()]),
        scopes: "openid profile email".into(),
        ..ClientForm::default()
    };
    let page =
        ClientPage { chrome: chrome(&viewer, "New client", "/console/clients").await, creating: true, f, error: None };
    Ok(render(StatusCode::OK, page))
}

async fn secret_page(viewer: &Viewer, client_id: String, secret: String) -> Response {
    let page = SecretPage { chrome: chrome(viewer, "Client secret", "/console/clients").await, client_id, secret };
    render(StatusCode::OK, page)
}

/// `POST /console/clients`: create; a generated secret is shown once.
pub async fn client_create(
    State(state): State<ConsoleState>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let created = match client_input(&form) {
        Ok(input) => service::clients::create(&state, &actor(&viewer), input, state.now()).await,
        Err(e) => Err(e),
    };
    Ok(match created {
        Ok(created) => match created.client_secret {
            Some(secret) => secret_page(&viewer, created.client.spec.id, secret).await,
            None => {
                viewer.flash(format!("Client {} created.", created.client.spec.id)).await;
                see_other(&format!("/console/clients/{}", enc(&created.client.spec.id)))
            }
        },
        Err(e) => {
            let status = status_of(&e);
            let page = ClientPage {
                chrome: chrome(&viewer, "New client", "/console/clients").await,
                creating: true,
                f: client_form_typed(&form),
                error: Some(format!("Nothing was saved: {}", message_of(&e))),
            };
            render(status, page)
        }
    })
}

/// `GET /console/clients/{id}`.
pub async fn client(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    PageViewer { viewer, .. }: AdminViewer,
) -> Result<Response, PageError> {
    Ok(match service::clients::show(&state, &id) {
        Ok(c) => {
            let page = ClientPage {
                chrome: chrome(&viewer, &format!("Client {id}"), "/console/clients").await,
                creating: false,
                f: client_form_of(&c.spec),
                error: (c.source != "admin").then(|| {
                    format!("Client {id} is not managed here ({}); it cannot be changed in the console.", c.source)
                }),
            };
            render(StatusCode::OK, page)
        }
        Err(e) => failed(&viewer, e, "/console/clients").await,
    })
}

/// `POST /console/clients/{id}`: replace the client's settings.
pub async fn client_save(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let saved = match service::clients::editable(&state, &id).await {
        Ok(old) => match client_input(&form) {
            Ok(mut input) => {
                input.spec.id = id.clone();
                service::clients::replace(&state, &actor(&viewer), old, input, state.now()).await
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    Ok(match saved {
        Ok(saved) => match saved.client_secret {
            Some(secret) => secret_page(&viewer, id, secret).await,
            None => {
                viewer.flash(format!("Client {id} saved.")).await;
                see_other(&format!("/console/clients/{}", enc(&id)))
            }
        },
        Err(e) => {
            let status = status_of(&e);
            let mut f = client_form_typed(&form);
            f.id = id.clone();
            let page = ClientPage {
                chrome: chrome(&viewer, &format!("Client {id}"), "/console/clients").await,
                creating: false,
                f,
                error: Some(format!("Nothing was saved: {}", message_of(&e))),
            };
            render(status, page)
        }
    })
}

/// `POST /console/clients/{id}/secret`: a new secret, shown once.
pub async fn client_secret(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let back = format!("/console/clients/{}", enc(&id));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Rotate the secret?",
            message: format!("Client {id} gets a new secret; the current one stops working at once."),
            details: Vec::new(),
            action: format!("{back}/secret"),
            confirm_label: "Rotate secret",
            cancel_href: back.clone(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::clients::rotate_secret(&state, &actor(&viewer), &id, state.now()).await {
        Ok(rotated) => match rotated.client_secret {
            Some(secret) => secret_page(&viewer, id, secret).await,
            None => see_other(&back),
        },
        Err(e) => failed(&viewer, e, &back).await,
    })
}

/// `POST /console/clients/{id}/delete`.
pub async fn client_delete(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    CsrfForm { viewer, form, .. }: CsrfForm<Administer>,
) -> Result<Response, PageError> {
    let back = format!("/console/clients/{}", enc(&id));
    if !form.confirmed() {
        let c = Confirm {
            heading: "Delete this client?",
            message: format!("Client {id} is deleted and every session of it is revoked. This cannot be undone."),
            details: Vec::new(),
            action: format!("{back}/delete"),
            confirm_label: "Delete client",
            cancel_href: back.clone(),
        };
        return Ok(confirm(&viewer, &form, c).await);
    }
    Ok(match service::clients::delete(&state, &actor(&viewer), &id, state.now()).await {
        Ok(revoked) => {
            viewer.flash(format!("Client {id} deleted; {revoked} of its sessions were revoked.")).await;
            see_other("/console/clients")
        }
        Err(e) => failed(&viewer, e, &back).await,
    })
}
