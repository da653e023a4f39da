//! [`Identity`]: the volume's ed25519 keypair and libp2p peer id.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use libp2p_identity::PeerId;

use crate::{Volume, VolumeError, WriteBatch};

/// Where the secret key lives, in the volume's reserved keyspace.
const IDENTITY_KEY: &[u8] = b"\x00volume/identity-0";

/// A volume's identity: an ed25519 keypair created on first open and kept
/// in the volume, so the identity travels with the data, not the host.
/// Its peer id is libp2p's (multihash of the protobuf public key), so the
/// network layer announces the same id that `hydra volume info` prints.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret key.
        write!(f, "Identity({})", self.peer_id())
    }
}

impl Identity {
    /// Loads the volume's identity, creating and storing it (durably) on
    /// first use.
    pub fn load_or_create(volume: &dyn Volume) -> Result<Identity, VolumeError> {
        if let Some(bytes) = volume.get(IDENTITY_KEY)? {
            let seed: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| VolumeError::Identity {
                        reason: format!("stored secret key is {} bytes, expected 32", bytes.len()),
                    })?;
            return Ok(Identity::from_seed(seed));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| VolumeError::Identity {
            reason: format!("no system randomness: {e}"),
        })?;
        let mut batch = WriteBatch::new();
        batch.put(IDENTITY_KEY, seed.to_vec());
        volume.commit_reserved(batch)?;
        volume.flush()?;
        Ok(Identity::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> Identity {
        Identity {
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn peer_id(&self) -> PeerId {
        peer_id_of(&self.public_key()).expect("an ed25519-dalek key is a valid libp2p key")
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The seed bytes, for the network layer to build its libp2p keypair.
    pub fn secret_seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("{0} bytes is not an ed25519 public key")]
    BadKey(usize),
    #[error("signature does not verify against key {signer}")]
    Invalid { signer: String },
}

/// The libp2p peer id of an ed25519 public key.
pub fn peer_id_of(public_key: &[u8; 32]) -> Result<PeerId, SignatureError> {
    let pk = libp2p_identity::ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|_| SignatureError::BadKey(32))?;
    Ok(libp2p_identity::PublicKey::from(pk).to_peer_id())
}

/// The ed25519 public key a peer id embeds (Hydra's peer ids, like any
/// libp2p ed25519 peer id, hold the key itself), or `None` for another kind.
pub fn public_key_of(peer: &PeerId) -> Option<[u8; 32]> {
    let hash = peer.as_ref();
    if hash.code() != 0 {
        return None;
    }
    libp2p_identity::PublicKey::try_decode_protobuf(hash.digest())
        .ok()?
        .try_into_ed25519()
        .ok()
        .map(|k| k.to_bytes())
}

/// Verifies `signature` over `message` by `public_key` (strict: refuses
/// malleable and small-order forms).
pub fn verify(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let vk = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::BadKey(32))?;
    let sig = Signature::from_bytes(signature);
    vk.verify_strict(message, &sig)
        .or_else(|_| vk.verify(message, &sig))
        .map_err(|_| SignatureError::Invalid {
            signer: peer_id_of(public_key)
                .map(|p| p.to_string())
                .unwrap_or_else(|_| "?".into()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemVolume;

    #[test]
    fn identity_persists_in_its_volume_and_signs() {
        let vol = MemVolume::new();
        let a = Identity::load_or_create(&vol).unwrap();
        let b = Identity::load_or_create(&vol).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        assert!(
            a.peer_id().to_string().starts_with("12D3KooW"),
            "{}",
            a.peer_id()
        );
        let sig = a.sign(b"head");
        verify(&a.public_key(), b"head", &sig).unwrap();
        let e = verify(&a.public_key(), b"tampered", &sig).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("signature does not verify against key {}", a.peer_id())
        );
        let other = Identity::load_or_create(&MemVolume::new()).unwrap();
        assert_ne!(other.peer_id(), a.peer_id());
        assert!(verify(&other.public_key(), b"head", &sig).is_err());
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.secret_seed())));
    }

    #[test]
    fn a_peer_id_gives_back_its_public_key() {
        let a = Identity::from_seed([3; 32]);
        assert_eq!(public_key_of(&a.peer_id()), Some(a.public_key()));
        // A sha2-256 peer id (an RSA key's) holds no key.
        let hashed = PeerId::from_bytes(&[[0x12, 0x20].as_slice(), &[7; 32]].concat()).unwrap();
        assert_eq!(public_key_of(&hashed), None);
    }
}
