//! `NATS_URL`: one server URL or several separated by commas, each of the form
//! `nats://[user:password@ | token@]host:port`. async-nats reads the host and port of each
//! but ignores the credentials written in it, so [`NatsUrl::options`] turns them into
//! connect options; and [`NatsUrl`]'s `Display` never shows a password or token, so the
//! URL can go into errors and logs.

use std::fmt;

use async_nats::ConnectOptions;
use secrecy::{ExposeSecret as _, SecretString};

use crate::config::ConfigError;

/// How the URL authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    UserPassword {
        user: String,
        password: SecretString,
    },
    Token(SecretString),
}

/// A parsed `NATS_URL`.
#[derive(Debug, Clone)]
pub struct NatsUrl {
    /// Each server, as given (async-nats parses them; the credentials in them are ignored).
    servers: Vec<String>,
    /// Each server with its credentials masked, for messages.
    shown: Vec<String>,
    auth: Auth,
}

impl NatsUrl {
    /// Parses `url`, read from the variable `name` (named in errors, which never carry a
    /// credential). Every server that carries credentials must carry the same ones.
    pub fn parse(name: &str, url: &str) -> Result<Self, ConfigError> {
        let mut servers = Vec::new();
        let mut shown = Vec::new();
        let mut auth: Option<(Auth, String)> = None;
        for (i, server) in url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            let (scheme, rest) = match server.split_once("://") {
                Some((scheme, rest)) => (Some(scheme), rest),
                None => (None, server),
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, authority),
            };
            if host.is_empty() {
                return Err(ConfigError::invalid(
                    name,
                    format!("server {} has no host", i + 1),
                ));
            }
            let prefix = scheme.map(|s| format!("{s}://")).unwrap_or_default();
            let Some(userinfo) = userinfo else {
                shown.push(server.to_owned());
                servers.push(server.to_owned());
                continue;
            };
            let decode = |part: &str, what: &str| {
                percent_decode(part).ok_or_else(|| {
                    ConfigError::invalid(
                        name,
                        format!(
                            "the {what} of server {} is not valid percent-encoded UTF-8",
                            i + 1
                        ),
                    )
                })
            };
            let (this, masked) = match userinfo.split_once(':') {
                Some((user, password)) => {
                    let user = decode(user, "user")?;
                    if user.is_empty() {
                        return Err(ConfigError::invalid(
                            name,
                            format!("server {} has a password but no user", i + 1),
                        ));
                    }
                    let password = decode(password, "password")?;
                    let masked = format!("{user}:***");
                    (
                        Auth::UserPassword {
                            user,
                            password: password.into(),
                        },
                        masked,
                    )
                }
                None => {
                    let token = decode(userinfo, "token")?;
                    if token.is_empty() {
                        return Err(ConfigError::invalid(
                            name,
                            format!("server {} has an empty user or token before @", i + 1),
                        ));
                    }
                    (Auth::Token(token.into()), "***".to_owned())
                }
            };
            match &auth {
                None => auth = Some((this, userinfo.to_owned())),
                Some((_, first)) if first == userinfo => {}
                Some(_) => {
                    return Err(ConfigError::invalid(
                        name,
                        "the servers carry different credentials (a client logs in once, as one user)",
                    ));
                }
            }
            shown.push(format!("{prefix}{masked}@{host}{tail}"));
            servers.push(format!("{prefix}{host}{tail}"));
        }
        if servers.is_empty() {
            return Err(ConfigError::invalid(name, "no server URL in it"));
        }
        Ok(Self {
            servers,
            shown,
            auth: auth.map_or(Auth::None, |(auth, _)| auth),
        })
    }

    /// The servers, without their credentials.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Connect options carrying the URL's credentials, named `client_name` on the server.
    pub fn options(&self, client_name: impl Into<String>) -> ConnectOptions {
        let options = match &self.auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword { user, password } => ConnectOptions::with_user_and_password(
                user.clone(),
                password.expose_secret().to_owned(),
            ),
            Auth::Token(token) => ConnectOptions::with_token(token.expose_secret().to_owned()),
        };
        options.name(client_name.into())
    }

    /// Connects with [`NatsUrl::options`] to any of the servers.
    pub async fn connect(
        &self,
        client_name: impl Into<String>,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        self.options(client_name).connect(self.servers()).await
    }
}

/// The servers, comma-separated, with any password or token shown as `***`.
impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown.join(","))
    }
}

/// `%XX` sequences decoded; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> NatsUrl {
        NatsUrl::parse("NATS_URL", url).expect("valid")
    }

    #[test]
    fn plain_servers_pass_through() {
        let u = parse("nats://a:4222, nats://b:4223,,nats://c:4224 ");
        assert_eq!(
            u.servers(),
            ["nats://a:4222", "nats://b:4223", "nats://c:4224"]
        );
        assert!(matches!(u.auth, Auth::None));
        assert_eq!(u.to_string(), "nats://a:4222,nats://b:4223,nats://c:4224");
    }

    #[test]
    fn user_and_password_are_taken_out_and_masked() {
        let u = parse(
            "nats://projector-shopify:s%40cret%3Ax@nats-0:4222,nats://projector-shopify:s%40cret%3Ax@nats-1:4222",
        );
        assert_eq!(u.servers(), ["nats://nats-0:4222", "nats://nats-1:4222"]);
        match &u.auth {
            Auth::UserPassword { user, password } => {
                assert_eq!(user, "projector-shopify");
                assert_eq!(password.expose_secret(), "s@cret:x");
            }
            other => panic!("expected a user and password, got {other:?}"),
        }
        let shown = u.to_string();
        assert_eq!(
            shown,
            "nats://projector-shopify:***@nats-0:4222,nats://projector-shopify:***@nats-1:4222"
        );
        assert!(!shown.contains("s@cret") && !shown.contains("s%40cret"));
        assert!(
            !format!("{u:?}").contains("s@cret"),
            "Debug hides it too: {u:?}"
        );
    }

    #[test]
    fn a_token_alone_is_a_token() {
        let u = parse("tls://t0k3n@nats:4222");
        assert_eq!(u.servers(), ["tls://nats:4222"]);
        assert!(matches!(&u.auth, Auth::Token(t) if t.expose_secret() == "t0k3n"));
        assert_eq!(u.to_string(), "tls://***@nats:4222");
        // Credentials on some servers only: those are the ones used.
        let u = parse("nats://u:p@a:4222,nats://b:4222");
        assert_eq!(u.servers(), ["nats://a:4222", "nats://b:4222"]);
        assert!(matches!(&u.auth, Auth::UserPassword { user, .. } if user == "u"));
    }

    #[test]
    fn bad_urls_name_the_problem_never_the_secret() {
        for (url, says) in [
            ("", "no server URL"),
            (" , ", "no server URL"),
            (
                "nats://u:p@a:4222,nats://v:q@b:4222",
                "different credentials",
            ),
            ("nats://:secret@a:4222", "password but no user"),
            ("nats://@a:4222", "empty user or token"),
            (
                "nats://u:%zzsecret@a:4222",
                "password of server 1 is not valid",
            ),
            ("nats://u:p@", "server 1 has no host"),
        ] {
            let err = NatsUrl::parse("NATS_URL", url).expect_err(url).to_string();
            assert!(err.contains("NATS_URL"), "{err}");
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
