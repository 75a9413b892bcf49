//! The PostgreSQL connection string, parsed once (SPEC 12, `database_url`).

use std::fmt;

/// A PostgreSQL connection string (`postgres://user:password@host:port/db?sslmode=require`
/// or `host=... user=...`), parsed once. It may hold a password: `Debug`
/// and `Display` print [`DatabaseUrl::redacted`], never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    parsed: Box<tokio_postgres::Config>,
}

impl DatabaseUrl {
    /// Parse `raw`; the error names what is wrong, never the password.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty; give a URL like postgres://tenure@db.example:5432/tenure?sslmode=require".into());
        }
        if let Some(mode) = sslmode_of(raw)
            && !matches!(mode.as_str(), "disable" | "prefer" | "require")
        {
            return Err(format!(
                "sslmode={mode} is not supported: use sslmode=require (tenure then verifies the server's \
                 certificate and host name against the system's trusted roots, like verify-full) or sslmode=disable"
            ));
        }
        let parsed: tokio_postgres::Config = raw.parse().map_err(|e: tokio_postgres::Error| {
            // The parser's own words ("invalid value for option `port`"); it
            // never repeats the input.
            match std::error::Error::source(&e) {
                Some(cause) => format!("is not a PostgreSQL connection string: {cause}"),
                None => "is not a PostgreSQL connection string (postgres://user:password@host:port/dbname)".into(),
            }
        })?;
        if parsed.get_hosts().is_empty() {
            return Err("names no host: give one, like postgres://tenure@db.example:5432/tenure".into());
        }
        Ok(DatabaseUrl { parsed: Box::new(parsed) })
    }

    /// The parsed connection settings (password included: never log them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.parsed
    }

    /// Whether the URL asks for TLS (`sslmode=require`).
    pub fn requires_tls(&self) -> bool {
        self.parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require
    }

    /// `user@host:port/dbname`, for messages and logs: no password.
    pub fn redacted(&self) -> String {
        let c = &self.parsed;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                let port = c.get_ports().get(i).or_else(|| c.get_ports().first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{user}{}/{}", hosts.join(","), c.get_dbname().or(c.get_user()).unwrap_or(""))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The `sslmode` a connection string names, in either form.
fn sslmode_of(raw: &str) -> Option<String> {
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let url = url::Url::parse(raw).ok()?;
        url.query_pairs().find(|(k, _)| k == "sslmode").map(|(_, v)| v.into_owned())
    } else {
        raw.split_whitespace().find_map(|kv| kv.strip_prefix("sslmode=")).map(|v| v.trim_matches('\'').to_owned())
    }
}
