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
use hydra_net::{BLOCKS_PROTOCOL, BucketFollow, Multiaddr, Node};
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
            BlocksRequestV1::StreamBlocks { .. } => BlocksResponseV1::Error("no".into()),
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
        let node = crate::serve_all(&r, Vec::new()).await;
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
    let node = crate::serve_all(&r, Vec::new()).await;
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

/// How a stream liar lies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum StreamLie {
    /// Bundles with a byte flipped, in the storage answer and by
    /// want-lists: they no longer match their refs.
    CorruptBundles,
    /// The writer's storage block with a byte of its signature flipped.
    BadSignature,
    /// A storage block signed by the liar's own key.
    OtherWriter,
    /// A storage block that names another bucket than the one asked for
    /// (what it names must not be made here).
    OtherBucket,
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct BothProtocols {
    sync: request_response::Behaviour<Codec<hydra_net::SyncRequest, hydra_net::SyncResponse>>,
    blocks: request_response::Behaviour<Codec<BlocksRequest, BlocksResponse>>,
}

/// A peer speaking `/hydra/sync/4` and `/hydra/blocks/1` that serves the
/// stream `s` of `writer` (which it holds a copy of) telling `lie`: its
/// storage only in heads answers `with_heads`, else only when asked.
async fn stream_liar(
    lie: StreamLie,
    writer: &hydra_eventlog::EventLog,
    s: &str,
    with_heads: bool,
) -> Multiaddr {
    use hydra_eventlog::StreamId;
    use hydra_net::{RequestV1, ResponseV1, SyncRequest, SyncResponse};
    let id = StreamId::new(s).unwrap();
    let storage = writer.storage(&id).unwrap();
    let length = writer.stream_version(&id).unwrap().unwrap() + 1;
    let mut blocks = HashMap::new();
    writer
        .each_storage_block(&storage, |r, b| {
            blocks.insert(*r, b.to_vec());
            Ok(())
        })
        .unwrap();
    // The storage block's body, as postcard lays out its fields.
    type Body = (
        hydra_eventlog::StoredHead,
        String,
        (Option<i32>, Option<String>),
    );
    let mut root =
        hydra_block::Node::<Body>::decode(hydra_eventlog::STREAM_STORAGE, storage.root_block())
            .unwrap();
    match lie {
        StreamLie::BadSignature => root.body.0.signature[3] ^= 1,
        StreamLie::OtherWriter => {
            let stranger = Identity::from_seed([9; 32]);
            let stored = &mut root.body.0;
            stored.head.signer = stranger.public_key();
            stored.head.signature = stranger.sign(&stored.head.signed_bytes());
            stored.signature = stranger.sign(&stored.signed_bytes());
        }
        StreamLie::OtherBucket => root.body.1 = "elsewhere".into(),
        StreamLie::CorruptBundles => {}
    }
    let root = root.encode();
    // The heads name the writer the follower trusts, whatever is sent.
    let writer = writer.identity().public_key();

    let key = libp2p::identity::Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id();
    let protocol = |p: &'static str| [(StreamProtocol::new(p), ProtocolSupport::Full)];
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| BothProtocols {
            sync: request_response::Behaviour::with_codec(
                Codec::default(),
                protocol(hydra_net::PROTOCOL),
                request_response::Config::default(),
            ),
            blocks: request_response::Behaviour::with_codec(
                Codec::default(),
                protocol(BLOCKS_PROTOCOL),
                request_response::Config::default(),
            ),
        })
        .unwrap()
        .build();
    swarm.listen_on(listen()[0].clone()).unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(peer_id));
        }
    };
    let s = s.to_owned();
    let carried: Vec<serde_bytes::ByteBuf> = blocks
        .iter()
        .filter(|(r, _)| lie == StreamLie::CorruptBundles && r.codec() == hydra_block::Codec::Raw)
        .map(|(_, b)| {
            let mut b = b.clone();
            b[0] ^= 0xff;
            b.into()
        })
        .collect();
    tokio::spawn(async move {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(BothProtocolsEvent::Sync(
                    request_response::Event::Message {
                        message:
                            request_response::Message::Request {
                                request, channel, ..
                            },
                        ..
                    },
                )) => {
                    let SyncRequest::V1(request) = request;
                    // The storage (bundles corrupted alike, which match
                    // no link: they are asked for), either with the heads
                    // (unasked: it is checked the same) or when asked.
                    let storage = hydra_net::StreamStorage {
                        root: root.clone().into(),
                        edges: Vec::new(),
                        tree: carried.clone(),
                    };
                    let answer = match request {
                        RequestV1::Storage { .. } if with_heads => {
                            ResponseV1::Error("ask the heads".into())
                        }
                        RequestV1::Heads { .. } => ResponseV1::Heads {
                            heads: vec![hydra_net::StreamHead {
                                stream: s.clone(),
                                length,
                                writer,
                            }],
                            next: length,
                            position: length,
                            storages: with_heads.then_some(storage.clone()).into_iter().collect(),
                        },
                        RequestV1::Storage { .. } => ResponseV1::Storage(storage),
                        _ => ResponseV1::Error("no".into()),
                    };
                    let _ = swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, SyncResponse::V1(answer));
                }
                SwarmEvent::Behaviour(BothProtocolsEvent::Blocks(
                    request_response::Event::Message {
                        message:
                            request_response::Message::Request {
                                request, channel, ..
                            },
                        ..
                    },
                )) => {
                    let BlocksRequest::V1(BlocksRequestV1::StreamBlocks { refs, .. }) = request
                    else {
                        continue;
                    };
                    let answer = refs
                        .iter()
                        .map(|r| match blocks.get(r) {
                            Some(b)
                                if lie == StreamLie::CorruptBundles
                                    && r.codec() == hydra_block::Codec::Raw =>
                            {
                                let mut b = b.clone();
                                b[0] ^= 0xff;
                                Block::Have(b.into())
                            }
                            Some(b) => Block::Have(b.clone().into()),
                            None => Block::DontHave,
                        })
                        .collect();
                    let _ = swarm.behaviour_mut().blocks.send_response(
                        channel,
                        BlocksResponse::V1(BlocksResponseV1::Blocks(answer)),
                    );
                }
                _ => {}
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_lying_about_a_stream_is_banned_and_the_honest_one_completes_it() {
    use hydra_eventlog::StreamId;
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path());
    let s = StreamId::new("orders-1").unwrap();
    for chunk in 0..7u8 {
        let events = (0..100)
            .map(|i| hydra_eventlog::NewEvent::new("E", vec![chunk ^ i; 64]))
            .collect();
        a.append(&s, hydra_eventlog::ExpectedVersion::Any, events)
            .unwrap();
    }
    let honest = crate::serve_all(&a, listen()).await;
    let key = a.identity().public_key();
    for (i, lie) in [
        StreamLie::CorruptBundles,
        StreamLie::BadSignature,
        StreamLie::OtherWriter,
        StreamLie::OtherBucket,
    ]
    .into_iter()
    .enumerate()
    {
        let liar = stream_liar(lie, &a, "orders-1", i % 2 == 0).await;
        let r = open(dirs[i + 1].path());
        let node = crate::serve_all(&r, Vec::new()).await;
        let follow = BucketFollow {
            bucket: "default".parse().unwrap(),
            // The liar first: it is asked before the honest peer.
            from: vec![liar, honest.listening()[0].clone()],
            writers: vec![key],
            retry: Duration::from_millis(50),
        };
        let status = follow.streams_status();
        let task = tokio::spawn(follow.run_streams(node.clone(), r.clone(), status.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // The events land before the round that brought them is recorded.
        while r.stream_version(&s).unwrap() != Some(699)
            || status.lock().unwrap().rounds.peers.is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{lie:?}: {:?}",
                status.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
        let report = status.lock().unwrap().clone();
        assert!(
            report.rounds.peers[0].banned_for_s.is_some(),
            "{lie:?}: {report:?}"
        );
        if lie == StreamLie::CorruptBundles {
            assert!(node.stats().snapshot().bad_blocks > 0, "{lie:?}");
        }
        assert!(
            report.equivocations.is_empty(),
            "{lie:?}: not the writer's fault"
        );
        a.storage(&s).unwrap();
        assert!(
            r.store()
                .bucket_config(&"elsewhere".parse().unwrap())
                .is_err(),
            "{lie:?}: a bucket made on a liar's word"
        );
        r.check_stored(&a.stored_head(&s).unwrap(), &key).unwrap();
        assert!(r.verify(|_| {}).unwrap().corrupt.is_empty(), "{lie:?}");
    }
}
