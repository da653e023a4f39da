//! The writer's side of replication: other writers' streams, checked
//! against this store (see `storage/apply.rs`), applied in one commit with
//! positions here, their bundles, trees and stored heads as the writers'
//! storage has them.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Tx, Writer};
use crate::bundle::{self, BUNDLE};
use crate::layout::{self, Deletion, EventLocation, IdRun, STORED_SUBTREE_LEVEL, StreamState};
use crate::merkle::push_leaf;
use crate::storage::{Prepared, Start};
use crate::tree;
use crate::{Error, StreamId};

impl Writer {
    /// Applies other writers' streams, checked against this store (see
    /// `storage.rs`): their events get positions here in the order of
    /// `order`'s runs (index into `prepared`, events), which must take
    /// every event of every stream (a backup's `$all` order), or without
    /// one each stream's events in turn; each stream's new bundles, tree
    /// and the writer's stored head are taken as its storage has them.
    /// Returns the events applied.
    pub(super) fn replicate(
        &self,
        tx: &mut Tx<'_>,
        prepared: &[Prepared],
        order: Option<&[(u32, u64)]>,
    ) -> Result<u64, Error> {
        let mut streams = std::collections::HashSet::new();
        let mut open = Vec::with_capacity(prepared.len());
        for p in prepared {
            if !streams.insert(&p.stored.head.stream) {
                return Err(bad_order(format!(
                    "stream {} comes twice",
                    p.stored.head.stream
                )));
            }
            open.push(self.replicating(tx, p)?);
        }
        let whole: Vec<(u32, u64)>;
        let runs = match order {
            Some(runs) => runs,
            None => {
                whole = (0..prepared.len())
                    .map(|i| (i as u32, prepared[i].events.len() as u64))
                    .collect();
                &whole
            }
        };
        for &(i, n) in runs {
            if i == crate::transfer::GAP {
                let next = tx.meta.next_position.checked_add(n);
                tx.meta.next_position = next.ok_or_else(|| bad_order(format!("a gap of {n}")))?;
                continue;
            }
            let (Some(p), Some(o)) = (prepared.get(i as usize), open.get_mut(i as usize)) else {
                return Err(bad_order(format!(
                    "a run names stream #{i} of {}",
                    prepared.len()
                )));
            };
            self.replicate_events(tx, p, o, n)?;
        }
        let mut events = 0;
        for (p, o) in prepared.iter().zip(open) {
            events += self.replicated(tx, p, o)?;
        }
        Ok(events)
    }

    /// The state a stream's replication starts from, once checked that
    /// the stream did not change since its storage was.
    fn replicating(&self, tx: &mut Tx<'_>, p: &Prepared) -> Result<Replicating, Error> {
        let head = &p.stored.head;
        let stream = &head.stream;
        let mut st = match self.state(tx, stream)? {
            Some(s) => {
                let same_writer = s.replica.as_ref().is_some_and(|h| h.signer == head.signer)
                    || (s.replica.is_none() && s.length == 0 && s.deletion == Deletion::None);
                if !same_writer || s.length != p.held || s.bucket != p.bucket {
                    return Err(changed(stream));
                }
                s
            }
            None if p.held == 0 => self.new_state_in(tx, stream, p.bucket, None),
            None => return Err(changed(stream)),
        };
        if let Some(start) = &p.start {
            start_replica(tx, &mut st, start);
        }
        // Where each event of a new bundle lies in `$all` here.
        // Not those its writer scavenged, which this store did too.
        let sealed_now = p
            .sealed_now
            .iter()
            .filter(|(version, _)| *version >= st.scavenged_before);
        let bundled: HashMap<u64, u64> = sealed_now.clone().copied().collect();
        for &(version, position) in sealed_now {
            tx.ops.put(
                layout::log_key(position),
                layout::LogEntry::bundled(st.num, version),
            );
            tx.ops.delete(layout::version_key(st.num, version));
        }
        Ok(Replicating {
            st,
            bundled,
            next: 0,
        })
    }

    /// Gives the next `n` events of a stream being replicated the next
    /// positions here.
    fn replicate_events(
        &self,
        tx: &mut Tx<'_>,
        p: &Prepared,
        o: &mut Replicating,
        n: u64,
    ) -> Result<(), Error> {
        let stream = &p.stored.head.stream;
        let Some(events) = p.events.get(o.next..o.next + n as usize) else {
            return Err(bad_order(format!(
                "it gives stream {stream} more than its {} events",
                p.events.len()
            )));
        };
        o.next += events.len();
        let num = o.st.num;
        let st = &mut o.st;
        let first_position = tx.meta.next_position;
        // The run of consecutive positions in one new bundle being
        // gathered: one `$all` entry for all of it (see `LogEntry::Run`).
        let mut run: Option<(u64, u64, u64)> = None;
        let end_run = |tx: &mut Tx<'_>, run: &mut Option<(u64, u64, u64)>| {
            if let Some((position, version, count)) = run.take() {
                tx.ops.put(
                    layout::log_key(position),
                    layout::LogEntry::run(num, version, count),
                );
            }
        };
        // The ids of one writer's append being gathered: one `eid-0/`
        // entry for all of them (see `IdRun`).
        let mut ids: Option<(Uuid, IdRun)> = None;
        let end_ids = |tx: &mut Tx<'_>, ids: &mut Option<(Uuid, IdRun)>| {
            if let Some((last, run)) = ids.take() {
                tx.ops.put(layout::event_id_key(&last), run.encode());
            }
        };
        for e in events {
            let version = st.length;
            let position = tx.meta.next_position;
            tx.meta.next_position += 1;
            let id = Uuid::from_bytes(e.id);
            if crate::event_id::position_of(&id) == Some(position) {
                end_ids(tx, &mut ids);
            } else {
                let loc = EventLocation {
                    num,
                    version,
                    position,
                };
                tx.eids.insert(id, loc);
                match &mut ids {
                    Some((last, run)) if crate::event_id::follows(last, &id) => {
                        (*last, run.last) = (id, loc);
                        run.count += 1;
                    }
                    _ => {
                        end_ids(tx, &mut ids);
                        ids = Some((
                            id,
                            IdRun {
                                last: loc,
                                count: 1,
                            },
                        ));
                    }
                }
            }
            push_leaf(&mut st.peaks, version, e.leaf, |level, index, h| {
                if level >= STORED_SUBTREE_LEVEL {
                    tx.ops
                        .put(layout::subtree_key(num, level, index), h.to_vec());
                }
            });
            st.length += 1;
            st.last_position = Some(position);
            match &e.sealed {
                Some(sealed) => {
                    end_run(tx, &mut run);
                    tx.ops.put(
                        layout::log_key(position),
                        layout::LogEntry::edge(num, version, p.bucket, &e.leaf, sealed),
                    );
                    tx.ops.put(
                        layout::version_key(num, version),
                        position.to_be_bytes().to_vec(),
                    );
                }
                None => {
                    match &mut run {
                        Some((at, first, count))
                            if *at + *count == position && *first / BUNDLE == version / BUNDLE =>
                        {
                            *count += 1;
                        }
                        _ => {
                            end_run(tx, &mut run);
                            run = Some((position, version, 1));
                        }
                    }
                    o.bundled.insert(version, position);
                }
            }
        }
        end_run(tx, &mut run);
        end_ids(tx, &mut ids);
        if !events.is_empty() {
            self.sequence(tx, num, stream, first_position, events.len() as u64)?;
        }
        Ok(())
    }

    /// Finishes a stream's replication: its new bundles' entries, its
    /// tree, the writer's stored head and its state. Returns its events
    /// applied.
    fn replicated(&self, tx: &mut Tx<'_>, p: &Prepared, o: Replicating) -> Result<u64, Error> {
        let head = &p.stored.head;
        let stream = &head.stream;
        if o.next != p.events.len() {
            return Err(bad_order(format!(
                "it gives stream {stream} {} of its {} events",
                o.next,
                p.events.len()
            )));
        }
        let Replicating {
            mut st, bundled, ..
        } = o;
        let num = st.num;
        for &(index, block) in &p.bundles {
            let mut positions = (index * BUNDLE..(index + 1) * BUNDLE)
                .map(|v| match bundled.get(&v) {
                    Some(p) => Ok(Some(*p)),
                    // Scavenged by the writer before this replica began.
                    None if v < st.scavenged_before => Ok(None),
                    None => Err(changed(stream)),
                })
                .collect::<Result<Vec<Option<u64>>, Error>>()?;
            // A scavenged version takes the position of the first shown
            // after it: no `$all` entry names it, and runs of consecutive
            // positions never step onto it.
            let mut next = None;
            for p in positions.iter_mut().rev() {
                next = p.or(next);
                *p = next;
            }
            let positions: Vec<u64> = positions.into_iter().flatten().collect();
            if positions.len() as u64 != BUNDLE {
                return Err(changed(stream));
            }
            bundle::stage_entry(&mut tx.ops, (num, index), p.bucket, block, &positions);
        }
        let bucket = self.buckets.get(p.bucket)?;
        if let Some(top) = p.stored.tree {
            bucket.stage_root(&mut tx.ops, &tree::root_name(num), top)?;
            tx.roots.push((p.bucket, top));
        }
        // Held blind until the key came: indexed from now on.
        bucket.stage_remove_root(&mut tx.ops, &crate::storage::blind_root(stream))?;
        let mut stored = postcard::to_allocvec(&p.stored).expect("stored heads encode");
        if let Some(said) = &p.said {
            stored.extend(postcard::to_allocvec(said).expect("what a writer says encodes"));
        }
        tx.ops.put(layout::replica_stored_key(num), stored);
        st.metadata = p.metadata.clone();
        st.replica = Some(head.clone());
        tx.ops.put(layout::state_key(stream), st.encode());
        tx.states.insert(stream.clone(), st);
        Ok(p.events.len() as u64)
    }
}

/// Starts a replica stream new here where its storage begins (see
/// `storage.rs`): the peaks over the versions before, kept (`rpp-0/`)
/// and as the stored subtrees proofs read, then the leaf hashes of the
/// versions up to the first shown, kept as a scavenge keeps them.
fn start_replica(tx: &mut Tx<'_>, st: &mut StreamState, start: &Start) {
    let num = st.num;
    layout::stage_replica_prefix(&mut tx.ops, num, (start.covered, &start.peaks), true);
    for (version, leaf) in (start.covered..).zip(&start.leaves) {
        tx.ops
            .put(layout::scavenged_leaf_key(num, version), leaf.to_vec());
    }
    (st.peaks, st.length) = start.grown(|level, index, h| {
        if level >= STORED_SUBTREE_LEVEL {
            tx.ops
                .put(layout::subtree_key(num, level, index), h.to_vec());
        }
    });
    st.scavenged_before = st.length;
}

/// A stream being replicated: its state, where its new bundles' events
/// lie in `$all` here, and how many of its events have positions.
struct Replicating {
    st: StreamState,
    bundled: HashMap<u64, u64>,
    next: usize,
}

/// A stream that changed here while its storage was checked.
fn changed(stream: &StreamId) -> Error {
    Error::StoredMismatch {
        stream: stream.clone(),
        reason: "the stream changed here while its storage was checked: apply it again".into(),
    }
}

/// An `$all` order that does not fit the streams it orders.
fn bad_order(reason: String) -> Error {
    Error::Corrupt {
        what: "$all order of an import".into(),
        reason,
    }
}
