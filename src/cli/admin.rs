//! The `tenure admin` commands (SPEC 11) and what each asks of the admin
//! API (SPEC 4, 10). Arguments are checked here, before anything is sent:
//! durations as in SPEC 3 (`45m`, `1d12h`, `off`), passwords only from a
//! file or standard input, never from the command line.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::CliError;
use super::client::{AdminClient, Credentials};
use super::output::{self, Table};
use super::views::{
    client_fields, client_type, explain_table, groups_table, keys_table, preview_table, secret_notice,
    session_override, sessions_table, settings_table, state, user_fields,
};
use crate::clock::UnixTime;
use crate::duration::Secs;
use crate::policy::POLICY_KEYS;
use crate::secret::Secret;

const ADMIN_HELP: &str = "\
Environment:
  TENURE_URL                  the issuer's URL (or --url)
  TENURE_CLIENT_ID            a client with permissions and scope admin (or --client-id)
  TENURE_CLIENT_SECRET        its secret, or TENURE_CLIENT_SECRET_FILE: a file holding it
  TENURE_ALLOW_INSECURE_HTTP  1: allow an http:// URL to a host other than loopback (or --insecure-http)

Examples:
  export TENURE_URL=https://id.example.com TENURE_CLIENT_ID=tenure-cli
  export TENURE_CLIENT_SECRET_FILE=/run/secrets/tenure-cli
  tenure admin settings get
  tenure admin users list --query ali
  tenure admin sessions revoke alice
  tenure admin --output json keys list

Exit status: 0 on success, 1 when the server refused or could not be reached,
2 for bad arguments.";

/// `tenure admin ...`: manage a running issuer over its admin API.
#[derive(Args, Debug)]
#[command(after_help = ADMIN_HELP)]
pub struct AdminArgs {
    /// The issuer's URL, like https://id.example.com.
    #[arg(long, global = true, env = "TENURE_URL", value_name = "URL")]
    url: Option<String>,
    /// The service account's client id (a client with `permissions`).
    #[arg(long, global = true, env = "TENURE_CLIENT_ID", value_name = "ID")]
    client_id: Option<String>,
    /// Send the secret and tokens to an `http://` URL whose host is not
    /// loopback (they cross the network in clear); also
    /// TENURE_ALLOW_INSECURE_HTTP=1.
    #[arg(long, global = true)]
    insecure_http: bool,
    /// `table` for people, `json` for the server's own JSON.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// The session policy: show, change, reset, explain, preview.
    #[command(after_help = "Examples:\n  tenure admin settings get\n  \
        tenure admin settings preview idle_timeout=15m max_lifetime=8h\n  \
        tenure admin settings set idle_timeout=45m max_lifetime=1d12h")]
    Settings {
        #[command(subcommand)]
        action: SettingsAction,
    },
    /// Users: list, create, show, enable/disable, set a password, delete.
    #[command(after_help = "Examples:\n  tenure admin users list --query ali\n  \
        tenure admin users create alice --email alice@example.com --password-file alice.pw\n  \
        tenure admin users disable alice")]
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// A user's sessions: list them, revoke one or all.
    #[command(after_help = "Examples:\n  tenure admin sessions list alice\n  \
        tenure admin sessions revoke alice            # every session of alice\n  \
        tenure admin sessions revoke alice SID        # one session")]
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Clients: list, create, show, rotate a secret, delete.
    #[command(after_help = "Examples:\n  tenure admin clients list\n  \
        tenure admin clients create kubectl --public --redirect-uri http://127.0.0.1:8000/callback \\\n      \
        --grant-type authorization_code --grant-type refresh_token --scope openid --max-lifetime 1h\n  \
        tenure admin clients rotate-secret reports")]
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Signing keys: list, rotate.
    #[command(after_help = "Examples:\n  tenure admin keys list\n  tenure admin keys rotate")]
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The audit log, newest first.
    #[command(after_help = "Examples:\n  tenure admin audit --limit 20\n  \
        tenure admin audit --user alice --kind sign_in\n  \
        tenure admin audit --before 1234      # the page after event 1234")]
    Audit(AuditArgs),
}

#[derive(Subcommand, Debug)]
enum SettingsAction {
    /// Each effective value and where it came from (default, file, env, admin).
    #[command(after_help = "Example:\n  tenure admin settings get")]
    Get,
    /// Set values through the admin API (they win over file and environment).
    #[command(after_help = settings_syntax())]
    Set {
        /// KEY=DURATION pairs, like idle_timeout=45m max_lifetime=1d12h.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Drop every value set through the admin API (back to file and environment).
    #[command(after_help = "Example:\n  tenure admin settings reset")]
    Reset,
    /// The effective limits for one client, user and remember-me choice, and
    /// the rule that decided each.
    #[command(after_help = "Example:\n  tenure admin settings explain --client kubectl --user alice --remember-me")]
    Explain {
        /// The client id.
        #[arg(long, value_name = "ID")]
        client: String,
        /// The user.
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// As if "Remember me" was ticked at sign-in.
        #[arg(long)]
        remember_me: bool,
    },
    /// What `set` with the same values would do to the live sessions;
    /// nothing changes.
    #[command(after_help = settings_syntax())]
    Preview {
        /// KEY=DURATION pairs, as for `set`.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Group policies (SPEC 14): per-group values that tighten the policy
    /// for the group's members.
    #[command(after_help = "Examples:\n  tenure admin settings group list\n  \
        tenure admin settings group preview admins idle_timeout=10m\n  \
        tenure admin settings group set admins idle_timeout=10m max_lifetime=8h\n  \
        tenure admin settings group delete admins")]
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
}

#[derive(Subcommand, Debug)]
enum GroupAction {
    /// Every group with its values and where it comes from (file, admin).
    List,
    /// One group.
    Show { name: String },
    /// Set a group's values (they replace the group's values set before; a
    /// key not given follows the global policy). A value may only tighten.
    #[command(after_help = "Keys: idle_timeout, max_lifetime, access_token_ttl (durations: 600, 10m, 8h), \
        max_sessions (a count).\nExample:\n  tenure admin settings group set admins idle_timeout=10m max_sessions=3")]
    Set {
        name: String,
        /// KEY=VALUE pairs, like idle_timeout=10m max_sessions=3.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// What `set` with the same values (or, with --delete, deleting the
    /// group) would do to the members' live sessions; nothing changes.
    Preview {
        name: String,
        /// Preview deleting the group instead.
        #[arg(long, conflicts_with = "pairs")]
        delete: bool,
        /// KEY=VALUE pairs, as for `set`.
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Drop the values set through the admin API (a config file group
    /// applies again).
    Delete { name: String },
}

/// The help of `settings set` and `settings preview`: the keys of the policy
/// table the admin API takes, wrapped, then those it does not.
fn settings_syntax() -> String {
    let mut keys = String::from("Keys:");
    let mut line = keys.len();
    let settable: Vec<&str> = POLICY_KEYS.iter().filter(|d| d.admin_settable).map(|d| d.name).collect();
    for (i, name) in settable.iter().enumerate() {
        let word = if i + 1 < settable.len() { format!("{name},") } else { (*name).to_owned() };
        if line + 1 + word.len() > 90 {
            keys.push('\n');
            line = 0;
        } else {
            keys.push(' ');
            line += 1;
        }
        line += word.len();
        keys.push_str(&word);
    }
    let fixed: Vec<&str> = POLICY_KEYS.iter().filter(|d| !d.admin_settable).map(|d| d.name).collect();
    match fixed.len() {
        0 => keys.push('.'),
        1 => keys.push_str(&format!(" ({} comes from file or environment).", fixed.join(", "))),
        _ => keys.push_str(&format!(" ({} come from file or environment).", fixed.join(", "))),
    }
    format!(
        "{keys}
Values: durations like 1800, 45m, 12h, 7d, 1d12h; `off` for the idle timeouts;
a whole number for max_sessions (0 = no limit); end_oldest or ask for on_session_limit;
`unset` drops the value set through the admin API for that key.

Examples:
  tenure admin settings preview idle_timeout=15m max_lifetime=8h
  tenure admin settings set idle_timeout=15m max_lifetime=8h
  tenure admin settings set idle_timeout=off
  tenure admin settings set access_token_ttl=unset"
    )
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("password").required(true).args(["password_file", "password_stdin", "password_hash_file"])))]
struct PasswordSource {
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Read an argon2 hash (PHC string, as `tenure hash-secret` prints) from
    /// the first line of this file, for users moved from another system.
    #[arg(long, value_name = "FILE")]
    password_hash_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum UsersAction {
    /// Users sorted by username, 50 a page.
    #[command(
        after_help = "Examples:\n  tenure admin users list\n  tenure admin users list --query example.com --page 2"
    )]
    List {
        /// Only users whose username or email contains this (any case).
        #[arg(long)]
        query: Option<String>,
        /// The page, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Create a user; the password comes from a file or standard input.
    #[command(after_help = "Examples:\n  \
        tenure admin users create alice --email alice@example.com --password-file alice.pw\n  \
        printf '%s\\n' \"$PW\" | tenure admin users create bob --password-stdin --permission users:edit")]
    Create {
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// The display name.
        #[arg(long)]
        name: Option<String>,
        /// A permission (repeat): users:edit, system:administer.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// A group whose session policy applies to the user (repeat).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// One user.
    #[command(after_help = "Example:\n  tenure admin users show alice")]
    Show { username: String },
    /// Disable a user; their sessions are revoked in the same step.
    #[command(after_help = "Example:\n  tenure admin users disable alice")]
    Disable { username: String },
    /// Enable a disabled user.
    #[command(after_help = "Example:\n  tenure admin users enable alice")]
    Enable { username: String },
    /// Set a user's password from a file or standard input; every session
    /// of the user ends in the same step.
    #[command(after_help = "Example:\n  tenure admin users set-password alice --password-file alice.pw")]
    SetPassword {
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Delete a user; their sessions are revoked in the same step.
    #[command(after_help = "Example:\n  tenure admin users delete alice")]
    Delete { username: String },
    /// Set a user's groups (replacing them; none given: in no group). The
    /// groups' policy applies at each session's next check.
    #[command(after_help = "Examples:\n  tenure admin users set-groups alice --group admins --group ops\n  \
        tenure admin users set-groups alice        # in no group")]
    SetGroups {
        username: String,
        /// A group (repeat).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum SessionsAction {
    /// A user's live sessions, newest sign-in first.
    #[command(after_help = "Example:\n  tenure admin sessions list alice")]
    List { username: String },
    /// Revoke one session of a user, or all of them: every token descending
    /// from them stops working.
    #[command(after_help = "Examples:\n  tenure admin sessions revoke alice\n  \
        tenure admin sessions revoke alice 9c1f0e2d...")]
    Revoke {
        username: String,
        /// One session id (from `sessions list`); all sessions without it.
        sid: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ClientsAction {
    /// Every client, from the config file and the admin API.
    #[command(after_help = "Example:\n  tenure admin clients list")]
    List,
    /// Create a client; a confidential one gets a generated secret, shown once.
    #[command(after_help = "Examples:\n  \
        tenure admin clients create kubectl --public --redirect-uri http://127.0.0.1:8000/callback \\\n      \
        --grant-type authorization_code --grant-type refresh_token --scope openid --max-lifetime 1h\n  \
        tenure admin clients create kubelogin --public --grant-type urn:ietf:params:oauth:grant-type:device_code \\\n      \
        --grant-type refresh_token --scope openid --max-lifetime 1h\n  \
        tenure admin clients create reports --grant-type client_credentials --scope orders:read")]
    Create(Box<ClientCreate>),
    /// One client.
    #[command(after_help = "Example:\n  tenure admin clients show kubectl")]
    Show { id: String },
    /// A new secret for a confidential client, shown once; the old one stops working.
    #[command(after_help = "Example:\n  tenure admin clients rotate-secret reports")]
    RotateSecret { id: String },
    /// Delete a client; its sessions' token families are revoked.
    #[command(after_help = "Example:\n  tenure admin clients delete reports")]
    Delete { id: String },
}

#[derive(Args, Debug)]
struct ClientCreate {
    id: String,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    public: bool,
    /// An exact redirect URI (repeat).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// An origin allowed to call /token from a browser (repeat).
    #[arg(long = "web-origin", value_name = "ORIGIN")]
    web_origins: Vec<String>,
    /// authorization_code, refresh_token, client_credentials, or the
    /// token-exchange or device-code URN (repeat).
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// A scope the client may request (repeat).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// A permission its client-credentials tokens carry (repeat).
    #[arg(long = "permission", value_name = "PERMISSION")]
    permissions: Vec<String>,
    /// An audience it may exchange tokens for (repeat).
    #[arg(long = "token-exchange-audience", value_name = "AUDIENCE")]
    token_exchange_audiences: Vec<String>,
    /// Where to send back-channel logout tokens.
    #[arg(long, value_name = "URI")]
    backchannel_logout_uri: Option<String>,
    /// Session override, tighter than the global policy: idle timeout.
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// Session override: maximum lifetime.
    #[arg(long, value_name = "DURATION")]
    max_lifetime: Option<String>,
    /// Session override: access token lifetime.
    #[arg(long, value_name = "DURATION")]
    access_token_ttl: Option<String>,
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Signing keys with their role, state (next, active, retired, expired,
    /// revoked) and age.
    #[command(after_help = "Example:\n  tenure admin keys list")]
    List,
    /// A new key (active at once, or published ahead as `next`); the
    /// previous one stays published while the tokens it signed live.
    #[command(after_help = "Example:\n  tenure admin keys rotate")]
    Rotate,
}

#[derive(Args, Debug)]
struct AuditArgs {
    /// Only events by this user or done to them or their sessions.
    #[arg(long, value_name = "USERNAME")]
    user: Option<String>,
    /// Only events of this kind (sign_in, session_revoked, settings_changed, ...).
    #[arg(long)]
    kind: Option<String>,
    /// At most this many events, 1 to 500.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Only events older than this event id (the `next` of a previous page).
    #[arg(long, value_name = "ID")]
    before: Option<String>,
}

const AUDIT_PAGE_MAX: usize = 500;

/// Run `tenure admin`; `env` holds the process's `TENURE_*` variables (the
/// secret is read from there, never from a flag). Returns the exit status.
pub fn main(args: AdminArgs, env: &BTreeMap<String, String>, now: UnixTime) -> u8 {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Transport { during: "starting".into(), reason: e.to_string() })
        .and_then(|runtime| runtime.block_on(run(args, env, now)));
    match result {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            0
        }
        Err(e) => {
            eprintln!("tenure admin: {e}");
            e.exit_code()
        }
    }
}

/// What `--output` shows: the table for people, the JSON for scripts.
struct Shown {
    table: String,
    json: Option<Value>,
}

async fn run(args: AdminArgs, env: &BTreeMap<String, String>, now: UnixTime) -> Result<String, CliError> {
    // Everything local first: a wrong argument never costs a request.
    let plan = Plan::parse(args.command)?;
    let url = args
        .url
        .ok_or_else(|| CliError::usage("set TENURE_URL (or --url) to the issuer's URL, like https://id.example.com"))?;
    let client_id = args.client_id.ok_or_else(|| {
        CliError::usage("set TENURE_CLIENT_ID (or --client-id) to a client with permissions and scope admin")
    })?;
    let secret = client_secret(env)?;
    let client = AdminClient::new(&url, Credentials { client_id, secret })?;
    if client.is_cleartext_remote() {
        if !(args.insecure_http || allows_insecure_http(env)?) {
            return Err(CliError::usage(format!(
                "TENURE_URL (or --url) {url:?} is http:// to a host that is not loopback: the client secret and \
                 tokens would cross the network in clear, so nothing was sent; use https://, or pass \
                 --insecure-http (or set TENURE_ALLOW_INSECURE_HTTP=1) to send them anyway"
            )));
        }
        eprintln!("tenure admin: warning: {url} is http: the client secret and tokens cross the network in clear");
    }
    let shown = plan.execute(&client, now).await?;
    Ok(match (args.output, shown.json) {
        (Output::Json, Some(value)) => output::json(&value),
        (Output::Json, None) => String::new(),
        (Output::Table, _) => shown.table,
    })
}

/// `TENURE_ALLOW_INSECURE_HTTP`: `1` or `true` allows cleartext to a remote
/// host; `0`, `false` or unset does not; anything else is a usage error.
fn allows_insecure_http(env: &BTreeMap<String, String>) -> Result<bool, CliError> {
    match env.get("TENURE_ALLOW_INSECURE_HTTP").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => {
            Err(CliError::usage(format!("TENURE_ALLOW_INSECURE_HTTP must be 1 or 0 (true or false), not {other:?}")))
        }
    }
}

/// `TENURE_CLIENT_SECRET`, or the first line of `TENURE_CLIENT_SECRET_FILE`.
fn client_secret(env: &BTreeMap<String, String>) -> Result<Secret, CliError> {
    match (env.get("TENURE_CLIENT_SECRET"), env.get("TENURE_CLIENT_SECRET_FILE")) {
        (Some(_), Some(_)) => Err(CliError::usage("set TENURE_CLIENT_SECRET or TENURE_CLIENT_SECRET_FILE, not both")),
        (Some(secret), None) if !secret.is_empty() => Ok(Secret::new(secret.clone())),
        (Some(_), None) => Err(CliError::usage("TENURE_CLIENT_SECRET is empty")),
        (None, Some(path)) => read_first_line(Path::new(path), "TENURE_CLIENT_SECRET_FILE").map(Secret::new),
        (None, None) => Err(CliError::usage(
            "set TENURE_CLIENT_SECRET, or TENURE_CLIENT_SECRET_FILE to a file holding the client secret",
        )),
    }
}

/// The first line of `path`, which must not be empty; `what` names it in errors.
fn read_first_line(path: &Path, what: &str) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("{what}: cannot read {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(CliError::usage(format!("{what}: {} is empty or starts with an empty line", path.display())));
    }
    Ok(line)
}

impl PasswordSource {
    /// The body field and value: `password`, or `password_hash` (the server
    /// checks the hash, its argon2 cost bounds included).
    fn field(&self) -> Result<(&'static str, Secret), CliError> {
        if let Some(path) = &self.password_hash_file {
            return read_first_line(path, "--password-hash-file").map(|h| ("password_hash", Secret::new(h)));
        }
        self.read().map(|p| ("password", p))
    }

    fn read(&self) -> Result<Secret, CliError> {
        if let Some(path) = &self.password_file {
            return read_first_line(path, "--password-file").map(Secret::new);
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("--password-stdin: cannot read standard input: {e}")))?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(CliError::usage("--password-stdin: standard input held no password"));
        }
        Ok(Secret::new(password))
    }
}

/// `KEY=VALUE` pairs as the body of `PUT /admin/settings/session`: durations
/// in seconds, `"off"`, or `null` for `unset`.
fn settings_body(pairs: &[String]) -> Result<Value, CliError> {
    let mut body = Map::new();
    for pair in pairs {
        let Some((raw_key, value)) = pair.split_once('=') else {
            return Err(CliError::usage(format!("{pair:?} is not KEY=VALUE, like idle_timeout=45m")));
        };
        let name = raw_key.trim().trim_start_matches("session.");
        let Some(def) = POLICY_KEYS.iter().find(|d| d.name == name) else {
            let known: Vec<&str> = POLICY_KEYS.iter().map(|d| d.name).collect();
            return Err(CliError::usage(format!("unknown setting {raw_key:?}; known settings: {}", known.join(", "))));
        };
        let value = value.trim();
        let json = match value {
            "unset" => Value::Null,
            "off" if def.accepts_off() => Value::from("off"),
            "off" => {
                let idle: Vec<&str> = POLICY_KEYS.iter().filter(|d| d.accepts_off()).map(|d| d.name).collect();
                return Err(CliError::usage(format!("{name}: `off` is only for {}", idle.join(" and "))));
            }
            _ => def.parse(value).map_err(|e| CliError::usage(format!("{name}: {e}")))?.to_json(),
        };
        if body.insert(name.to_owned(), json).is_some() {
            return Err(CliError::usage(format!("{name} is given more than once")));
        }
    }
    Ok(Value::Object(body))
}

/// `KEY=VALUE` pairs as the body of `PUT
/// /admin/settings/session/groups/{name}`: durations in seconds,
/// `max_sessions` a count.
fn group_body(pairs: &[String]) -> Result<Value, CliError> {
    const KEYS: [&str; 4] = ["idle_timeout", "max_lifetime", "access_token_ttl", "max_sessions"];
    let mut body = Map::new();
    for pair in pairs {
        let Some((raw_key, value)) = pair.split_once('=') else {
            return Err(CliError::usage(format!("{pair:?} is not KEY=VALUE, like idle_timeout=10m")));
        };
        let name = raw_key.trim();
        let value = value.trim();
        let json = match name {
            "max_sessions" => Value::from(value.parse::<u32>().map_err(|_| {
                CliError::usage(format!("max_sessions: {value:?} is not a count (a whole number, at least 1)"))
            })?),
            _ if KEYS.contains(&name) => {
                Value::from(value.parse::<Secs>().map_err(|e| CliError::usage(format!("{name}: {e}")))?.as_secs())
            }
            _ => {
                return Err(CliError::usage(format!("unknown group key {raw_key:?}; known keys: {}", KEYS.join(", "))));
            }
        };
        if body.insert(name.to_owned(), json).is_some() {
            return Err(CliError::usage(format!("{name} is given more than once")));
        }
    }
    Ok(Value::Object(body))
}

/// A client override duration from a flag.
fn override_secs(flag: &str, value: Option<&String>) -> Result<Option<u64>, CliError> {
    value
        .map(|v| v.parse::<Secs>().map(Secs::as_secs).map_err(|e| CliError::usage(format!("--{flag}: {e}"))))
        .transpose()
}

/// A command with its arguments checked, ready to send.
enum Plan {
    SettingsGet,
    SettingsSet(Value),
    SettingsReset,
    SettingsExplain { client: String, user: Option<String>, remember_me: bool },
    SettingsPreview(Value),
    GroupsList,
    GroupShow(String),
    GroupSet { name: String, body: Value },
    GroupPreview { name: String, body: Value },
    GroupDelete(String),
    UsersList { query: Option<String>, page: u32 },
    UsersCreate(Value),
    UsersShow(String),
    UsersPatch { username: String, body: Value, done: &'static str },
    UsersDelete(String),
    SessionsList(String),
    SessionsRevoke { username: String, sid: Option<String> },
    ClientsList,
    ClientsCreate(Value),
    ClientsShow(String),
    ClientsRotateSecret(String),
    ClientsDelete(String),
    KeysList,
    KeysRotate,
    Audit { user: Option<String>, kind: Option<String>, limit: usize, before: Option<String> },
}

impl Plan {
    fn parse(command: AdminCommand) -> Result<Plan, CliError> {
        Ok(match command {
            AdminCommand::Settings { action } => match action {
                SettingsAction::Get => Plan::SettingsGet,
                SettingsAction::Set { pairs } => Plan::SettingsSet(settings_body(&pairs)?),
                SettingsAction::Reset => Plan::SettingsReset,
                SettingsAction::Explain { client, user, remember_me } => {
                    Plan::SettingsExplain { client, user, remember_me }
                }
                SettingsAction::Preview { pairs } => Plan::SettingsPreview(settings_body(&pairs)?),
                SettingsAction::Group { action } => match action {
                    GroupAction::List => Plan::GroupsList,
                    GroupAction::Show { name } => Plan::GroupShow(name),
                    GroupAction::Set { name, pairs } => Plan::GroupSet { name, body: group_body(&pairs)? },
                    GroupAction::Preview { name, delete, pairs } => {
                        let body = if delete { json!({ "delete": true }) } else { group_body(&pairs)? };
                        Plan::GroupPreview { name, body }
                    }
                    GroupAction::Delete { name } => Plan::GroupDelete(name),
                },
            },
            AdminCommand::Users { action } => match action {
                UsersAction::List { query, page } => {
                    if page == 0 {
                        return Err(CliError::usage("--page counts from 1"));
                    }
                    Plan::UsersList { query, page }
                }
                UsersAction::Create { username, email, name, permissions, groups, disabled, password } => {
                    // Only what was given: setting permissions needs
                    // system:administer, a users:edit account may create users.
                    let (field, value) = password.field()?;
                    let mut body = json!({ "username": username, field: value.expose() });
                    if !permissions.is_empty() {
                        body["permissions"] = permissions.into();
                    }
                    if !groups.is_empty() {
                        body["groups"] = groups.into();
                    }
                    if disabled {
                        body["disabled"] = true.into();
                    }
                    if let Some(email) = email {
                        body["email"] = email.into();
                    }
                    if let Some(name) = name {
                        body["name"] = name.into();
                    }
                    Plan::UsersCreate(body)
                }
                UsersAction::Show { username } => Plan::UsersShow(username),
                UsersAction::Disable { username } => Plan::UsersPatch {
                    username,
                    body: json!({ "disabled": true }),
                    done: "disabled; their sessions are revoked",
                },
                UsersAction::Enable { username } => {
                    Plan::UsersPatch { username, body: json!({ "disabled": false }), done: "enabled" }
                }
                UsersAction::SetPassword { username, password } => {
                    let (field, value) = password.field()?;
                    Plan::UsersPatch {
                        body: json!({ field: value.expose() }),
                        username,
                        done: "has a new password; their sessions are revoked",
                    }
                }
                UsersAction::Delete { username } => Plan::UsersDelete(username),
                UsersAction::SetGroups { username, groups } => Plan::UsersPatch {
                    username,
                    body: json!({ "groups": groups }),
                    done: "has new groups; their policy applies at each session's next check",
                },
            },
            AdminCommand::Sessions { action } => match action {
                SessionsAction::List { username } => Plan::SessionsList(username),
                SessionsAction::Revoke { username, sid } => Plan::SessionsRevoke { username, sid },
            },
            AdminCommand::Clients { action } => match action {
                ClientsAction::List => Plan::ClientsList,
                ClientsAction::Create(c) => Plan::ClientsCreate(client_body(*c)?),
                ClientsAction::Show { id } => Plan::ClientsShow(id),
                ClientsAction::RotateSecret { id } => Plan::ClientsRotateSecret(id),
                ClientsAction::Delete { id } => Plan::ClientsDelete(id),
            },
            AdminCommand::Keys { action } => match action {
                KeysAction::List => Plan::KeysList,
                KeysAction::Rotate => Plan::KeysRotate,
            },
            AdminCommand::Audit(a) => {
                if !(1..=AUDIT_PAGE_MAX).contains(&a.limit) {
                    return Err(CliError::usage(format!(
                        "--limit must be from 1 to {AUDIT_PAGE_MAX} (got {})",
                        a.limit
                    )));
                }
                Plan::Audit { user: a.user, kind: a.kind, limit: a.limit, before: a.before }
            }
        })
    }

    async fn execute(self, api: &AdminClient, now: UnixTime) -> Result<Shown, CliError> {
        match self {
            Plan::SettingsGet => {
                let v = api.get(api.url(&["admin", "settings", "session"])).await?;
                Ok(Shown { table: settings_table(&v), json: Some(v) })
            }
            Plan::SettingsSet(body) => {
                let v = send(api, Method::PUT, &["admin", "settings", "session"], Some(&body)).await?;
                Ok(Shown { table: format!("session settings changed\n\n{}", settings_table(&v)), json: Some(v) })
            }
            Plan::SettingsReset => {
                let v = send(api, Method::DELETE, &["admin", "settings", "session"], None).await?;
                let table = format!("values set through the admin API dropped\n\n{}", settings_table(&v));
                Ok(Shown { table, json: Some(v) })
            }
            Plan::SettingsExplain { client, user, remember_me } => {
                let mut url = api.url(&["admin", "settings", "session", "explain"]);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("client_id", &client);
                    if let Some(user) = &user {
                        q.append_pair("username", user);
                    }
                    q.append_pair("remember_me", if remember_me { "true" } else { "false" });
                }
                let v = api.get(url).await?;
                Ok(Shown { table: explain_table(&v), json: Some(v) })
            }
            Plan::SettingsPreview(body) => {
                let v = send(api, Method::POST, &["admin", "settings", "session", "preview"], Some(&body)).await?;
                Ok(Shown { table: preview_table(&v), json: Some(v) })
            }
            Plan::GroupsList => {
                let v = api.get(api.url(&["admin", "settings", "session", "groups"])).await?;
                let groups = v["groups"].as_array().cloned().unwrap_or_default();
                Ok(Shown { table: groups_table(&groups), json: Some(v) })
            }
            Plan::GroupShow(name) => {
                let v = api.get(api.url(&["admin", "settings", "session", "groups", &name])).await?;
                Ok(Shown { table: groups_table(std::slice::from_ref(&v)), json: Some(v) })
            }
            Plan::GroupSet { name, body } => {
                let v = send(api, Method::PUT, &["admin", "settings", "session", "groups", &name], Some(&body)).await?;
                let table = format!("group {name} set\n\n{}", groups_table(std::slice::from_ref(&v)));
                Ok(Shown { table, json: Some(v) })
            }
            Plan::GroupPreview { name, body } => {
                let path = ["admin", "settings", "session", "groups", name.as_str(), "preview"];
                let v = send(api, Method::POST, &path, Some(&body)).await?;
                Ok(Shown { table: preview_table(&v), json: Some(v) })
            }
            Plan::GroupDelete(name) => {
                let v = send(api, Method::DELETE, &["admin", "settings", "session", "groups", &name], None).await?;
                let table = if v.is_object() {
                    format!(
                        "group {name}: the values set through the admin API dropped; the config file's apply\n\n{}",
                        groups_table(std::slice::from_ref(&v))
                    )
                } else {
                    format!("group {name} deleted\n")
                };
                Ok(Shown { table, json: Some(v) })
            }
            Plan::UsersList { query, page } => {
                let mut url = api.url(&["admin", "users"]);
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(query) = &query {
                        q.append_pair("query", query);
                    }
                    q.append_pair("page", &page.to_string());
                }
                let v = api.get(url).await?;
                let mut t = Table::new(&["USERNAME", "NAME", "EMAIL", "PERMISSIONS", "STATE", "SOURCE", "CREATED"]);
                for u in v["users"].as_array().into_iter().flatten() {
                    t.row(vec![
                        output::text(&u["username"]),
                        output::text(&u["name"]),
                        output::text(&u["email"]),
                        output::list(&u["permissions"], ","),
                        state(&u["disabled"]),
                        output::text(&u["source"]),
                        output::text(&u["created_at"]),
                    ]);
                }
                let mut table = if t.is_empty() { "no users\n".to_owned() } else { t.render() };
                if let Some(next) = v["next_page"].as_u64() {
                    table.push_str(&format!("(more: --page {next})\n"));
                }
                Ok(Shown { table, json: Some(v) })
            }
            Plan::UsersCreate(body) => {
                let v = send(api, Method::POST, &["admin", "users"], Some(&body)).await?;
                Ok(Shown {
                    table: format!("created user {}\n\n{}", output::text(&v["username"]), user_fields(&v)),
                    json: Some(v),
                })
            }
            Plan::UsersShow(username) => {
                let v = api.get(api.url(&["admin", "users", &username])).await?;
                Ok(Shown { table: user_fields(&v), json: Some(v) })
            }
            Plan::UsersPatch { username, body, done } => {
                let v = send(api, Method::PATCH, &["admin", "users", &username], Some(&body)).await?;
                Ok(Shown { table: format!("user {username} {done}\n"), json: Some(v) })
            }
            Plan::UsersDelete(username) => {
                api.call(Method::DELETE, api.url(&["admin", "users", &username]), None).await?;
                Ok(Shown { table: format!("deleted user {username}; their sessions are revoked\n"), json: None })
            }
            Plan::SessionsList(username) => {
                let v = api.get(api.url(&["admin", "users", &username, "sessions"])).await?;
                Ok(Shown { table: sessions_table(&v, &username, now), json: Some(v) })
            }
            Plan::SessionsRevoke { username, sid: None } => {
                api.call(Method::DELETE, api.url(&["admin", "users", &username, "sessions"]), None).await?;
                Ok(Shown { table: format!("revoked every session of {username}\n"), json: None })
            }
            Plan::SessionsRevoke { username, sid: Some(sid) } => {
                // The API revokes by sid alone; check the session is this
                // user's, so a pasted sid of someone else is not revoked.
                let listed = api.get(api.url(&["admin", "users", &username, "sessions"])).await?;
                let theirs = listed["sessions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["sid"] == sid.as_str() && s["ended"] != true);
                if !theirs {
                    return Err(CliError::Refused(format!(
                        "{username} has no live session {sid}; nothing was revoked (see `tenure admin sessions list {username}`)"
                    )));
                }
                api.call(Method::DELETE, api.url(&["admin", "sessions", &sid]), None).await?;
                Ok(Shown { table: format!("revoked session {sid} of {username}\n"), json: None })
            }
            Plan::ClientsList => {
                let v = api.get(api.url(&["admin", "clients"])).await?;
                let mut t = Table::new(&["ID", "TYPE", "GRANT TYPES", "SCOPES", "PERMISSIONS", "SESSION", "SOURCE"]);
                for c in v["clients"].as_array().into_iter().flatten() {
                    t.row(vec![
                        output::text(&c["id"]),
                        client_type(c),
                        output::list(&c["grant_types"], ","),
                        output::list(&c["scopes"], ","),
                        output::list(&c["permissions"], ","),
                        session_override(&c["session"]),
                        output::text(&c["source"]),
                    ]);
                }
                let table = if t.is_empty() { "no clients\n".to_owned() } else { t.render() };
                Ok(Shown { table, json: Some(v) })
            }
            Plan::ClientsCreate(body) => {
                let v = send(api, Method::POST, &["admin", "clients"], Some(&body)).await?;
                let mut table =
                    format!("created client {} ({})\n\n{}", output::text(&v["id"]), client_type(&v), client_fields(&v));
                if let Some(secret) = v["client_secret"].as_str() {
                    table.push_str(&secret_notice(&output::text(&v["id"]), secret));
                }
                Ok(Shown { table, json: Some(v) })
            }
            Plan::ClientsShow(id) => {
                let v = api.get(api.url(&["admin", "clients", &id])).await?;
                Ok(Shown { table: client_fields(&v), json: Some(v) })
            }
            Plan::ClientsRotateSecret(id) => {
                let v = send(api, Method::POST, &["admin", "clients", &id, "secret"], None).await?;
                let secret = v["client_secret"].as_str().unwrap_or_default();
                let table =
                    format!("new secret for client {id}; the old one no longer works\n{}", secret_notice(&id, secret));
                Ok(Shown { table, json: Some(v) })
            }
            Plan::ClientsDelete(id) => {
                api.call(Method::DELETE, api.url(&["admin", "clients", &id]), None).await?;
                Ok(Shown { table: format!("deleted client {id}; its token families are revoked\n"), json: None })
            }
            Plan::KeysList => {
                let v = api.get(api.url(&["admin", "keys"])).await?;
                Ok(Shown { table: keys_table(&v, now), json: Some(v) })
            }
            Plan::KeysRotate => {
                let v = send(api, Method::POST, &["admin", "keys", "rotate"], None).await?;
                let table = format!(
                    "new signing keys; a `next` key is published now and signs from the time shown, and the keys \
                     it replaces stay published while the tokens they signed live\n\n{}",
                    keys_table(&v, now)
                );
                Ok(Shown { table, json: Some(v) })
            }
            Plan::Audit { user, kind, limit, before } => audit(api, user, kind, limit, before).await,
        }
    }
}

/// `method` on `segments`, expecting a JSON answer.
async fn send(api: &AdminClient, method: Method, segments: &[&str], body: Option<&Value>) -> Result<Value, CliError> {
    let url = api.url(segments);
    Ok(api.call(method, url, body).await?.unwrap_or(Value::Null))
}

/// `GET /admin/audit`: one page, filtered by the server; `next` continues.
async fn audit(
    api: &AdminClient,
    user: Option<String>,
    kind: Option<String>,
    limit: usize,
    before: Option<String>,
) -> Result<Shown, CliError> {
    let mut url = api.url(&["admin", "audit"]);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("limit", &limit.to_string());
        for (name, value) in [("before", &before), ("user", &user), ("kind", &kind)] {
            if let Some(value) = value {
                q.append_pair(name, value);
            }
        }
    }
    let value = api.get(url).await?;
    let mut t = Table::new(&["ID", "AT", "KIND", "ACTOR", "TARGET", "REASON"]);
    for e in value["events"].as_array().into_iter().flatten() {
        t.row(vec![
            output::text(&e["id"]),
            output::text(&e["at"]),
            output::text(&e["kind"]),
            output::text(&e["actor"]),
            output::text(&e["target"]),
            output::text(&e["reason"]),
        ]);
    }
    let mut table = if t.is_empty() { "no events\n".to_owned() } else { t.render() };
    if let Some(next) = value["next"].as_str() {
        table.push_str(&format!("(older events: --before {next})\n"));
    }
    Ok(Shown { table, json: Some(value) })
}

/// The body of `POST /admin/clients`: only what was given.
fn client_body(c: ClientCreate) -> Result<Value, CliError> {
    let mut body = Map::new();
    body.insert("id".into(), c.id.into());
    body.insert("public".into(), c.public.into());
    let lists = [
        ("redirect_uris", c.redirect_uris),
        ("web_origins", c.web_origins),
        ("grant_types", c.grant_types),
        ("scopes", c.scopes),
        ("permissions", c.permissions),
        ("token_exchange_audiences", c.token_exchange_audiences),
    ];
    for (key, values) in lists {
        if !values.is_empty() {
            body.insert(key.into(), values.into());
        }
    }
    if let Some(uri) = c.backchannel_logout_uri {
        body.insert("backchannel_logout_uri".into(), uri.into());
    }
    let mut session = Map::new();
    for (key, flag, value) in [
        ("idle_timeout", "idle-timeout", c.idle_timeout.as_ref()),
        ("max_lifetime", "max-lifetime", c.max_lifetime.as_ref()),
        ("access_token_ttl", "access-token-ttl", c.access_token_ttl.as_ref()),
    ] {
        if let Some(secs) = override_secs(flag, value)? {
            session.insert(key.into(), secs.into());
        }
    }
    if !session.is_empty() {
        body.insert("session".into(), Value::Object(session));
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[&str]) -> Result<Value, String> {
        settings_body(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).map_err(|e| e.to_string())
    }

    #[test]
    fn every_policy_key_is_a_setting_and_the_help_lists_them() {
        let all: Vec<String> = POLICY_KEYS.iter().map(|d| format!("{}={}", d.name, d.example())).collect();
        let body = settings_body(&all).expect("every key of the policy table");
        assert_eq!(body.as_object().map(|m| m.len()), Some(POLICY_KEYS.len()));
        assert!(settings_syntax().starts_with(
            "Keys: idle_timeout, max_lifetime, remember_me_idle_timeout, remember_me_max_lifetime,
access_token_ttl, refresh_reuse_grace, max_sessions, on_session_limit (max_lifetime_ceiling, admin_floor come from file or environment).
Values: "
        ));
    }

    #[test]
    fn settings_pairs_become_seconds() {
        assert_eq!(
            pairs(&["idle_timeout=45m", "session.max_lifetime=1d12h", "refresh_reuse_grace=0"]),
            Ok(json!({"idle_timeout": 2700, "max_lifetime": 129_600, "refresh_reuse_grace": 0}))
        );
        assert_eq!(
            pairs(&["idle_timeout=off", "access_token_ttl=unset"]),
            Ok(json!({"idle_timeout": "off", "access_token_ttl": null}))
        );
    }

    #[test]
    fn bad_settings_name_the_key_and_the_rule() {
        let e = pairs(&["idle_timeout=45x"]).expect_err("bad unit");
        assert!(e.starts_with("idle_timeout: \"45x\" is not a duration: unknown unit"), "{e}");
        let e = pairs(&["idle_timout=45m"]).expect_err("typo");
        assert!(e.starts_with("unknown setting \"idle_timout\"; known settings: idle_timeout, max_lifetime"), "{e}");
        assert_eq!(pairs(&["idle_timeout"]), Err("\"idle_timeout\" is not KEY=VALUE, like idle_timeout=45m".into()));
        assert_eq!(
            pairs(&["max_lifetime=off"]),
            Err("max_lifetime: `off` is only for idle_timeout and remember_me_idle_timeout".into())
        );
        assert_eq!(pairs(&["max_lifetime=1h", "max_lifetime=2h"]), Err("max_lifetime is given more than once".into()));
    }

    #[test]
    fn client_secrets_come_from_one_variable() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let plain = client_secret(&env(&[("TENURE_CLIENT_SECRET", "s3cret")])).map_err(|e| e.to_string());
        assert_eq!(plain.map(|s| s.expose().to_owned()), Ok("s3cret".to_owned()));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").expect("write");
        let path = file.to_string_lossy().into_owned();
        let read = client_secret(&env(&[("TENURE_CLIENT_SECRET_FILE", &path)])).map_err(|e| e.to_string());
        assert_eq!(read.map(|s| s.expose().to_owned()), Ok("from-file".to_owned()));
        let both = client_secret(&env(&[("TENURE_CLIENT_SECRET", "a"), ("TENURE_CLIENT_SECRET_FILE", &path)]));
        assert!(both.is_err_and(|e| e.to_string().contains("not both")));
        let none = client_secret(&env(&[]));
        assert!(none.is_err_and(|e| e.exit_code() == 2 && e.to_string().contains("TENURE_CLIENT_SECRET")));
    }

    #[test]
    fn client_bodies_hold_only_what_was_given() {
        let c = ClientCreate {
            id: "kubectl".into(),
            public: true,
            redirect_uris: vec!["http://127.0.0.1:8000/callback".into()],
            web_origins: vec![],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into()],
            permissions: vec![],
            token_exchange_audiences: vec![],
            backchannel_logout_uri: None,
            idle_timeout: None,
            max_lifetime: Some("1h".into()),
            access_token_ttl: None,
        };
        assert_eq!(
            client_body(c).map_err(|e| e.to_string()),
            Ok(json!({
                "id": "kubectl",
                "public": true,
                "redirect_uris": ["http://127.0.0.1:8000/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scopes": ["openid"],
                "session": {"max_lifetime": 3600}
            }))
        );
    }
}
