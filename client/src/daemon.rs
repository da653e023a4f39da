//! What only a daemon has: its replication, its p2p node and its API
//! tokens. Replication and peer answers are status documents (their
//! schemas are in the daemon's OpenAPI document, `Replication`, `Lag` and
//! `Peers`) read as JSON values: they grow fields as replication does.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Client, Error, json, path_segment};

/// Who a daemon is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its public key (64 hex digits): whom its heads and proofs are
    /// signed by.
    pub public_key: String,
}

/// An API token as the daemon shows it: name, scopes, creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub name: String,
    pub scopes: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
    /// The secret: only in the answer that creates the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Client {
    /// The daemon's peer id and public key.
    pub async fn identity(&self) -> Result<Identity, Error> {
        json(self.send(|h| h.get(self.at("/health"))).await?, "health").await
    }

    /// Replica buckets, their streams and objects: peers, progress, what
    /// is behind, last success and error; p2p counters.
    pub async fn replication(&self) -> Result<Value, Error> {
        let r = self.send(|h| h.get(self.at("/replication"))).await?;
        json(r, "replication").await
    }

    /// How far each replica bucket is behind its best peer now, and
    /// whether everything is caught up (`caught_up`).
    pub async fn replication_lag(&self) -> Result<Value, Error> {
        let r = self.send(|h| h.get(self.at("/replication/lag"))).await?;
        json(r, "replication lag").await
    }

    /// The daemon's p2p node (`p2p`, `listening`) and its peers now.
    pub async fn peers(&self) -> Result<Value, Error> {
        json(self.send(|h| h.get(self.at("/peers"))).await?, "peers").await
    }

    /// Connects the daemon to the peer at `addr` (a multiaddr ending in
    /// `/p2p/PEER_ID`); the peer's id.
    pub async fn connect(&self, addr: &str) -> Result<String, Error> {
        #[derive(Deserialize)]
        struct Connected {
            peer_id: String,
        }
        let r = self
            .send(|h| h.post(self.at("/peers")).json(&json!({ "addr": addr })))
            .await?;
        Ok(json::<Connected>(r, "peers").await?.peer_id)
    }

    /// Every token (never their secrets).
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        json(self.send(|h| h.get(self.at("/tokens"))).await?, "tokens").await
    }

    /// A new token with `scopes`; the answer holds its secret, which
    /// nothing keeps.
    pub async fn create_token(&self, name: &str, scopes: &[String]) -> Result<TokenInfo, Error> {
        let request = self
            .http
            .post(self.at("/tokens"))
            .json(&json!({ "name": name, "scopes": scopes }));
        json(self.send_once(request).await?, "token").await
    }

    /// Revokes a token: its requests are refused and its subscriptions end.
    pub async fn revoke_token(&self, name: &str) -> Result<(), Error> {
        let path = format!("/tokens/{}", path_segment(name));
        self.send_once(self.http.delete(self.at(&path))).await?;
        Ok(())
    }
}
