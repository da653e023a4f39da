//! `hydra token`: API tokens, on the data directory or through a daemon
//! (`--api`), by one set of command bodies over [`TokenAdmin`].

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::access::{TokenInfo, Tokens};
use crate::output;

const SCOPE_HELP: &str = "\
Scopes: read:PREFIX, write:PREFIX and delete:PREFIX for streams whose id \
starts with PREFIX (* for every stream; reading $all unfiltered needs \
read:*), bucket-read:BUCKET and bucket-write:BUCKET for blocks and objects \
(* for every bucket), and admin for everything, including gc, scavenge, \
reindex, import, peers, buckets and tokens.";

#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token; its secret is printed once, as the last line, and
    /// kept nowhere (the volume stores its hash).
    #[command(after_long_help = SCOPE_HELP)]
    Create {
        name: String,
        /// What the token may do (repeatable; see --help).
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Print JSON (the secret in "secret").
        #[arg(long)]
        json: bool,
    },
    /// List tokens: names, scopes and creation times, never secrets.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: its requests are refused from now on and the
    /// subscriptions it opened end.
    Revoke { name: String },
}

/// Where tokens are managed: the volume itself, or a daemon's API.
pub trait TokenAdmin {
    /// The new token, its secret included.
    fn create(&self, name: &str, scopes: &[String]) -> impl Future<Output = Result<TokenInfo>>;
    fn list(&self) -> impl Future<Output = Result<Vec<TokenInfo>>>;
    fn revoke(&self, name: &str) -> impl Future<Output = Result<()>>;
}

impl TokenAdmin for Tokens {
    async fn create(&self, name: &str, scopes: &[String]) -> Result<TokenInfo> {
        let (token, secret) = Tokens::create(self, name, scopes)?;
        Ok(TokenInfo {
            secret: Some(secret),
            ..token.info()
        })
    }

    async fn list(&self) -> Result<Vec<TokenInfo>> {
        Ok(Tokens::list(self)?.iter().map(|t| t.info()).collect())
    }

    async fn revoke(&self, name: &str) -> Result<()> {
        Ok(Tokens::revoke(self, name)?)
    }
}

impl TokenAdmin for hydra_client::Client {
    async fn create(&self, name: &str, scopes: &[String]) -> Result<TokenInfo> {
        Ok(self.create_token(name, scopes).await?)
    }

    async fn list(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.tokens().await?)
    }

    async fn revoke(&self, name: &str) -> Result<()> {
        Ok(self.revoke_token(name).await?)
    }
}

pub async fn run(admin: &impl TokenAdmin, cmd: TokenCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TokenCmd::Create { name, scopes, json } => {
            let t = admin.create(&name, &scopes).await?;
            if json {
                output::json(&t)?;
            } else {
                eprintln!(
                    "token {} ({}): keep its secret, it is shown only now",
                    t.name,
                    t.scopes.join(" ")
                );
                writeln!(out, "{}", t.secret.unwrap_or_default())?;
            }
        }
        TokenCmd::Ls { json } => {
            let all = admin.list().await?;
            if json {
                output::json(&all)?;
            } else {
                for t in &all {
                    let created =
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(t.created);
                    writeln!(
                        out,
                        "{}\t{}\t{}",
                        t.name,
                        t.scopes.join(" "),
                        httpdate::fmt_http_date(created)
                    )?;
                }
            }
        }
        TokenCmd::Revoke { name } => {
            admin.revoke(&name).await?;
            eprintln!("token {name} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
