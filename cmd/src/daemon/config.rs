//! The daemon's YAML configuration.
//!
//! ```yaml
//! volumes:
//!   - id: main
//!     backend: redb          # redb | lmdb | mem
//!     path: ./hydra-data
//!     durability: sync       # sync | async | none
//! eventlog:
//!   volume: main
//!   streams:                 # which bucket a new stream goes to
//!     - prefix: "patient-"
//!       bucket: photos
//! buckets:
//!   - id: photos
//!     volume: main
//!     compress: zstd:3
//!     encrypt: true
//!     key_file: photos.key
//! api:
//!   http: 127.0.0.1:8080
//! log:
//!   level: info
//! ```
//!
//! Unknown keys and bad values are refused with the key and the line
//! (serde-saphyr's locations), and [`Config::validate`] checks what the
//! types cannot (references between sections, addresses, key files), so
//! the daemon never starts half-configured.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use hydra_bucket::BucketName;
use hydra_eventlog::DurabilityMode;
use hydra_volume::Backend;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub volumes: Vec<VolumeConfig>,
    #[serde(default)]
    pub eventlog: EventLogConfig,
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub p2p: P2pConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    pub id: String,
    #[serde(default = "default_backend")]
    pub backend: String,
    pub path: PathBuf,
    #[serde(default = "default_durability")]
    pub durability: String,
    /// MiB of pages redb keeps in memory (default 1024, redb's own): most
    /// of a busy daemon's resident memory. LMDB leaves caching to the
    /// kernel and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_mb: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLogConfig {
    /// The volume that holds the event log (default: the first).
    #[serde(default)]
    pub volume: Option<String>,
    /// Which bucket a new stream goes to, by stream id prefix (the
    /// longest match wins), when its first append names none; streams
    /// that match no prefix go to `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamPlacement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPlacement {
    pub prefix: String,
    pub bucket: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub id: String,
    /// Volume id (default: the first).
    #[serde(default)]
    pub volume: Option<String>,
    /// `zstd` or `zstd:LEVEL`, applied when the bucket is created.
    #[serde(default)]
    pub compress: Option<String>,
    #[serde(default)]
    pub encrypt: bool,
    /// The bucket's key (32 raw bytes or 64 hex digits); required when
    /// `encrypt` is true, created if absent. For a replica, the writer's
    /// key, to read it; without one the replica is blind.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Serve this bucket, its objects and its streams, over libp2p to
    /// the peers in `p2p.allow` (no bucket is served unless it says so).
    #[serde(default)]
    pub serve: bool,
    /// Serve it to any peer that asks, allowed or not.
    #[serde(default)]
    pub public: bool,
    /// Make this bucket a replica of a writer's bucket of the same name:
    /// its objects and its streams.
    #[serde(default)]
    pub replicate: Option<ReplicateConfig>,
}

/// A bucket replica: where to fetch from, whose manifests and stream
/// heads to accept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateConfig {
    /// Peers that serve the bucket (the writer or other replicas), each a
    /// multiaddr ending in /p2p/<peer id>; asked best-scored first.
    pub from: Vec<String>,
    /// The writers whose signed manifests and stream heads this replica
    /// accepts: peer ids (12D3KooW...) or public keys (64 hex digits).
    pub writers: Vec<String>,
    /// Wait after a failed round before asking again.
    #[serde(default = "default_retry")]
    pub retry_ms: u64,
}

impl ReplicateConfig {
    /// Parses `BUCKET=WRITER@MULTIADDR[,MULTIADDR...]`, the `--replicate`
    /// flag's form: the bucket and its replica settings.
    pub fn from_flag(s: &str) -> Result<(String, ReplicateConfig)> {
        let parsed = s.split_once('=').and_then(|(bucket, rest)| {
            let (writer, peers) = rest.split_once('@')?;
            Some((bucket, writer, peers))
        });
        let Some((bucket, writer, peers)) = parsed else {
            bail!("--replicate {s:?}: expected BUCKET=WRITER@MULTIADDR[,MULTIADDR...]");
        };
        Ok((
            bucket.to_owned(),
            ReplicateConfig {
                from: peers.split(',').map(str::to_owned).collect(),
                writers: vec![writer.to_owned()],
                retry_ms: default_retry(),
            },
        ))
    }

    pub fn to_follow(&self, bucket: &str) -> Result<hydra_net::BucketFollow> {
        if self.from.is_empty() {
            bail!("from: at least one peer is needed");
        }
        if self.writers.is_empty() {
            bail!("writers: at least one writer is needed");
        }
        if self.retry_ms == 0 {
            bail!("retry_ms: must be at least 1");
        }
        Ok(hydra_net::BucketFollow {
            bucket: bucket.parse()?,
            from: self
                .from
                .iter()
                .map(|a| parse_peer_addr(a))
                .collect::<Result<_>>()
                .context("from")?,
            writers: self
                .writers
                .iter()
                .map(|w| parse_writer(w))
                .collect::<Result<_>>()
                .context("writers")?,
            retry: std::time::Duration::from_millis(self.retry_ms),
        })
    }
}

/// A peer's multiaddr, which must name its peer id.
fn parse_peer_addr(a: &str) -> Result<hydra_net::Multiaddr> {
    let addr: hydra_net::Multiaddr = a
        .parse()
        .map_err(|e| anyhow::anyhow!("{a:?} is not a multiaddr: {e}"))?;
    if !matches!(
        addr.iter().last(),
        Some(hydra_net::multiaddr::Protocol::P2p(_))
    ) {
        bail!("{a:?} does not end in /p2p/<peer id>: a follower must know whom it dials");
    }
    Ok(addr)
}

/// A writer as a public key (64 hex digits) or a peer id (12D3KooW...).
pub fn parse_writer(w: &str) -> Result<[u8; 32]> {
    if w.len() == 64 {
        return crate::cli::stream::parse_key(w);
    }
    w.parse::<hydra_volume::PeerId>()
        .ok()
        .and_then(|p| hydra_volume::public_key_of(&p))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "writer {w:?}: a writer is its public key (64 hex digits) or its ed25519 peer id (12D3KooW...)"
            )
        })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// HTTP listen address; loopback by default.
    #[serde(default = "default_http")]
    pub http: Option<String>,
    /// gRPC listen address; off unless set.
    #[serde(default)]
    pub grpc: Option<String>,
    /// RESP3 (Redis protocol) listen address; off unless set.
    #[serde(default)]
    pub resp: Option<String>,
    /// `tokens` (the default): once a token exists (`hydra token
    /// create`), every API requires one, and an API on a non-loopback
    /// address requires one from the start. `none`: no API asks for a
    /// token, wherever it listens (unsafe beyond loopback).
    #[serde(default, skip_serializing_if = "is_default")]
    pub auth: AuthMode,
    /// `token` (the default): `/metrics` needs a token (any scope) when
    /// tokens are required; `open`: it never does.
    #[serde(default, skip_serializing_if = "is_default")]
    pub metrics: MetricsAccess,
    /// Serve HTTP, gRPC and RESP3 over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            http: default_http(),
            grpc: None,
            resp: None,
            auth: AuthMode::default(),
            metrics: MetricsAccess::default(),
            tls: None,
        }
    }
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Tokens,
    None,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    #[default]
    Token,
    Open,
}

/// PEM files for TLS (rustls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

impl ApiConfig {
    /// Each API's name and listen address, for those that are on.
    pub fn addresses(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("api.http", &self.http),
            ("api.grpc", &self.grpc),
            ("api.resp", &self.resp),
        ]
        .into_iter()
        .filter_map(|(n, a)| a.as_deref().map(|a| (n, a)))
    }

    /// The first API that listens beyond loopback, if any.
    pub fn public_address(&self) -> Option<(&'static str, &str)> {
        self.addresses()
            .find(|(_, a)| a.parse::<SocketAddr>().is_ok_and(|a| !a.ip().is_loopback()))
    }
}

/// Peer-to-peer replication over libp2p (see `hydra-net`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to serve the buckets marked `serve` or `public` (their
    /// objects and streams) on, e.g. `/ip4/0.0.0.0/tcp/4001`. Empty: only
    /// dial out (to replicate).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Peers to connect to at start (multiaddrs ending in /p2p/<peer id>).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Find peers on the local network by mDNS, so that `peers` and
    /// `replicate.from` can name a peer by `/p2p/<peer id>` alone.
    #[serde(default)]
    pub mdns: bool,
    /// Peer ids that may read the buckets marked `serve`. Empty: every
    /// peer that can connect (then bind `listen` to a private network).
    /// Buckets marked `public` go to anyone.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Gone: streams replicate with their bucket (`buckets[].replicate`).
    /// Kept only to refuse an old config with a message saying so.
    #[serde(default, skip_serializing)]
    pub follow: Option<serde::de::IgnoredAny>,
}

/// Why an old config's `p2p.follow` (or the `--follow` flag) is refused.
pub const FOLLOW_GONE: &str = "streams replicate with their bucket now: replace each entry with buckets: [{id: BUCKET, replicate: {from: PEERS, writers: [WRITER]}}] (streams appended without --bucket are in bucket `default`), and mark the writer's buckets serve: true";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// trace, debug, info, warn or error (RUST_LOG overrides it).
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body for events, blocks and settings (objects
    /// stream and have no limit).
    #[serde(default = "default_body")]
    pub body_bytes: usize,
    /// Longest a read may take before a 503 (not streaming reads,
    /// subscriptions or uploads); changes answer once committed.
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: default_body(),
            request_timeout_secs: default_timeout(),
        }
    }
}

fn default_backend() -> String {
    "redb".into()
}
fn default_durability() -> String {
    "sync".into()
}
fn default_http() -> Option<String> {
    Some("127.0.0.1:8080".into())
}
fn default_level() -> String {
    "info".into()
}
fn default_body() -> usize {
    64 << 20
}
fn default_timeout() -> u64 {
    30
}
fn default_retry() -> u64 {
    1000
}

/// The configuration with no file: one redb volume in `data`.
impl Config {
    pub fn embedded(data: PathBuf) -> Config {
        Config {
            volumes: vec![VolumeConfig {
                id: "main".into(),
                backend: default_backend(),
                path: data,
                durability: default_durability(),
                cache_mb: None,
            }],
            eventlog: EventLogConfig::default(),
            buckets: Vec::new(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            limits: Limits::default(),
            p2p: P2pConfig::default(),
        }
    }

    /// Reads a YAML file, refusing unknown keys and bad values.
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(c)
    }

    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Checks what types cannot: values, references, addresses.
    pub fn validate(&self) -> Result<()> {
        if self.volumes.is_empty() {
            bail!("volumes: at least one volume is needed");
        }
        let mut ids = std::collections::HashSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            if !ids.insert(v.id.as_str()) {
                bail!("volumes[{i}].id: {:?} is used twice", v.id);
            }
            v.backend
                .parse::<Backend>()
                .map_err(|e| anyhow::anyhow!("volumes[{i}].backend: {e}"))?;
            v.durability
                .parse::<DurabilityMode>()
                .map_err(|e| anyhow::anyhow!("volumes[{i}].durability: {e}"))?;
        }
        if let Some(v) = &self.eventlog.volume
            && !ids.contains(v.as_str())
        {
            bail!("eventlog.volume: no volume has id {v:?}");
        }
        let mut names = std::collections::HashSet::new();
        for (i, b) in self.buckets.iter().enumerate() {
            b.id.parse::<BucketName>()
                .map_err(|e| anyhow::anyhow!("buckets[{i}].id: {e}"))?;
            if !names.insert(b.id.as_str()) {
                bail!("buckets[{i}].id: {:?} is used twice", b.id);
            }
            if let Some(v) = &b.volume
                && !ids.contains(v.as_str())
            {
                bail!("buckets[{i}].volume: no volume has id {v:?}");
            }
            if let Some(c) = &b.compress {
                crate::cli::parse_compress(c)
                    .map_err(|e| anyhow::anyhow!("buckets[{i}].compress: {e}"))?;
            }
            if let Some(r) = &b.replicate {
                let volume = b.volume.as_deref().unwrap_or(&self.volumes[0].id);
                if volume != self.eventlog_volume_id() {
                    bail!(
                        "buckets[{i}].volume: a replica bucket brings its streams too, which live on the event log's volume {}",
                        self.eventlog_volume_id()
                    );
                }
                if b.compress.is_some() || b.encrypt {
                    bail!(
                        "buckets[{i}]: a replica stores its writer's blocks as they are: compress and encrypt come from the writer (give key_file to read an encrypted one)"
                    );
                }
                if let Some(k) = &b.key_file
                    && !k.exists()
                {
                    bail!(
                        "buckets[{i}].key_file: {} does not exist (a replica reads with its writer's key)",
                        k.display()
                    );
                }
                r.to_follow(&b.id)
                    .map_err(|e| anyhow::anyhow!("buckets[{i}].replicate.{e:#}"))?;
            } else if b.encrypt && b.key_file.is_none() {
                bail!("buckets[{i}].key_file: an encrypted bucket needs a key file");
            }
        }
        let log_volume = self.eventlog_volume_id();
        for (i, p) in self.eventlog.streams.iter().enumerate() {
            p.bucket
                .parse::<BucketName>()
                .map_err(|e| anyhow::anyhow!("eventlog.streams[{i}].bucket: {e}"))?;
            if let Some(b) = self.buckets.iter().find(|b| b.id == p.bucket) {
                let volume = b
                    .volume
                    .clone()
                    .unwrap_or_else(|| self.volumes[0].id.clone());
                if volume != log_volume {
                    bail!(
                        "eventlog.streams[{i}].bucket: bucket {} is on volume {volume}, but streams live on the event log's volume {log_volume}",
                        p.bucket
                    );
                }
            }
        }
        for (name, a) in self.api.addresses() {
            a.parse::<SocketAddr>()
                .map_err(|e| anyhow::anyhow!("{name}: {a:?} is not an address: {e}"))?;
        }
        if let Some(t) = &self.api.tls {
            for (name, f) in [
                ("cert", Some(&t.cert)),
                ("key", Some(&t.key)),
                ("client_ca", t.client_ca.as_ref()),
            ] {
                if let Some(f) = f
                    && !f.exists()
                {
                    bail!("api.tls.{name}: {} does not exist", f.display());
                }
            }
        }
        for (i, a) in self.p2p.listen.iter().enumerate() {
            a.parse::<hydra_net::Multiaddr>()
                .map_err(|e| anyhow::anyhow!("p2p.listen[{i}]: {a:?} is not a multiaddr: {e}"))?;
        }
        for (i, p) in self.p2p.allow.iter().enumerate() {
            p.parse::<hydra_volume::PeerId>()
                .map_err(|e| anyhow::anyhow!("p2p.allow[{i}]: {p:?} is not a peer id: {e}"))?;
        }
        for (i, a) in self.p2p.peers.iter().enumerate() {
            parse_peer_addr(a).map_err(|e| anyhow::anyhow!("p2p.peers[{i}]: {e}"))?;
        }
        if self.p2p.follow.is_some() {
            bail!("p2p.follow: {FOLLOW_GONE}");
        }
        if self.log.level.parse::<tracing::Level>().is_err() {
            bail!(
                "log.level: {:?} is not trace, debug, info, warn or error",
                self.log.level
            );
        }
        Ok(())
    }

    /// The entry of bucket `id`, added (with defaults) if the config
    /// does not list it: for the flags that set one thing of a bucket.
    pub fn bucket_entry(&mut self, id: &str) -> &mut BucketConfig {
        let i = match self.buckets.iter().position(|b| b.id == id) {
            Some(i) => i,
            None => {
                self.buckets.push(BucketConfig {
                    id: id.to_owned(),
                    volume: None,
                    compress: None,
                    encrypt: false,
                    key_file: None,
                    serve: false,
                    public: false,
                    replicate: None,
                });
                self.buckets.len() - 1
            }
        };
        &mut self.buckets[i]
    }

    pub fn eventlog_volume_id(&self) -> String {
        self.eventlog_volume().id.clone()
    }

    pub fn eventlog_volume(&self) -> &VolumeConfig {
        match &self.eventlog.volume {
            Some(id) => self
                .volumes
                .iter()
                .find(|v| &v.id == id)
                .expect("validated"),
            None => &self.volumes[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let c = Config::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/hydra.yaml"
        )))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.api.http.as_deref(), Some("127.0.0.1:8080"));
        let again = Config::parse(&c.to_yaml().unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_line() {
        let e = Config::parse("volumes:\n  - id: a\n    path: x\n    colour: red\n").unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("colour"), "{msg}");
        assert!(msg.contains("line 4") || msg.contains("4:"), "{msg}");
        let c = Config::parse("volumes:\n  - id: a\n    path: x\n    durability: often\n").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert_eq!(
            e,
            "volumes[0].durability: durability \"often\": use sync, async or none"
        );
        let c =
            Config::parse("volumes:\n  - id: a\n    path: x\nbuckets:\n  - id: b\n    volume: z\n")
                .unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "buckets[0].volume: no volume has id \"z\""
        );
        let c = Config::parse("volumes:\n  - id: a\n    path: x\napi:\n  http: nowhere\n").unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("api.http: \"nowhere\" is not an address")
        );
    }

    #[test]
    fn p2p_settings_are_checked() {
        let base = "volumes:\n  - id: a\n    path: x\np2p:\n";
        let err = |yaml: &str| {
            Config::parse(&format!("{base}{yaml}"))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("  listen: [tcp-4001]\n")
                .starts_with("p2p.listen[0]: \"tcp-4001\" is not a multiaddr"),
        );
        let peer =
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
        let writer = "ab".repeat(32);
        // An old config that follows writers' streams is told where they
        // went.
        assert_eq!(
            err(&format!(
                "  follow:\n    - peers: [{peer}]\n      writer: {writer}\n"
            )),
            format!("p2p.follow: {FOLLOW_GONE}")
        );
        let ok = Config::parse(&format!("{base}  listen: [/ip4/0.0.0.0/tcp/4001]\n")).unwrap();
        ok.validate().unwrap();
        assert_eq!(Config::parse(&ok.to_yaml().unwrap()).unwrap(), ok);
        // A writer by peer id is the same writer.
        let by_id = parse_writer("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo").unwrap();
        assert_eq!(
            hydra_volume::peer_id_of(&by_id).unwrap().to_string(),
            "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
        );
        assert!(
            err("  peers: [/ip4/127.0.0.1/tcp/1]\n").contains("does not end in /p2p/<peer id>")
        );
        assert!(
            err("  allow: [nobody]\n").starts_with("p2p.allow[0]: \"nobody\" is not a peer id")
        );
    }

    #[test]
    fn bucket_replicas_are_checked() {
        let base = "volumes:\n  - id: a\n    path: x\nbuckets:\n  - id: vault\n";
        let err = |yaml: &str| {
            format!(
                "{:#}",
                Config::parse(&format!("{base}{yaml}"))
                    .unwrap()
                    .validate()
                    .unwrap_err()
            )
        };
        let peer =
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
        let writer = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
        assert!(
            err(&format!(
                "    encrypt: true\n    replicate:\n      from: [{peer}]\n      writers: [{writer}]\n"
            ))
            .contains("compress and encrypt come from the writer")
        );
        assert!(
            err("    replicate:\n      from: []\n      writers: []\n")
                .starts_with("buckets[0].replicate.from: at least one peer")
        );
        assert!(
            err(&format!(
                "    replicate:\n      from: [{peer}]\n      writers: [nobody]\n"
            ))
            .starts_with("buckets[0].replicate.writers: writer \"nobody\"")
        );
        let ok = Config::parse(&format!(
            "{base}    serve: true\n    replicate:\n      from: [{peer}]\n      writers: [{writer}]\n"
        ))
        .unwrap();
        ok.validate().unwrap();
        let r = ok.buckets[0].replicate.as_ref().unwrap();
        let f = r.to_follow("vault").unwrap();
        assert_eq!((f.bucket.as_str(), f.retry.as_millis()), ("vault", 1000));
        assert_eq!(Config::parse(&ok.to_yaml().unwrap()).unwrap(), ok);
        // Its streams come with it, so it lives where the event log does.
        let other = Config::parse(&format!(
            "volumes:\n  - id: a\n    path: x\n  - id: b\n    path: y\nbuckets:\n  - id: vault\n    volume: b\n    replicate:\n      from: [{peer}]\n      writers: [{writer}]\n"
        ))
        .unwrap();
        assert!(
            format!("{:#}", other.validate().unwrap_err())
                .starts_with("buckets[0].volume: a replica bucket brings its streams too")
        );
    }
}
