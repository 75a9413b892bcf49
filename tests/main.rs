//! tenure's integration tests: ONE test binary (it links once), modules by
//! area. Most tests start the real `tenure` binary on a free loopback port
//! and speak HTTP to it as clients do; tokens are verified with the
//! `jsonwebtoken` crate, independent of the ring signer tenure uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod abuse;
mod activity;
mod admin_api;
mod authority;
mod authorize;
mod bad_input;
mod cli;
mod client_credentials;
mod console;
mod console_browser;
mod cors;
mod crash;
mod db_restart;
mod device;
mod dpop;
mod end_reasons;
mod exchange;
mod first_run;
mod groups;
mod harden;
mod interop;
mod keys;
mod logout;
mod no_sleeps;
mod openapi;
mod passwords;
mod postgres;
mod replica_keys;
mod replicas;
mod revocation;
mod round_robin;
mod server;
mod session_limit;
mod sessions;
mod sessions_api;
mod spa;
mod ssf;
mod ssf_replicas;
mod store_contract;
mod users;
