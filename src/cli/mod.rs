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
//! - [`output`]: aligned tables, durations as people write them, times.

pub mod admin;
mod client;
mod output;

/// Why a command failed. Bad arguments exit with status 2 (as clap does),
/// everything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or environment; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The server refused: what was asked, and the server's own words.
    #[error("{during}: {message} ({error}, HTTP {status})")]
    Server { during: String, status: u16, error: String, message: String },
    /// Refused by the command line itself, after asking the server.
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or did not answer as the API does.
    #[error("{during}: {reason}")]
    Transport { during: String, reason: String },
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
