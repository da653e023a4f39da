//! [`WriteBatch`]: writes that commit together or not at all.

use crate::{MAX_KEY_LEN, MAX_VALUE_LEN, VolumeError};

/// One write in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

impl Op {
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// An ordered list of puts and deletes applied atomically by
/// [`Volume::commit`](crate::Volume::commit): later ops on the same key win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    bytes: usize,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        self.bytes += key.len() + value.len();
        self.ops.push(Op::Put { key, value });
        self
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        let key = key.into();
        self.bytes += key.len();
        self.ops.push(Op::Delete { key });
        self
    }

    /// Moves every op of `other` to the end of this batch.
    pub fn append(&mut self, other: WriteBatch) {
        self.bytes += other.bytes;
        self.ops.extend(other.ops);
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Key and value bytes in the batch, to decide when to commit.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Checks every op against the volume's limits before anything is
    /// written, so that a refused batch leaves the volume untouched.
    pub(crate) fn validate(&self, allow_reserved: bool) -> Result<(), VolumeError> {
        for op in &self.ops {
            check_key(op.key(), allow_reserved)?;
            if let Op::Put { value, .. } = op
                && value.len() > MAX_VALUE_LEN
            {
                return Err(VolumeError::ValueTooLarge { len: value.len() });
            }
        }
        Ok(())
    }
}

pub(crate) fn check_key(key: &[u8], allow_reserved: bool) -> Result<(), VolumeError> {
    if key.len() > MAX_KEY_LEN {
        return Err(VolumeError::KeyTooLong { len: key.len() });
    }
    if !allow_reserved && key.first() == Some(&crate::RESERVED_PREFIX) {
        return Err(VolumeError::ReservedKey { key: key.to_vec() });
    }
    Ok(())
}
