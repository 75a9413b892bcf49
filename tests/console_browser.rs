//! The web console (SPEC 9) in Debian's Chromium against the real binary:
//! a person signs in, sets the session policy with the toggle, presets,
//! custom minutes and days/hours/minutes, sees refusals and the preview,
//! revokes a user's sessions as helpdesk, is kept out of admin pages
//! without permissions, and signs out everywhere. Controls are found by
//! their visible labels and button texts. Without Chromium these tests skip
//! with one line (see support/browser.rs).

use fantoccini::Locator;
use serde_json::Value;

use crate::console::{admin_settings, config};
use crate::support::browser::{Chromium, ConsoleEntry, PATIENCE};
use crate::support::kit::{self, WEB};
use crate::support::{Server, eventually};

/// Sign in to the console at `path` as a person does on tenure's sign-in
/// page.
async fn sign_in(browser: &Chromium, server: &Server, path: &str, username: &str, password: &str) {
    browser.goto(&server.url(path)).await;
    browser.wait_for("input[name=username]").await;
    assert_eq!(browser.url().await.path(), "/authorize", "a signed-out visitor is sent to sign in");
    browser.fill("input[name=username]", username).await;
    browser.fill("input[name=password]", password).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("main#main").await;
}

/// The id of the control labelled `text` (the label's text starts with it),
/// within the fieldset whose legend starts with `group`, if given.
async fn labelled(browser: &Chromium, text: &str, group: Option<&str>) -> String {
    let script = r#"
        const [text, group] = arguments;
        let scope = document;
        if (group) {
            scope = [...document.querySelectorAll('fieldset')]
                .find(f => f.querySelector('legend') && f.querySelector('legend').textContent.trim().startsWith(group));
            if (!scope) return null;
        }
        const label = [...scope.querySelectorAll('label')].find(l => l.textContent.trim().startsWith(text));
        return label ? label.htmlFor : null;
    "#;
    let id = browser.execute(script, vec![text.into(), group.map(Value::from).unwrap_or(Value::Null)]).await;
    match id.as_str() {
        Some(id) if !id.is_empty() => format!("#{id}"),
        _ => panic!("no control labelled {text:?} (in {group:?}) on {}", browser.url().await),
    }
}

async fn fill_labelled(browser: &Chromium, text: &str, group: Option<&str>, value: &str) {
    let css = labelled(browser, text, group).await;
    browser.fill(&css, value).await;
}

async fn choose(browser: &Chromium, text: &str, group: Option<&str>, option: &str) {
    let css = labelled(browser, text, group).await;
    let select = browser.wait_for(&css).await;
    select.select_by_label(option).await.unwrap_or_else(|e| panic!("cannot choose {option:?} in {text:?}: {e}"));
}

/// Click the button whose text is `text`.
async fn press(browser: &Chromium, text: &str) {
    let xpath = format!("//button[normalize-space()='{text}']");
    let button = match browser.client.wait().at_most(PATIENCE).for_element(Locator::XPath(&xpath)).await {
        Ok(b) => b,
        Err(e) => panic!("no button {text:?} on {}: {e}\n{}", browser.url().await, browser.text("body").await),
    };
    button.click().await.unwrap_or_else(|e| panic!("cannot press {text:?}: {e}"));
}

/// Follow the link whose text is `text`.
async fn follow(browser: &Chromium, text: &str) {
    let link = match browser.client.wait().at_most(PATIENCE).for_element(Locator::LinkText(text)).await {
        Ok(l) => l,
        Err(e) => panic!("no link {text:?} on {}: {e}\n{}", browser.url().await, browser.text("body").await),
    };
    link.click().await.unwrap_or_else(|e| panic!("cannot follow {text:?}: {e}"));
}

/// Wait until the page's text contains `text`.
async fn wait_for_page_text(browser: &Chromium, text: &str) {
    if !eventually(PATIENCE, || async { browser.text("body").await.contains(text) }).await {
        panic!(
            "the page never showed {text:?}; it shows {:?} at {}\nconsole errors: {:#?}",
            browser.text("body").await,
            browser.url().await,
            browser.console_errors().await
        );
    }
}

fn no_errors(errors: &[ConsoleEntry]) {
    assert!(errors.is_empty(), "console errors or CSP violations: {errors:#?}");
}

/// alice signs in to the confidential app `web` (another browser, through
/// HTTP) and gets its refresh token.
async fn app_refresh_token(server: &Server, username: &str, password: &str) -> String {
    kit::sign_in(server, username, password, "openid").await.refresh()
}

async fn refresh_status(server: &Server, refresh_token: &str) -> u16 {
    kit::refresh(server, WEB, refresh_token).await.status().as_u16()
}

#[tokio::test]
async fn an_administrator_sets_timeouts_with_presets_custom_minutes_and_days_hours_minutes_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    sign_in(&browser, &server, "/console", "root", "root-password").await;
    assert_eq!(browser.url().await.path(), "/console/settings", "an administrator starts at the settings");
    let mut errors = browser.console_errors().await;

    // The toggle is on, the idle timeout a choice of presets or Custom.
    let toggle = labelled(&browser, "Automatically sign out inactive users", Some("Sign-in sessions")).await;
    let checked = browser.execute(&format!("return document.querySelector('{toggle}').checked"), vec![]).await;
    assert_eq!(checked, Value::Bool(true));
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "3 hours").await;
    fill_labelled(&browser, "Days", Some("Maximum session duration"), "1").await;
    fill_labelled(&browser, "Hours", Some("Maximum session duration"), "2").await;
    fill_labelled(&browser, "Minutes", Some("Maximum session duration"), "30").await;
    press(&browser, "Save changes").await;
    wait_for_page_text(&browser, "Session settings saved.").await;
    errors.extend(browser.console_errors().await);
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 3 * 3600);
    assert_eq!(settings["max_lifetime"], 86_400 + 2 * 3600 + 30 * 60);
    assert_eq!(settings["sources"]["idle_timeout"], "admin");
    // The page shows the source of each value.
    let label = browser
        .text(&format!("label[for={}]", &labelled(&browser, "Idle timeout", Some("Sign-in sessions")).await[1..]))
        .await;
    assert!(label.contains("admin"), "{label}");

    // Custom minutes: the input appears when "Custom" is chosen (script), and
    // a longer idle timeout than before asks nothing.
    let custom = labelled(&browser, "Custom idle timeout (minutes)", Some("Sign-in sessions")).await;
    let visible = |css: String| {
        let browser = &browser;
        async move {
            browser.execute(&format!("return document.querySelector('{css}').offsetParent !== null"), vec![]).await
        }
    };
    assert_eq!(visible(custom.clone()).await, Value::Bool(false), "hidden while a preset is chosen");
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "Custom").await;
    assert_eq!(visible(custom.clone()).await, Value::Bool(true), "shown for Custom");
    browser.fill(&custom, "250").await;
    press(&browser, "Save changes").await;
    wait_for_page_text(&browser, "Session settings saved.").await;
    assert_eq!(admin_settings(&server).await["idle_timeout"], 250 * 60);

    // Times are shown in the viewer's zone with a relative time.
    follow(&browser, "My sessions").await;
    wait_for_page_text(&browser, "This session").await;
    let cell = browser.text("tr.current td:nth-child(7) time").await;
    assert!(cell.contains("(in 1 d"), "absolute expiry 1 d 2 h 30 min away: {cell:?}");
    errors.extend(browser.console_errors().await);
    no_errors(&errors);
    browser.close().await;
}

#[tokio::test]
async fn an_invalid_combination_shows_its_rule_in_chromium_and_saves_nothing() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    sign_in(&browser, &server, "/console/settings", "root", "root-password").await;
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "24 hours").await;
    press(&browser, "Save changes").await;
    browser.wait_for("#settings-error").await;
    let error = browser.text("#settings-error").await;
    assert!(error.starts_with("Nothing was saved"), "{error}");
    assert!(error.contains("idle_timeout") && error.contains("max_lifetime"), "names the rule: {error}");
    let beside = browser.text("#idle_error").await;
    assert!(beside.contains("idle_timeout"), "the error is shown beside the idle timeout: {beside:?}");
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 1800);
    assert_eq!(settings["sources"]["idle_timeout"], "default");
    // The refusal is a 400, which Chromium logs as a network entry for the
    // page itself; nothing else may appear (no CSP violation, no script error).
    let errors: Vec<ConsoleEntry> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !(e.source == "network" && e.message.contains("/console/settings - ") && e.message.contains("400")))
        .collect();
    no_errors(&errors);
    browser.close().await;
}

#[tokio::test]
async fn the_preview_appears_before_a_change_that_shortens_live_sessions_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    let _alice = app_refresh_token(&server, "alice", "alice-password").await;
    sign_in(&browser, &server, "/console/settings", "root", "root-password").await;
    // Idle 10 minutes instead of 30: every live session gets shorter.
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "Custom").await;
    fill_labelled(&browser, "Custom idle timeout (minutes)", Some("Sign-in sessions"), "10").await;
    press(&browser, "Save changes").await;
    wait_for_page_text(&browser, "Apply to live sessions?").await;
    let page = browser.text("main").await;
    assert!(page.contains("2 sessions get shorter"), "root's console and alice's app: {page}");
    assert!(page.contains("client web: 0 end now, 1 shorter"), "{page}");
    assert!(page.contains("client console: 0 end now, 1 shorter"), "{page}");
    assert_eq!(admin_settings(&server).await["idle_timeout"], 1800, "nothing saved yet");
    press(&browser, "Save and apply").await;
    wait_for_page_text(&browser, "Session settings saved.").await;
    let settings = admin_settings(&server).await;
    assert_eq!(settings["idle_timeout"], 600);
    assert_eq!(settings["access_token_ttl"], 600, "the access token lifetime follows the idle timeout");
    no_errors(&browser.console_errors().await);
    browser.close().await;
}

#[tokio::test]
async fn a_helpdesk_user_revokes_a_users_sessions_in_chromium_and_the_refresh_token_fails_at_once() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    let refresh = app_refresh_token(&server, "alice", "alice-password").await;
    assert_eq!(refresh_status(&server, &refresh).await, 200, "alice's app works");
    let refresh = app_refresh_token(&server, "alice", "alice-password").await;
    sign_in(&browser, &server, "/console", "carol", "carol-password").await;
    assert_eq!(browser.url().await.path(), "/console/users", "helpdesk starts at Users");
    fill_labelled(&browser, "Search users", None, "ali").await;
    press(&browser, "Search").await;
    wait_for_page_text(&browser, "ali").await;
    let searched = eventually(PATIENCE, || async { browser.url().await.query() == Some("query=ali") }).await;
    assert!(searched, "the search did not load: {}", browser.url().await);
    follow(&browser, "alice").await;
    wait_for_page_text(&browser, "Live sessions").await;
    let sessions = browser.text("table").await;
    assert!(sessions.contains("web"), "{sessions}");
    press(&browser, "Revoke all sessions").await;
    wait_for_page_text(&browser, "Revoke all sessions?").await;
    press(&browser, "Revoke all sessions").await;
    wait_for_page_text(&browser, "Every session of alice was revoked.").await;
    wait_for_page_text(&browser, "No active sessions.").await;
    assert_eq!(refresh_status(&server, &refresh).await, 400, "alice's refresh token fails at once");
    // Helpdesk sees no settings, clients or keys.
    let nav = browser.text("nav").await;
    assert!(nav.contains("Users") && nav.contains("Audit log"), "{nav}");
    assert!(!nav.contains("Session settings") && !nav.contains("Clients"), "{nav}");
    no_errors(&browser.console_errors().await);
    browser.close().await;
}

#[tokio::test]
async fn a_user_without_permissions_cannot_reach_admin_pages_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    sign_in(&browser, &server, "/console", "alice", "alice-password").await;
    assert_eq!(browser.url().await.path(), "/console/account");
    assert_eq!(browser.text("nav").await.trim(), "My sessions", "alice's only page");
    for path in ["/console/settings", "/console/users", "/console/clients", "/console/keys", "/console/audit"] {
        browser.goto(&server.url(path)).await;
        wait_for_page_text(&browser, "You cannot open this page").await;
        assert!(browser.client.find(Locator::Css("form[action='/console/settings']")).await.is_err());
    }
    browser.close().await;
}

#[tokio::test]
async fn my_sessions_signs_out_everywhere_in_chromium_and_the_back_button_shows_nothing() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    let refresh = app_refresh_token(&server, "alice", "alice-password").await;
    sign_in(&browser, &server, "/console/account", "alice", "alice-password").await;
    wait_for_page_text(&browser, "This session").await;
    let rows = browser.execute("return document.querySelectorAll('tbody tr').length", vec![]).await;
    assert_eq!(rows, Value::from(2), "the app's session and this one");
    assert!(browser.text("tr.current").await.contains("Sign out this session"));
    press(&browser, "Sign out everywhere").await;
    wait_for_page_text(&browser, "Sign out everywhere?").await;
    press(&browser, "Sign out everywhere").await;
    wait_for_page_text(&browser, "You have signed out of the tenure console.").await;
    assert_eq!(refresh_status(&server, &refresh).await, 400, "the app's session ended too");
    // Back to the confirmation, then to My sessions: never shown again.
    browser.client.back().await.unwrap();
    browser.client.back().await.unwrap();
    browser.wait_for("input[name=username]").await;
    assert_eq!(browser.url().await.path(), "/authorize", "the back button leads to the sign-in page");
    assert!(!browser.text("body").await.contains("This session"));
    browser.close().await;
}

#[tokio::test]
async fn after_sign_out_the_back_button_shows_the_sign_in_page_not_the_settings_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    sign_in(&browser, &server, "/console/settings", "root", "root-password").await;
    wait_for_page_text(&browser, "Automatically sign out inactive users").await;
    press(&browser, "Sign out").await;
    wait_for_page_text(&browser, "You have signed out of the tenure console.").await;
    // The browser's own back navigation: not a page of the signed-out
    // session from the back/forward cache, but a fresh request, which is
    // sent to sign in.
    browser.client.back().await.unwrap();
    let at_sign_in = eventually(PATIENCE, || async {
        let body = browser.text("body").await;
        assert!(
            !body.contains("Automatically sign out inactive users"),
            "the back button showed the settings again at {}",
            browser.url().await
        );
        browser.url().await.path() == "/authorize"
    })
    .await;
    assert!(at_sign_in, "the back button shows {:?} at {}", browser.text("body").await, browser.url().await);
    // The console asks for the password: the tenure session (which other
    // apps keep) does not sign the console in again behind the back button.
    browser.wait_for("input[name=username]").await;
    let url = browser.url().await;
    assert!(url.query_pairs().any(|(k, v)| k == "prompt" && v == "login"), "{url}");
    browser.fill("input[name=username]", "root").await;
    browser.fill("input[name=password]", "root-password").await;
    browser.click("button[type=submit]").await;
    wait_for_page_text(&browser, "Automatically sign out inactive users").await;
    no_errors(&browser.console_errors().await);
    browser.close().await;
}

/// SPEC 9 "First run" in Chromium: the printed setup URL's page refuses a
/// mistyped confirmation inline, then creates the first administrator, who
/// lands in the console signed in; no console error, no CSP violation.
#[tokio::test]
async fn the_first_administrator_is_created_on_the_setup_page_and_lands_in_the_console() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&crate::first_run::config(), &[]);
    let setup = crate::first_run::setup_path(&server).await;
    browser.goto(&server.url(&setup)).await;
    wait_for_page_text(&browser, "Create the first administrator").await;
    fill_labelled(&browser, "Username", None, "admin").await;
    fill_labelled(&browser, "Password", None, "correct horse").await;
    fill_labelled(&browser, "Confirm password", None, "correct hose").await;
    press(&browser, "Create administrator and sign in").await;
    wait_for_page_text(&browser, "the two passwords differ").await;
    // The refusal is a 400, which Chromium logs as a network entry.
    let mut errors: Vec<ConsoleEntry> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !(e.source == "network" && e.message.contains("/console/setup - ") && e.message.contains("400")))
        .collect();
    fill_labelled(&browser, "Password", None, "correct horse").await;
    fill_labelled(&browser, "Confirm password", None, "correct horse").await;
    press(&browser, "Create administrator and sign in").await;
    wait_for_page_text(&browser, "Signed in as admin").await;
    assert_eq!(browser.url().await.path(), "/console/settings", "an administrator's start page");
    browser.goto(&server.url(&setup)).await;
    wait_for_page_text(&browser, "Setup is done").await;
    errors.extend(browser.console_errors().await);
    no_errors(&errors);
    browser.close().await;
}

/// The screenshots in docs/console/ (run on purpose:
/// `cargo test --test integration console_browser::screenshots -- --ignored`).
#[tokio::test]
#[ignore = "writes docs/console/*.png"]
async fn screenshots() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    let _alice = app_refresh_token(&server, "alice", "alice-password").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    let shoot = |name: &'static str, height: u32| {
        let browser = &browser;
        let dir = dir.clone();
        async move {
            browser.client.set_window_size(1280, height).await.unwrap();
            // sleep: the window resize has no event to wait for before a screenshot
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let png = browser.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        }
    };
    sign_in(&browser, &server, "/console/settings", "root", "root-password").await;
    shoot("settings", 2150).await;
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "Custom").await;
    fill_labelled(&browser, "Custom idle timeout (minutes)", Some("Sign-in sessions"), "10").await;
    press(&browser, "Save changes").await;
    wait_for_page_text(&browser, "Apply to live sessions?").await;
    shoot("settings-preview", 800).await;
    browser.goto(&server.url("/console/settings")).await;
    choose(&browser, "Idle timeout", Some("Sign-in sessions"), "24 hours").await;
    press(&browser, "Save changes").await;
    browser.wait_for("#settings-error").await;
    shoot("settings-error", 900).await;

    browser.goto(&server.url("/console/users")).await;
    fill_labelled(&browser, "Username", None, "dave").await;
    fill_labelled(&browser, "Email", None, "dave@example.com").await;
    fill_labelled(&browser, "Password", None, "dave-password").await;
    press(&browser, "Create user").await;
    wait_for_page_text(&browser, "User dave created.").await;
    browser.goto(&server.url("/console/users")).await;
    shoot("users", 1100).await;
    browser.goto(&server.url("/console/users/alice")).await;
    shoot("user", 800).await;

    browser.goto(&server.url("/console/clients/new")).await;
    fill_labelled(&browser, "Client ID", None, "kubectl").await;
    fill_labelled(&browser, "Name", None, "kubectl").await;
    fill_labelled(&browser, "Redirect URIs", None, "http://127.0.0.1:8000/").await;
    fill_labelled(&browser, "Scopes", None, "openid").await;
    fill_labelled(&browser, "Maximum lifetime", None, "1h").await;
    press(&browser, "Create client").await;
    wait_for_page_text(&browser, "shown only once").await;
    shoot("client-secret", 700).await;
    browser.goto(&server.url("/console/clients")).await;
    shoot("clients", 700).await;
    browser.goto(&server.url("/console/clients/kubectl")).await;
    shoot("client", 1400).await;

    browser.goto(&server.url("/console/keys")).await;
    shoot("keys", 700).await;
    browser.goto(&server.url("/console/audit")).await;
    shoot("audit", 900).await;
    browser.goto(&server.url("/console/account")).await;
    shoot("my-sessions", 700).await;
    browser.client.set_window_size(400, 900).await.unwrap();
    browser.goto(&server.url("/console/account")).await;
    // sleep: the window resize has no event to wait for before a screenshot
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    std::fs::write(dir.join("my-sessions-narrow.png"), browser.client.screenshot().await.unwrap()).unwrap();

    // The first run's page, on a server without an administrator.
    let fresh = Server::start(&crate::first_run::config(), &[]);
    browser.goto(&fresh.url(&crate::first_run::setup_path(&fresh).await)).await;
    wait_for_page_text(&browser, "Create the first administrator").await;
    shoot("setup", 700).await;
    browser.close().await;
}

/// With `TENURE_SCREENSHOTS=1`, a screenshot of the page as
/// docs/console/`name`.png.
async fn shoot_if_asked(browser: &Chromium, name: &str, height: u32) {
    if std::env::var("TENURE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        browser.client.set_window_size(1280, height).await.unwrap();
        // sleep: the window resize has no event to wait for before a screenshot
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
        std::fs::write(dir.join(format!("{name}.png")), browser.client.screenshot().await.unwrap()).unwrap();
    }
}

/// SPEC 14 in Chromium: the sessions that ended in the last 30 days, with
/// why, on "My sessions" and on a user's page (`TENURE_SCREENSHOTS=1` writes
/// docs/console/my-sessions-ended.png and docs/console/user-ended.png).
#[tokio::test]
async fn ended_sessions_show_why_in_chromium() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    let revoked = kit::sign_in(&server, "alice", "alice-password", "openid").await;
    let signed_out = kit::sign_in(&server, "alice", "alice-password", "openid").await;
    let helpdesk = kit::cc_admin_token(&server, "automation", "automation-secret").await;
    let path = format!("/admin/sessions/{}", revoked.sid());
    assert_eq!(kit::call(&server, "DELETE", &path, Some(&helpdesk), None).await.0, 204);
    let path = format!("/account/sessions/{}", signed_out.sid());
    assert_eq!(kit::call(&server, "DELETE", &path, Some(&signed_out.access()), None).await.0, 204);

    sign_in(&browser, &server, "/console/account", "alice", "alice-password").await;
    wait_for_page_text(&browser, "Ended in the last 30 days").await;
    let ended = browser.text("table.ended").await;
    assert!(ended.contains("Ended: revoked by automation"), "{ended}");
    assert!(ended.contains("Ended: signed out"), "{ended}");
    assert!(ended.contains(kit::WEB.0), "each ended session names its client: {ended}");
    let live = browser.text("table").await;
    assert!(live.contains("This session") && !live.contains("Ended:"), "the live ones first, apart: {live}");
    shoot_if_asked(&browser, "my-sessions-ended", 800).await;
    browser.close().await;

    let Some(browser) = Chromium::start().await else { return };
    sign_in(&browser, &server, "/console/users/alice", "root", "root-password").await;
    wait_for_page_text(&browser, "Ended: revoked by automation").await;
    shoot_if_asked(&browser, "user-ended", 1100).await;
    browser.close().await;
}

/// The "Group policies" part of the settings page (SPEC 14) for
/// docs/console.md, with a group added through its form (run on purpose:
/// `cargo test --test integration console_browser::group_policies_screenshot -- --ignored`).
#[tokio::test]
#[ignore = "writes docs/console/settings-groups.png"]
async fn group_policies_screenshot() {
    let Some(browser) = Chromium::start().await else { return };
    let server = Server::start(&config(), &[]);
    sign_in(&browser, &server, "/console/settings", "root", "root-password").await;
    browser.fill("#group_name", "admins").await;
    browser.fill("#group_idle", "10").await;
    browser.fill("#group_max", "480").await;
    press(&browser, "Save group").await;
    wait_for_page_text(&browser, "Group admins saved").await;
    browser.fill("#group_name", "contractors").await;
    browser.fill("#group_ttl", "5").await;
    browser.fill("#group_sessions", "2").await;
    press(&browser, "Save group").await;
    wait_for_page_text(&browser, "Group contractors saved").await;
    browser.goto(&server.url("/console/settings#group-policies")).await;
    browser.client.set_window_size(1280, 900).await.unwrap();
    // sleep: the window resize has no event to wait for before a screenshot
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let png = browser.client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::write(dir.join("settings-groups.png"), png).unwrap();
    // A user's groups on the user page.
    browser.goto(&server.url("/console/users")).await;
    fill_labelled(&browser, "Username", None, "dave").await;
    fill_labelled(&browser, "Password", None, "dave-password").await;
    press(&browser, "Create user").await;
    wait_for_page_text(&browser, "User dave created.").await;
    browser.goto(&server.url("/console/users/dave")).await;
    browser.client.find(Locator::Css("#group_admins")).await.unwrap().click().await.unwrap();
    press(&browser, "Save groups").await;
    wait_for_page_text(&browser, "The groups of dave were saved").await;
    browser.goto(&server.url("/console/users/dave#groups-form")).await;
    // sleep: the jump to the anchor has no event to wait for before a screenshot
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let png = browser.client.screenshot().await.unwrap();
    std::fs::write(dir.join("user-groups.png"), png).unwrap();
    let errors = browser.console_errors().await;
    no_errors(&errors);
    browser.close().await;
}
