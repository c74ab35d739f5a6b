//! `[console]`: where the web console listens and who may open it.

use crate::api::config::{read_secret, Secret};
use crate::config_reader::Section;
use std::net::SocketAddr;

/// `[console]`; the console is off unless the section is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    /// Required unless `listen` is a loopback address, as for the API: the token a browser
    /// gives once at `/login?token=…` (kept in a cookie) or a client as `Authorization: Bearer`.
    pub bearer_token: Option<Secret>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// Reads `[console]`.
pub fn read_console(mut section: Section<'_>) -> ConsoleConfig {
    let default: SocketAddr = DEFAULT_LISTEN.parse().expect("valid default");
    let listen = match section.string("listen") {
        None => default,
        Some(text) => text.parse().unwrap_or_else(|_| {
            section.error(
                "listen",
                format!("{text:?} is not an IP:port such as {DEFAULT_LISTEN:?}"),
            );
            default
        }),
    };
    let bearer_token = read_secret(&mut section, "bearer_token");
    if bearer_token.is_none() && !section.has("bearer_token") && !listen.ip().is_loopback() {
        section.error(
            "listen",
            format!(
                "{listen} is not a loopback address: set bearer_token to expose the console \
                 beyond this host"
            ),
        );
    }
    section.finish();
    ConsoleConfig {
        listen,
        bearer_token,
    }
}
