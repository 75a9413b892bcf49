//! A throwaway PostgreSQL for the tests of the PostgreSQL store (SPEC 12).
//!
//! [`database`] hands each test a fresh, empty database (`CREATE DATABASE
//! t_<random>`) on one server shared by the whole test process:
//!
//! - With `TENURE_TEST_DATABASE_URL` set, that server (any PostgreSQL the
//!   URL's user may create databases on); each test's database is dropped
//!   when its [`PgDatabase`] is.
//! - Otherwise a server of Debian's binaries (`/usr/lib/postgresql/<v>/bin`,
//!   the newest version there) in a temporary directory: `initdb`, then
//!   `postgres` listening on 127.0.0.1 on a free port and on a unix socket in
//!   that directory, with the durability settings tenure relies on (`fsync`
//!   and `synchronous_commit` on) and `max_connections = 100`. PostgreSQL
//!   refuses to run as root: as root, the directory is given to the
//!   `postgres` user and both programs run as that user.
//!
//! Stopping it: a test process ends with `exit`, which runs no destructor
//! of a `static`, so the server is not owned by one. It is started by a
//! small watchdog shell (its own process group, so a Ctrl-C of the test run
//! does not kill the watchdog first) that checks every half second whether
//! the test process still exists; once it is gone, the watchdog sends the
//! postmaster SIGTERM (SIGKILL after 10 s) and deletes the directory.
//!
//! Without the binaries, [`database`] prints [`SKIP_LINE`] once and returns
//! `None`; the test then returns early. With `TENURE_REQUIRE_EXTERNAL=1`
//! (CI) it fails instead.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use tenure::store::postgres::DatabaseUrl;
use tenure::store::postgres::PgStore;

pub const PG_ROOT: &str = "/usr/lib/postgresql";
/// The one line printed when the PostgreSQL tests are skipped.
pub const SKIP_LINE: &str = "SKIPPED: PostgreSQL tests: no initdb found under /usr/lib/postgresql (install postgresql)";

/// A fresh database for one test.
pub struct PgDatabase {
    /// A URL for tenure (`TENURE_DATABASE_URL`): the test's database.
    pub url: String,
    pub name: String,
    /// Where the server is (external or ours), to drop the database.
    admin_url: String,
    external: bool,
}

impl PgDatabase {
    /// The URL with `query` (like `sslmode=require`) appended.
    pub fn url_with(&self, query: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}{query}", self.url)
    }

    /// A direct connection for a test to look at or change the database.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// A [`PgStore`] on this database, schema not migrated.
    pub async fn connect_store(&self) -> PgStore {
        let url = DatabaseUrl::parse(&self.url).expect("a valid URL");
        PgStore::connect(&url, 4).await.expect("connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Our own server dies with the test process, databases and all.
        if !self.external {
            return;
        }
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: talk to the server from a
        // thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

/// Run `tenure migrate` against the database at `url` (as an operator does
/// before starting replicas); panics with its error output if it fails.
pub fn migrate(url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::support::tenure()
        .arg("migrate")
        .current_dir(dir.path())
        .env("TENURE_STORE", "postgres")
        .env("TENURE_DATABASE_URL", url)
        .output()
        .expect("run tenure migrate");
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh database, or `None` (after printing [`SKIP_LINE`] once) when
/// there is no PostgreSQL to run; panics instead when
/// `TENURE_REQUIRE_EXTERNAL=1`.
pub async fn database() -> Option<PgDatabase> {
    let server = server()?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&server.admin_url).await;
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE for the test");
    let url = with_database(&server.admin_url, &name);
    Some(PgDatabase { url, name, admin_url: server.admin_url.clone(), external: server.external })
}

/// A fresh database with tenure's schema, and a [`PgStore`] on it.
pub async fn migrated_store() -> Option<(PgDatabase, PgStore)> {
    let db = database().await?;
    let store = db.connect_store().await;
    store.migrate(tenure::clock::UnixTime(1_700_000_000)).await.expect("migrate the test database");
    Some((db, store))
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
    tokio::spawn(conn);
    client
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("the server URL is a postgres:// URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

struct ServerInfo {
    /// A URL of the server's `postgres` database, as a superuser.
    admin_url: String,
    external: bool,
    _watchdog: Option<std::process::Child>,
}

fn server() -> Option<&'static ServerInfo> {
    static SERVER: OnceLock<Option<ServerInfo>> = OnceLock::new();
    SERVER.get_or_init(start_or_find).as_ref()
}

fn start_or_find() -> Option<ServerInfo> {
    if let Ok(url) = std::env::var("TENURE_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Some(ServerInfo { admin_url: url, external: true, _watchdog: None });
    }
    let Some(bin) = newest_bin_dir() else {
        if std::env::var("TENURE_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
            panic!(
                "{}; TENURE_REQUIRE_EXTERNAL=1 forbids skipping (or set TENURE_TEST_DATABASE_URL)",
                SKIP_LINE.trim_start_matches("SKIPPED: ")
            );
        }
        static SKIP: Once = Once::new();
        // Straight to the process's stderr: the harness captures the output
        // of passing tests, and this line must be seen.
        SKIP.call_once(|| {
            let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
        });
        return None;
    };
    Some(start_local(&bin))
}

/// `/usr/lib/postgresql/<newest version>/bin`, when it has initdb.
fn newest_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&"postgres") {
                return None;
            }
            Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
        })
        .expect("running as root, PostgreSQL needs the `postgres` user (the postgresql package creates it)")
}

/// Run as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Checks every half second that the test process (`$1`) is alive; then
/// stops the postmaster it started and deletes the directory (`$2`).
const WATCHDOG: &str = r#"
test_pid=$1; dir=$2; shift 2
"$@" >>"$dir/postgres.log" 2>&1 &
pg=$!
while [ -d "/proc/$test_pid" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.5; done
kill -TERM "$pg" 2>/dev/null
i=0
while kill -0 "$pg" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$pg" 2>/dev/null
wait "$pg" 2>/dev/null
rm -rf "$dir"
"#;

fn start_local(bin: &Path) -> ServerInfo {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let user = root.then(postgres_user);
    let dir = std::env::temp_dir().join(format!("tenure-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
    let (data, sock) = (dir.join("data"), dir.join("sock"));
    std::fs::create_dir_all(&sock).expect("create the PostgreSQL directory");
    if let Some((uid, gid)) = user {
        for path in [&dir, &sock] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("give the directory to postgres");
        }
    }
    let log = dir.join("postgres.log");
    let initdb = as_server_user(&mut Command::new(bin.join("initdb")), user)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
        .stdin(Stdio::null())
        .output()
        .expect("run initdb");
    if !initdb.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        panic!(
            "initdb failed ({}): {}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port");
    let settings = [
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={port}"),
        format!("unix_socket_directories={}", sock.display()),
        // The durability contract (SPEC 6): commits are on disk.
        "fsync=on".to_owned(),
        "synchronous_commit=on".to_owned(),
        "max_connections=100".to_owned(),
        "shared_buffers=32MB".to_owned(),
        "log_min_messages=warning".to_owned(),
    ];
    let mut postgres: Vec<String> =
        vec![bin.join("postgres").display().to_string(), "-D".into(), data.display().to_string()];
    for s in &settings {
        postgres.push("-c".into());
        postgres.push(s.clone());
    }
    // Never waited for: it outlives this process on purpose (see the top).
    let watchdog = as_server_user(&mut Command::new("/bin/sh"), user)
        .arg("-c")
        .arg(WATCHDOG)
        .arg("tenure-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(&dir)
        .args(&postgres)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the PostgreSQL watchdog");

    // Ready when pg_isready says it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if Instant::now() > deadline || !dir.exists() {
            panic!(
                "the test PostgreSQL did not start within 60 s; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        // sleep: bounded polling in a synchronous function (eventually is async)
        std::thread::sleep(Duration::from_millis(100));
    }
    ServerInfo {
        admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        external: false,
        _watchdog: Some(watchdog),
    }
}

/// A PostgreSQL server of its own for one test, which the test may stop and
/// start again on the same data directory and port (a database restart,
/// SPEC 12). Unlike the shared server it is run by `pg_ctl`; a watchdog
/// shell stops it (`pg_ctl stop -m immediate`) and deletes its directory
/// once the test process is gone. `None` without PostgreSQL's binaries
/// (the test then returns early, as with [`database`]).
pub struct RestartablePg {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    settings: Vec<String>,
    _watchdog: std::process::Child,
}

/// Checks every half second that the test process (`$1`) is alive; then
/// stops the server of data directory `$2/data` with `$3` (pg_ctl) and
/// deletes `$2`.
const RESTARTABLE_WATCHDOG: &str = r#"
test_pid=$1; dir=$2; pg_ctl=$3
while [ -d "/proc/$test_pid" ]; do sleep 0.5; done
"$pg_ctl" stop -D "$dir/data" -m immediate -w -t 10 >/dev/null 2>&1
rm -rf "$dir"
"#;

impl RestartablePg {
    /// initdb and start a server of its own (a free loopback port).
    pub fn start() -> Option<RestartablePg> {
        let Some(bin) = newest_bin_dir() else {
            if std::env::var("TENURE_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("{}; TENURE_REQUIRE_EXTERNAL=1 forbids skipping", SKIP_LINE.trim_start_matches("SKIPPED: "));
            }
            let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
            return None;
        };
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let user = root.then(postgres_user);
        let dir = std::env::temp_dir().join(format!(
            "tenure-pg-own-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let (data, sock) = (dir.join("data"), dir.join("sock"));
        std::fs::create_dir_all(&sock).expect("create the PostgreSQL directory");
        if let Some((uid, gid)) = user {
            for path in [&dir, &sock] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("give the directory to postgres");
            }
        }
        let initdb = as_server_user(&mut Command::new(bin.join("initdb")), user)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let watchdog = as_server_user(&mut Command::new("/bin/sh"), user)
            .arg("-c")
            .arg(RESTARTABLE_WATCHDOG)
            .arg("tenure-pg-own-watchdog")
            .arg(std::process::id().to_string())
            .arg(&dir)
            .arg(bin.join("pg_ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the PostgreSQL watchdog");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={port}"),
            format!("unix_socket_directories={}", sock.display()),
            "fsync=on".to_owned(),
            "synchronous_commit=on".to_owned(),
            "max_connections=100".to_owned(),
            "shared_buffers=32MB".to_owned(),
            "log_min_messages=warning".to_owned(),
        ];
        let log = dir.join("postgres.log");
        let server = RestartablePg { bin, dir, data, log, port, user, settings, _watchdog: watchdog };
        server.start_again();
        Some(server)
    }

    /// A URL of database `name` on this server, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// A fresh, empty database on this server; its URL.
    pub async fn database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        connect(&self.url("postgres"))
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        self.url(&name)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_server_user(&mut Command::new(self.bin.join("pg_ctl")), self.user)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stop the server as a restart does (`-m fast`: sessions are ended,
    /// in-flight transactions rolled back), and wait until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
    }

    /// The postmaster and its children (the backends), by process id.
    fn processes(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid");
        let postmaster = pidfile.lines().next().expect("the postmaster's pid").trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").expect("/proc").filter_map(Result::ok) {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid ...: the comm may hold spaces, so read after ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        pids
    }

    /// Freeze the server (SIGSTOP to the postmaster and every backend): its
    /// connections stay open and nothing answers, as when the database's
    /// host vanishes without a word. [`RestartablePg::thaw`] undoes it (so
    /// does dropping).
    pub fn freeze(&self) {
        let status = Command::new("kill").arg("-STOP").args(self.processes()).status().expect("kill -STOP");
        assert!(status.success());
    }

    /// Let a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        let _ = Command::new("kill").arg("-CONT").args(self.processes()).stderr(Stdio::null()).status();
    }

    /// Start it again on the same data directory and port; returns once it
    /// accepts connections.
    pub fn start_again(&self) {
        let options: Vec<String> = self.settings.iter().map(|s| format!("-c {s}")).collect();
        let log = self.log.display().to_string();
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &log, "-o", &options.join(" ")]);
    }
}

impl Drop for RestartablePg {
    fn drop(&mut self) {
        // A frozen server would never act on the stop.
        if self.data.join("postmaster.pid").exists() {
            self.thaw();
        }
        // Stopped now rather than at the watchdog's next look.
        let _ = as_server_user(&mut Command::new(self.bin.join("pg_ctl")), self.user)
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w", "-t", "10"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
