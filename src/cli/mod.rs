//! `tenure admin ...` (SPEC 11): the command line over the admin API.
//!
//! A client of a running issuer, not of its store: it needs no server
//! configuration. It signs in as a service account (a client with
//! `permissions`, client credentials, scope `admin`) at the token endpoint
//! that discovery advertises, then calls `/admin/...` (SPEC 4, 10).
//!
//! - [`admin`]: the commands (clap) and what each one asks of the server;
//! - [`client`]: the one HTTP client, the token, the `{"error","message"}`
//!   answers turned into [`CliError`];
//! - [`output`]: aligned tables, durations as people write them, times;
//! - [`views`]: each API answer as a table.

pub mod admin;
mod client;
mod output;
mod views;

/// Why a command failed. Bad arguments exit with status 2 (as clap does),
/// everything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or environment; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The server refused: what was asked, and the server's own words
    /// (`error` is empty when the answer carried no error code).
    #[error("{during}: {message} ({})", code_and_status(error, *status))]
    Server { during: String, status: u16, error: String, message: String },
    /// Refused by the command line itself, after asking the server.
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or did not answer as the API does.
    #[error("{during}: {reason}")]
    Transport { during: String, reason: String },
}

/// `invalid_client, HTTP 401`, or `HTTP 502` without an error code.
fn code_and_status(error: &str, status: u16) -> String {
    if error.is_empty() { format!("HTTP {status}") } else { format!("{error}, HTTP {status}") }
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Server { .. } | CliError::Refused(_) | CliError::Transport { .. } => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_server_said_them() {
        let e = CliError::Server {
            during: "GET /admin/users/bob".into(),
            status: 404,
            error: "not_found".into(),
            message: "no user named \"bob\"".into(),
        };
        assert_eq!(e.to_string(), "GET /admin/users/bob: no user named \"bob\" (not_found, HTTP 404)");
        assert_eq!(e.exit_code(), 1);
        let e = CliError::Server { during: "GET /x".into(), status: 502, error: String::new(), message: "m".into() };
        assert_eq!(e.to_string(), "GET /x: m (HTTP 502)");
        assert_eq!(CliError::usage("bad").exit_code(), 2);
    }
}
