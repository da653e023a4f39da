//! A peer that lies: it serves corrupted blocks, truncated messages,
//! manifests with a broken signature or signed by a key the replica does
//! not trust. Every lie is detected, nothing bad is stored, the liar is
//! scored down (banned for bad bytes), and replication completes from an
//! honest peer.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use hydra_block::Ref;
use hydra_bucket::{BucketName, CreateOptions};
use hydra_net::codec::Codec;
use hydra_net::wire::{Block, BlocksRequest, BlocksRequestV1, BlocksResponse, BlocksResponseV1};
use hydra_net::{BLOCKS_PROTOCOL, BucketFollow, Multiaddr, Node, Serving};
use hydra_volume::Identity;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, noise, tcp, yamux};

use crate::buckets::{listen, noise as bytes, serve};
use crate::open;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    /// Serves what it was given, unchanged.
    Nothing,
    CorruptBlocks,
    /// Every answer cut in half.
    Truncated,
    /// The writer's manifest with one byte of the signature flipped.
    BadSignature,
    /// A manifest properly signed, by the liar's own key.
    OtherWriter,
}

/// What the liar knows: the writer's true manifest and blocks.
struct Truth {
    manifest: Vec<u8>,
    blocks: HashMap<Ref, Vec<u8>>,
    own_manifest: Vec<u8>,
}

/// The protocol's codec, except that with `truncate` every answer is cut
/// to half its bytes.
#[derive(Clone, Default)]
struct LiarCodec {
    truncate: bool,
}

impl request_response::Codec for LiarCodec {
    type Protocol = StreamProtocol;
    type Request = BlocksRequest;
    type Response = BlocksResponse;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<BlocksRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        Codec::<BlocksRequest, BlocksResponse>::default()
            .read_request(p, io)
            .await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<BlocksResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        unreachable!("the liar asks nothing")
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: BlocksRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        unreachable!("the liar asks nothing")
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: BlocksResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let mut bytes = postcard::to_allocvec(&response).unwrap();
        if self.truncate {
            bytes.truncate(bytes.len() / 2);
        }
        io.write_all(&bytes).await?;
        io.close().await
    }
}

/// Starts a libp2p peer on loopback that speaks one request-response
/// protocol with `codec` and answers every request with `answer`.
async fn peer<C>(
    codec: C,
    protocol: &'static str,
    mut answer: impl FnMut(C::Request) -> C::Response + Send + 'static,
) -> Multiaddr
where
    C: request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    let key = libp2p::identity::Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(protocol), ProtocolSupport::Full)],
                request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    swarm.listen_on(listen()[0].clone()).unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(id));
        }
    };
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = swarm.select_next_some().await
            {
                let _ = swarm
                    .behaviour_mut()
                    .send_response(channel, answer(request));
            }
        }
    });
    addr
}

/// Starts a libp2p peer speaking `/hydra/blocks/1` that tells `lie`.
async fn liar(lie: Lie, truth: Truth) -> Multiaddr {
    let codec = LiarCodec {
        truncate: lie == Lie::Truncated,
    };
    peer(codec, BLOCKS_PROTOCOL, move |BlocksRequest::V1(request)| {
        BlocksResponse::V1(match request {
            BlocksRequestV1::Manifest { .. } => {
                let mut m = match lie {
                    Lie::OtherWriter => truth.own_manifest.clone(),
                    _ => truth.manifest.clone(),
                };
                if lie == Lie::BadSignature {
                    let last = m.len() - 1;
                    m[last] ^= 1;
                }
                BlocksResponseV1::Manifest(m.into())
            }
            BlocksRequestV1::Want { refs, .. } => BlocksResponseV1::Blocks(
                refs.iter()
                    .map(|r| match (lie, truth.blocks.get(r)) {
                        (Lie::CorruptBlocks, Some(b)) => {
                            let mut b = b.clone();
                            b[0] ^= 0xff;
                            Block::Have(b.into())
                        }
                        (_, Some(b)) => Block::Have(b.clone().into()),
                        (_, None) => Block::DontHave,
                    })
                    .collect(),
            ),
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lies_are_detected_and_an_honest_peer_completes_the_replica() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path());
    let name: BucketName = "docs".parse().unwrap();
    a.store()
        .create_bucket(
            &name,
            CreateOptions {
                zstd_level: Some(1),
                key: None,
            },
        )
        .unwrap();
    let wa = a.store().bucket(&name, None).unwrap();
    let data = bytes(5, 1_000_000);
    wa.put_object("big", &data[..], |_| {}).unwrap();
    let honest = Node::start(a.clone(), serve(a.store().clone(), "docs", None), listen())
        .await
        .unwrap();
    let manifest = wa.manifest(a.identity(), 1).unwrap();
    let mut blocks = HashMap::new();
    for b in wa.blocks() {
        let (r, _) = b.unwrap();
        blocks.insert(r, wa.get_stored(&r).unwrap().unwrap());
    }
    let stranger = Identity::from_seed([9; 32]);
    let own = wa.manifest(&stranger, 2).unwrap();

    for (i, lie) in [
        Lie::CorruptBlocks,
        Lie::Truncated,
        Lie::BadSignature,
        Lie::OtherWriter,
    ]
    .into_iter()
    .enumerate()
    {
        let truth = Truth {
            manifest: manifest.sign(a.identity()),
            blocks: blocks.clone(),
            own_manifest: own.sign(&stranger),
        };
        let liar = liar(lie, truth).await;
        let r = open(dirs[i + 1].path());
        let node = Node::start(r.clone(), Serving::streams(), Vec::new())
            .await
            .unwrap();
        let follow = BucketFollow {
            bucket: name.clone(),
            // The liar first: it is asked before the honest peer.
            from: vec![liar.clone(), honest.listening()[0].clone()],
            writers: vec![a.identity().public_key()],
            retry: Duration::from_millis(50),
        };
        let status = follow.status();
        follow
            .round(&node, r.store(), None, &status)
            .await
            .unwrap_or_else(|e| panic!("{lie:?}: {e}"));
        let report = status.lock().unwrap().clone();
        let mut out = Vec::new();
        r.store()
            .bucket(&name, None)
            .unwrap()
            .get_object("big", &mut out, |_| {})
            .unwrap();
        assert!(out == data, "{lie:?}: the object differs");
        assert!(r.store().verify(|_| {}).unwrap().corrupt.is_empty());
        let liar_score = &report.rounds.peers[0];
        match lie {
            Lie::CorruptBlocks => {
                assert!(report.bad_blocks > 0, "{report:?}");
                assert_eq!(node.stats().snapshot().bad_blocks, report.bad_blocks);
                assert!(liar_score.banned_for_s.is_some(), "{report:?}");
            }
            Lie::BadSignature | Lie::OtherWriter => {
                assert!(liar_score.banned_for_s.is_some(), "{lie:?}: {report:?}");
                assert_eq!(report.blocks_received, blocks.len() as u64);
            }
            Lie::Truncated => {
                assert!(liar_score.score < 0, "{report:?}");
            }
            Lie::Nothing => unreachable!("only lies here"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_signing_two_manifests_of_one_seq_is_caught() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path());
    let name: BucketName = "docs".parse().unwrap();
    a.store()
        .create_bucket(&name, CreateOptions::default())
        .unwrap();
    let wa = a.store().bucket(&name, None).unwrap();
    wa.put_object("big", &bytes(6, 300_000)[..], |_| {})
        .unwrap();
    let first = wa.manifest(a.identity(), 7).unwrap();
    let mut blocks = HashMap::new();
    for b in wa.blocks() {
        let (r, _) = b.unwrap();
        blocks.insert(r, wa.get_stored(&r).unwrap().unwrap());
    }
    // The same writer, the same seq, another history: no objects.
    let mut second = first.clone();
    second.objects.clear();
    let peer = |m: &hydra_bucket::Manifest| Truth {
        manifest: m.sign(a.identity()),
        blocks: blocks.clone(),
        own_manifest: Vec::new(),
    };
    let (one, two) = (
        liar(Lie::Nothing, peer(&first)).await,
        liar(Lie::Nothing, peer(&second)).await,
    );
    let r = open(dirs[1].path());
    let node = Node::start(r.clone(), Serving::streams(), Vec::new())
        .await
        .unwrap();
    let follow = |from: &Multiaddr| BucketFollow {
        bucket: name.clone(),
        from: vec![from.clone()],
        writers: vec![a.identity().public_key()],
        retry: Duration::from_millis(50),
    };
    let status = follow(&one).status();
    follow(&one)
        .round(&node, r.store(), None, &status)
        .await
        .unwrap();
    let err = follow(&two)
        .round(&node, r.store(), None, &status)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("signed two manifests of bucket docs at seq 7"),
        "{err}"
    );
    assert_eq!(status.lock().unwrap().equivocations, 1);
    assert_eq!(node.stats().snapshot().equivocations, 1);
    // Both kept; the first still applied.
    let rb = r.store().bucket(&name, None).unwrap();
    let evidence: Vec<_> = rb
        .roots(hydra_bucket::EVIDENCE_PREFIX)
        .map(Result::unwrap)
        .collect();
    assert_eq!(evidence.len(), 1);
    let kept = rb.get_stored(&evidence[0].1).unwrap().unwrap();
    assert_eq!(
        hydra_bucket::Manifest::open(&kept, &name, &[a.identity().public_key()]).unwrap(),
        second
    );
    assert_eq!(
        hydra_bucket::Manifest::decode_stored(&rb.replica_manifest().unwrap().unwrap()).unwrap(),
        first
    );
    assert!(rb.object("big").unwrap().is_some());
}

/// The writer's export with one byte of one event changed: every block
/// still matches its CID (they are re-addressed), the head is the writer's,
/// but the records no longer lead to its root.
fn tampered(car: &[u8]) -> Vec<u8> {
    use hydra_block::{CarReader, CarWriter, Codec, Node};
    use serde_bytes::ByteBuf;
    let mut reader = CarReader::new(car).unwrap();
    let (_, head) = reader.next_block().unwrap().unwrap();
    let mut head: Node<hydra_eventlog::Head> =
        Node::decode(hydra_eventlog::STREAM_HEAD, &head).unwrap();
    let mut bundles = Vec::new();
    while let Some((_, b)) = reader.next_block().unwrap() {
        bundles.push(Node::<Vec<ByteBuf>>::decode(hydra_eventlog::EVENT_BUNDLE, &b).unwrap());
    }
    // The last data byte of the first record (its metadata, empty, ends it).
    let record = &mut bundles[0].body[0];
    let at = record.len() - 2;
    record[at] ^= 1;
    let encoded: Vec<(Ref, Vec<u8>)> = bundles
        .iter()
        .map(|b| {
            let bytes = b.encode();
            (Ref::of(Codec::Node, &bytes), bytes)
        })
        .collect();
    head.links = encoded.iter().map(|(r, _)| *r).collect();
    let head_bytes = head.encode();
    let head_ref = Ref::of(Codec::Node, &head_bytes);
    let mut out = CarWriter::new(Vec::new(), &[head_ref]).unwrap();
    out.write(&head_ref, &head_bytes).unwrap();
    for (r, b) in &encoded {
        out.write(r, b).unwrap();
    }
    out.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_records_that_miss_the_head_is_banned() {
    use hydra_eventlog::{ExpectedVersion, NewEvent, StreamId};
    use hydra_net::{Follow, RequestV1, ResponseV1, SyncRequest, SyncResponse};
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, r) = (open(dirs[0].path()), open(dirs[1].path()));
    let s = StreamId::new("orders-1").unwrap();
    for i in 0..12u8 {
        a.append(
            &s,
            ExpectedVersion::Any,
            vec![NewEvent::new("E", vec![b'a' + i; 16])],
        )
        .unwrap();
    }
    // The replica holds the first ten, from the writer (one part each).
    let key = a.identity().public_key();
    for _ in 0..10 {
        let v = r.stream_version(&s).unwrap().map_or(0, |v| v + 1);
        let mut part = Vec::new();
        a.export_part(&[(s.clone(), v)], Some(1), &mut part)
            .unwrap();
        r.import_bytes(&part, &[key]).unwrap();
    }
    assert_eq!(r.stream_version(&s).unwrap(), Some(9));
    let mut rest = Vec::new();
    a.export_part(&[(s.clone(), 10)], None, &mut rest).unwrap();
    let (bad, ext) = (tampered(&rest), a.extension(&s, 10).unwrap());

    // A peer that answers heads truthfully, exports with a changed event,
    // and extensions truthfully (its tree does extend the replica's).
    let addr = peer(
        Codec::<SyncRequest, SyncResponse>::default(),
        hydra_net::PROTOCOL,
        move |SyncRequest::V1(request)| {
            SyncResponse::V1(match request {
                RequestV1::Heads { .. } => ResponseV1::Heads {
                    heads: vec![("orders-1".into(), 12)],
                    next: 12,
                },
                RequestV1::Export { .. } => ResponseV1::Car(bad.clone().into()),
                RequestV1::Extension { .. } => ResponseV1::Extension(Box::new(ext.clone())),
            })
        },
    )
    .await;

    let node = Node::start(r.clone(), Serving::streams(), Vec::new())
        .await
        .unwrap();
    let follow = Follow {
        from: vec![addr],
        writer: key,
        prefix: "orders".into(),
        retry: Duration::from_secs(3600),
    };
    let status = follow.status();
    let task = tokio::spawn(follow.run(node.clone(), r.clone(), status.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status.lock().unwrap().rounds.last_error.is_none() {
        assert!(std::time::Instant::now() < deadline, "no verdict");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let report = status.lock().unwrap().clone();
    let err = report.rounds.last_error.clone().unwrap();
    assert!(
        err.contains("lied") && err.contains("does not lead to the head"),
        "{err}"
    );
    assert!(report.rounds.peers[0].banned_for_s.is_some(), "{report:?}");
    assert!(report.equivocations.is_empty(), "not the writer's fault");
    assert_eq!(node.stats().snapshot().equivocations, 0);
    assert_eq!(r.stream_version(&s).unwrap(), Some(9), "nothing applied");
}
