//! A record as read from one side, and how a record waiting for its
//! partner is laid out in a key-ordered state store: under `p side key ts
//! seq`, so that one range scan finds a key's earliest waiting record of a
//! side within a window.

use crate::class::Side;

/// One record as read: where from, when, and its business key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its side.
    pub side: Side,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (event time), in ms.
    pub timestamp: i64,
    /// Its business key ([`crate::key::BusinessKey::bytes`]).
    pub key: Vec<u8>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

/// A timestamp as 8 bytes that sort as the signed value.
pub fn ts_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp of [`ts_bytes`]; `b` holds at least 8 bytes.
pub fn ts_from(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

/// `prefix side key_len key`: where a side's entries for a key start.
pub fn side_key(prefix: u8, side: Side, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 6);
    k.push(prefix);
    k.push(side.byte());
    k.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Where a waiting record is stored: `p side key ts seq`.
pub fn pending_key(side: Side, key: &[u8], ts: i64, seq: u64) -> Vec<u8> {
    let mut k = side_key(b'p', side, key);
    k.extend_from_slice(&ts_bytes(ts));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A waiting record's stored value: partition, offset, duplicate flag,
/// value.
pub fn encode_waiting(r: &Seen, duplicate: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + r.value.as_ref().map_or(0, Vec::len));
    v.extend_from_slice(&r.partition.to_be_bytes());
    v.extend_from_slice(&r.offset.to_be_bytes());
    v.push(u8::from(duplicate));
    match &r.value {
        Some(value) => {
            v.push(1);
            v.extend_from_slice(value);
        }
        None => v.push(0),
    }
    v
}

/// The record and duplicate flag of [`encode_waiting`]; an error names a
/// stored value too short to be one.
pub fn decode_waiting(side: Side, key: &[u8], ts: i64, v: &[u8]) -> Result<(Seen, bool), String> {
    if v.len() < 14 {
        return Err(format!("a waiting record of {} bytes", v.len()));
    }
    let partition = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&v[4..12]);
    let offset = i64::from_be_bytes(offset);
    let duplicate = v[12] == 1;
    let value = (v[13] == 1).then(|| v[14..].to_vec());
    Ok((
        Seen {
            side,
            partition,
            offset,
            timestamp: ts,
            key: key.to_vec(),
            value,
        },
        duplicate,
    ))
}
