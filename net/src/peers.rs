//! Which of a follower's peers to ask next: a score per peer, raised by
//! good answers and lowered by failures; a peer that sends a block whose
//! bytes do not match its ref is banned for a while (and disconnected by
//! the caller), and what it was asked goes to another peer.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use crate::node::{NodeError, peer_of};

/// How long a peer that sent bad bytes is not asked again.
pub const BAN: Duration = Duration::from_secs(600);
/// Score lost by a failed request (down, timed out, refused).
pub(crate) const FAILED: i64 = 10;
/// Score lost by an answer that breaks the protocol or does not verify.
pub(crate) const LIED: i64 = 100;

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerScore {
    pub peer: String,
    pub score: i64,
    /// Seconds left of a ban, when banned.
    pub banned_for_s: Option<u64>,
}

struct Entry {
    peer: PeerId,
    addr: Multiaddr,
    score: i64,
    banned_until: Option<Instant>,
}

pub(crate) struct Peers(Mutex<Vec<Entry>>);

impl Peers {
    pub fn new(from: &[Multiaddr]) -> Result<Peers, NodeError> {
        let entries = from
            .iter()
            .map(|addr| {
                Ok(Entry {
                    peer: peer_of(addr)?,
                    addr: addr.clone(),
                    score: 0,
                    banned_until: None,
                })
            })
            .collect::<Result<_, NodeError>>()?;
        Ok(Peers(Mutex::new(entries)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The best-scored peer not banned and not in `except` (ties go to
    /// the one listed first).
    pub fn best(&self, except: &HashSet<PeerId>) -> Option<(PeerId, Multiaddr)> {
        let now = Instant::now();
        let entries = self.lock();
        let mut best: Option<&Entry> = None;
        for e in entries.iter() {
            if except.contains(&e.peer) || e.banned_until.is_some_and(|t| t > now) {
                continue;
            }
            if best.is_none_or(|b| e.score > b.score) {
                best = Some(e);
            }
        }
        best.map(|e| (e.peer, e.addr.clone()))
    }

    fn adjust(&self, peer: PeerId, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.lock().iter_mut().find(|e| e.peer == peer) {
            f(e);
        }
    }

    pub fn reward(&self, peer: PeerId) {
        self.adjust(peer, |e| e.score = (e.score + 1).min(100));
    }

    pub fn penalize(&self, peer: PeerId, by: i64) {
        self.adjust(peer, |e| e.score -= by);
    }

    pub fn ban(&self, peer: PeerId) {
        self.adjust(peer, |e| {
            e.score -= LIED;
            e.banned_until = Some(Instant::now() + BAN);
        });
    }

    pub fn report(&self) -> Vec<PeerScore> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|e| PeerScore {
                peer: e.peer.to_string(),
                score: e.score,
                banned_for_s: e
                    .banned_until
                    .filter(|t| *t > now)
                    .map(|t| (t - now).as_secs()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> Multiaddr {
        let key = libp2p::identity::Keypair::ed25519_from_bytes([i; 32]).unwrap();
        format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
            4000 + u16::from(i),
            key.public().to_peer_id()
        )
        .parse()
        .unwrap()
    }

    #[test]
    fn failures_and_bans_move_the_choice() {
        let peers = Peers::new(&[addr(1), addr(2), addr(3)]).unwrap();
        let none = HashSet::new();
        let (first, _) = peers.best(&none).unwrap();
        assert_eq!(first, peer_of(&addr(1)).unwrap(), "ties go to the first");
        peers.penalize(first, FAILED);
        let (second, _) = peers.best(&none).unwrap();
        assert_eq!(second, peer_of(&addr(2)).unwrap());
        peers.ban(second);
        assert_eq!(peers.best(&none).unwrap().0, peer_of(&addr(3)).unwrap());
        let except = HashSet::from([peer_of(&addr(3)).unwrap()]);
        assert_eq!(peers.best(&except).unwrap().0, first, "banned is skipped");
        let all = HashSet::from([first, peer_of(&addr(3)).unwrap()]);
        assert!(peers.best(&all).is_none());
        assert!(peers.report()[1].banned_for_s.is_some());
        assert!(Peers::new(&["/ip4/127.0.0.1/tcp/1".parse().unwrap()]).is_err());
    }
}
