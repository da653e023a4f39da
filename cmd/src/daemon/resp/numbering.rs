//! Each event's place in SierraDB's partitions, for the replies that
//! carry it: its stream's partition key and partition, and its sequence
//! there (see `hydra_eventlog::partition_of`).

use std::collections::HashMap;

use hydra_eventlog::{Error as LogError, EventLog, RecordedEvent, StreamId, partition_of};
use uuid::Uuid;

/// An event's partition key, partition and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    pub key: Uuid,
    pub partition: u16,
    pub sequence: u64,
}

/// Streams' partition keys, remembered across calls (a subscription
/// numbers its events one at a time); an event's sequence is one lookup.
#[derive(Default)]
pub struct Numbering {
    keys: HashMap<StreamId, Uuid>,
}

/// Streams remembered at most; past it the map starts again.
const KEYS: usize = 4096;

impl Numbering {
    /// The partition key of `stream`.
    pub fn key(&mut self, log: &EventLog, stream: &StreamId) -> Result<Uuid, LogError> {
        if let Some(k) = self.keys.get(stream) {
            return Ok(*k);
        }
        let key = log
            .partition_key(stream)?
            .unwrap_or_else(|| hydra_eventlog::stream_partition_key(stream));
        if self.keys.len() >= KEYS {
            self.keys.clear();
        }
        self.keys.insert(stream.clone(), key);
        Ok(key)
    }

    /// Numbers `events`; `known[i]`, when given, is event `i`'s sequence
    /// already (a partition scan has them), not looked up again.
    pub fn number(
        &mut self,
        log: &EventLog,
        events: &[&RecordedEvent],
        known: &[Option<u64>],
    ) -> Result<Vec<Numbered>, LogError> {
        let mut out = Vec::with_capacity(events.len());
        let mut groups: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            let key = self.key(log, &e.stream)?;
            let partition = partition_of(&key);
            let sequence = known.get(i).copied().flatten();
            if sequence.is_none() {
                groups.entry(partition).or_default().push(i);
            }
            out.push(Numbered {
                key,
                partition,
                sequence: sequence.unwrap_or_default(),
            });
        }
        for (partition, indices) in groups {
            let positions: Vec<u64> = indices.iter().map(|i| events[*i].position).collect();
            let sequences = log.partition_sequences(partition, &positions)?;
            for (i, seq) in indices.into_iter().zip(sequences) {
                out[i].sequence = seq.ok_or_else(|| LogError::Corrupt {
                    what: format!("partition {partition}"),
                    reason: format!("no sequence names position {}", events[i].position),
                })?;
            }
        }
        Ok(out)
    }
}
