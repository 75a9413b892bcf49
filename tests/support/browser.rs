//! A real browser for end-to-end tests: Debian's headless Chromium, driven
//! through chromedriver (W3C WebDriver) with fantoccini.
//!
//! [`Chromium::start`] starts chromedriver on a free loopback port (it picks
//! one and names it) and opens one browser session with a fresh profile.
//! [`Chromium::close`] ends the session (chromedriver then quits Chromium)
//! and stops chromedriver; if a test panics first, `Drop` kills
//! chromedriver's process group, Chromium included.
//!
//! When Chromium or chromedriver is not installed, `start` prints one line
//! ([`SKIP_LINE`]) and returns `None`, and the test returns early; with
//! `TENURE_REQUIRE_EXTERNAL=1` (CI) it fails instead.
//!
//! [`Chromium::console_errors`] reads the browser's console log: script
//! errors, `console.error`, failed loads, CORS refusals and Content Security
//! Policy violations all land there.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Once, mpsc};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The one line printed when the browser tests are skipped.
pub const SKIP_LINE: &str =
    "SKIPPED: browser tests need /usr/bin/chromium and /usr/bin/chromedriver (apt install chromium chromium-driver)";

/// Flags that work on a headless CI machine (no sandbox: tests run as root
/// in a container; no background traffic: the tests see every request).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
];

/// How long waits for page state last before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One headless Chromium session.
pub struct Chromium {
    /// The WebDriver session; use it to navigate, find and click.
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// One entry of the browser's console log.
#[derive(Clone, Debug)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO`, ...
    pub level: String,
    /// Where Chromium says it came from: `javascript`, `console-api`,
    /// `network`, `security` (CORS, CSP), ...
    pub source: String,
    pub message: String,
}

impl Chromium {
    /// Start chromedriver and a browser session, or `None` (after printing
    /// [`SKIP_LINE`] once) when they are not installed. Panics instead of
    /// skipping when `TENURE_REQUIRE_EXTERNAL=1`.
    pub async fn start() -> Option<Chromium> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
        if !missing.is_empty() {
            if std::env::var("TENURE_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                let needs = SKIP_LINE.trim_start_matches("SKIPPED: ");
                panic!("{needs}; {} missing, and TENURE_REQUIRE_EXTERNAL=1 forbids skipping", missing.join(" and "));
            }
            static SKIP: Once = Once::new();
            // Straight to the process's stderr: the test harness captures
            // `eprintln!` of passing tests, and this line must be seen.
            SKIP.call_once(|| {
                let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
            });
            return None;
        }

        // Port 0: chromedriver picks a free loopback port and names it. On a
        // loaded machine (the whole suite runs at once) it can be slow to
        // start: wait up to a minute, and start it once more if it stays
        // silent.
        let (mut guard, port) = (1..=2)
            .find_map(|attempt| {
                let mut driver = Command::new(CHROMEDRIVER)
                    .arg("--port=0")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    // Its own process group, which Chromium joins: `Drop` kills both.
                    .process_group(0)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
                let stdout = driver.stdout.take().expect("chromedriver's stdout");
                let guard = DriverGuard(Some(driver));
                match driver_port(stdout, Duration::from_secs(60)) {
                    Some(port) => Some((guard, port)),
                    None if attempt == 1 => None,
                    None => panic!("chromedriver did not report its port within 60 s, twice"),
                }
            })
            .expect("a started chromedriver");

        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {CHROMIUM}: {e}"));
        let driver = guard.0.take().expect("the chromedriver process");
        Some(Chromium { client, driver, _profile: profile })
    }

    /// Go to `url` and wait until it has loaded.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The page's current URL.
    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// Wait until an element matching `css` exists, and return it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!(
                "no element {css:?} on {} after {PATIENCE:?}: {e}\nconsole errors: {:#?}",
                self.describe().await,
                self.console_errors().await
            ),
        }
    }

    /// Type `text` into the input matching `css`, as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        input.clear().await.unwrap_or_else(|e| panic!("cannot clear {css:?}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("cannot type into {css:?}: {e}"));
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        element.click().await.unwrap_or_else(|e| panic!("cannot click {css:?}: {e}"));
    }

    /// The text of the element matching `css` (empty when there is none).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Wait until the text of `css` is `expected`; on timeout, panic with
    /// what the page shows instead, and the console errors.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        if !super::eventually(PATIENCE, || async { self.text(css).await == expected }).await {
            let errors = self.console_errors().await;
            panic!(
                "{css:?} did not read {expected:?} within {PATIENCE:?}; it reads {:?} on {}\nconsole errors: {errors:#?}",
                self.text(css).await,
                self.describe().await,
            );
        }
    }

    /// Run `script` in the page (a function body; `arguments` holds `args`).
    /// A returned promise is awaited.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Every console entry logged since the last call (the log is drained).
    pub async fn console(&self) -> Vec<ConsoleEntry> {
        let entries = self.client.issue_cmd(BrowserLog).await.expect("the browser log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| ConsoleEntry {
                level: e["level"].as_str().unwrap_or_default().to_owned(),
                source: e["source"].as_str().unwrap_or_default().to_owned(),
                message: e["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The errors among [`console`](Self::console): script errors,
    /// `console.error`, failed loads, CORS refusals, CSP violations.
    pub async fn console_errors(&self) -> Vec<ConsoleEntry> {
        self.console().await.into_iter().filter(|e| e.level == "SEVERE").collect()
    }

    /// End the session (chromedriver quits Chromium) and stop chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        if let Err(e) = client.close().await {
            let _ = writeln!(std::io::stderr(), "closing the Chromium session: {e}");
        }
        stop(&mut self.driver);
    }

    async fn describe(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let body = self.text("body").await;
        format!("{url} (page text: {body:?})")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}

/// Kills chromedriver if `start` fails half-way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            stop(child);
        }
    }
}

/// Kill chromedriver's process group (chromedriver and the Chromium it
/// started), by the group id of the child we spawned, and reap it.
fn stop(driver: &mut Child) {
    if let Ok(Some(_)) = driver.try_wait() {
        return;
    }
    let group = format!("-{}", driver.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    let _ = driver.kill();
    let _ = driver.wait();
}

/// The port chromedriver reports ("ChromeDriver was started successfully on
/// port N."); its output is drained afterwards so it never blocks.
fn driver_port(stdout: ChildStdout, within: Duration) -> Option<u16> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split_once("started successfully on port ").map(|(_, rest)| rest) {
                let _ = tx.send(rest.trim_end_matches('.').parse::<u16>());
            }
        }
    });
    match rx.recv_timeout(within) {
        Ok(Ok(port)) => Some(port),
        Ok(Err(e)) => panic!("chromedriver named an unreadable port: {e}"),
        Err(_) => None,
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`, type
/// `browser`): the console entries collected since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(json!({ "type": "browser" }).to_string()))
    }
}
