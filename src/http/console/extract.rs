//! The console's extractors (STYLE.md "Handlers that use `?`"): the viewer
//! of a page and the viewer of a posted form, each with the permission the
//! handler needs. Their rejections are the page to show: the redirect to
//! sign in, the refused form, the 403 page.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::ConsoleState;
use super::page::{chrome, forbidden, render};
use super::session::{self, Viewer};
use super::view::MessagePage;
use crate::http::form::Form;
use crate::http::pages::PageError;
use crate::oauth::client::Permission;

/// The permission an extractor requires.
pub trait Need: Send + Sync {
    const PERMISSION: Option<Permission>;
}

/// Any signed-in user.
pub struct Anyone;
/// `system:administer`.
pub struct Administer;
/// `users:edit`.
pub struct EditUsers;

impl Need for Anyone {
    const PERMISSION: Option<Permission> = None;
}
impl Need for Administer {
    const PERMISSION: Option<Permission> = Some(Permission::SystemAdminister);
}
impl Need for EditUsers {
    const PERMISSION: Option<Permission> = Some(Permission::UsersEdit);
}

/// The viewer of a page, signed in and holding `N`'s permission. Without a
/// session the browser signs in and comes back to this page.
pub struct PageViewer<N: Need = Anyone> {
    pub viewer: Viewer,
    need: PhantomData<N>,
}

/// A page for administrators.
pub type AdminViewer = PageViewer<Administer>;
/// A page for user editors.
pub type UsersViewer = PageViewer<EditUsers>;

/// A posted form with a valid CSRF token, from a viewer holding `N`'s
/// permission. Without a session the browser signs in and lands on the
/// console's start page (a post cannot be replayed).
pub struct CsrfForm<N: Need = Anyone> {
    pub viewer: Viewer,
    pub form: Form,
    need: PhantomData<N>,
}

/// The viewer of a page, or the redirect to sign in and come back.
async fn page_viewer(state: &ConsoleState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
    session::viewer(state, headers, path).await
}

/// The viewer of a posted form with a valid CSRF token. Without a session
/// the browser signs in and lands on the console's start page (a post cannot
/// be replayed).
async fn form_viewer(state: &ConsoleState, headers: &HeaderMap, form: &Form) -> Result<Viewer, Response> {
    let viewer = session::viewer(state, headers, "/console").await?;
    if form.0.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        // No field may hold NUL (PostgreSQL could not store it): refused
        // alike with either store (SPEC 7).
        let page = MessagePage {
            chrome: chrome(&viewer, "Bad form", "").await,
            heading: "This form cannot be used".into(),
            message: "A field holds a NUL character, which no name or value may contain, so nothing was changed."
                .into(),
            back_href: "/console".into(),
            back_label: "Back to the console".into(),
        };
        return Err(render(StatusCode::BAD_REQUEST, page));
    }
    if !viewer.csrf_ok(state, form.get("csrf").unwrap_or_default()) {
        let page = MessagePage {
            chrome: chrome(&viewer, "Form expired", "").await,
            heading: "This form has expired".into(),
            message: "The form did not carry this console session's security token, so nothing was changed. Go back, reload the page and try again.".into(),
            back_href: "/console".into(),
            back_label: "Back to the console".into(),
        };
        return Err(render(StatusCode::FORBIDDEN, page));
    }
    Ok(viewer)
}

/// `viewer`, or the 403 page when it lacks `N`'s permission.
async fn permitted<N: Need>(viewer: Viewer) -> Result<Viewer, PageError> {
    match N::PERMISSION {
        Some(what) if !viewer.has(what) => Err(PageError::shown(forbidden(&viewer, what).await)),
        _ => Ok(viewer),
    }
}

impl<S, N: Need> FromRequestParts<S> for PageViewer<N>
where
    ConsoleState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let state = ConsoleState::from_ref(state);
        let viewer = page_viewer(&state, &parts.headers, &parts.uri).await.map_err(PageError::shown)?;
        Ok(PageViewer { viewer: permitted::<N>(viewer).await?, need: PhantomData })
    }
}

impl<S, N: Need> FromRequest<S> for CsrfForm<N>
where
    ConsoleState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(|r| PageError::shown(r.into_response()))?;
        let state = ConsoleState::from_ref(state);
        let form = Form::parse(&body);
        let viewer = form_viewer(&state, &headers, &form).await.map_err(PageError::shown)?;
        Ok(CsrfForm { viewer: permitted::<N>(viewer).await?, form, need: PhantomData })
    }
}
