//! A durable, ordered, bounded queue of records in one file: the spool.
//!
//! The Kafka bus keeps here the messages it could not deliver (broker
//! unreachable), so that they survive a crash or a restart and go out first,
//! in order, when the node starts again.
//!
//! # Guarantees
//! - **Durable once [`Spool::append`] returns**: each call writes all its
//!   records and syncs the file once (callers batch: group commit).
//! - **Order kept**: [`Spool::peek`] returns the oldest waiting records in
//!   the order they were appended, also after a reopen.
//! - **At least once**: [`Spool::acknowledge`] durably marks the oldest
//!   records delivered. A crash between delivery and acknowledgement
//!   delivers them again: duplicates are possible, loss is not.
//! - **Bounded by bytes**: the file never grows beyond its capacity; an
//!   append that would not fit is refused whole ([`SpoolError::Full`]).
//! - **One process per file**: the file is locked exclusively while open; a
//!   second spool of the same name gets `{name}.1.spool`, and so on (its
//!   records wait until a spool of that name gets that file again).
//!
//! # On-disk format (version 1)
//! All integers are little-endian and fixed-width. The 24-byte header:
//!
//! | bytes    | field                                               |
//! |----------|-----------------------------------------------------|
//! | `0..8`   | magic `ONEXSPOL`                                    |
//! | `8..12`  | format version (`u32`, 1)                           |
//! | `12..20` | file offset of the first undelivered record (`u64`) |
//! | `20..24` | CRC32 of bytes `0..20`                              |
//!
//! Records follow, each framed as `len: u32`, `crc: u32`, then `len` bytes
//! of payload; `crc` is the CRC32 of the `len` field and the payload. The
//! payload holds the topic, the key, the value and the headers: byte strings
//! are a `u32` length then the bytes, the key starts with a presence byte
//! (0 absent, 1 present), the headers are a `u32` count of (name, value)
//! pairs.
//!
//! Acknowledging rewrites the header in place (one sector) and syncs; the
//! records before the offset are delivered and never read again. When all
//! are acknowledged the file is truncated back to its header. When an append
//! does not fit but the delivered prefix is larger than what still waits, the
//! waiting records are first moved to the front (compaction).
//!
//! A crash during an append can leave a torn tail: on open, the first frame
//! that is incomplete or fails its CRC ends the spool, and it and everything
//! after it is logged and truncated away. A header that is not valid is an
//! error ([`SpoolError::Corrupt`]), never silently reset.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use thiserror::Error;

const MAGIC: &[u8; 8] = b"ONEXSPOL";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 24;
/// The `len` and `crc` fields in front of every payload.
const FRAME_LEN: u64 = 8;
/// How many numbered files (`{name}.1.spool` ...) `open` tries when
/// `{name}.spool` is locked by another process.
pub const MAX_NUMBERED_FILES: u32 = 16;

/// One message kept for later delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// The topic it is for.
    pub topic: String,
    /// The message key, if any.
    pub key: Option<Vec<u8>>,
    /// The message value.
    pub value: Vec<u8>,
    /// The message headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Why a spool could not be opened, read or written.
#[derive(Debug, Error)]
pub enum SpoolError {
    /// The operating system refused a file operation.
    #[error("spool file {}: could not {action}: {source}; check that the directory is writable and the disk is not full", .path.display())]
    Io {
        /// The spool file (or its directory).
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `{name}.spool` and all its numbered alternatives are locked.
    #[error("every spool file for `{name}` in {} (`{name}.spool` and `{name}.1.spool` to `{name}.16.spool`) is locked by another running process; stop one of them or give this node its own spool directory", .dir.display())]
    AllLocked {
        /// The spool directory.
        dir: PathBuf,
        /// The sanitized spool name.
        name: String,
    },
    /// The records would make the file larger than its capacity.
    #[error("spool file {} is full: {needed} more bytes would exceed its capacity of {capacity_bytes} bytes; deliver or remove the records waiting in it (start the node with the broker reachable), or raise KAFKA_SPOOL_CAPACITY_BYTES", .path.display())]
    Full {
        /// The spool file.
        path: PathBuf,
        /// The capacity in bytes.
        capacity_bytes: u64,
        /// The bytes the refused append needed.
        needed: u64,
    },
    /// One record is larger than the format can frame (4 GiB).
    #[error("spool file {}: a record of {bytes} bytes is larger than a spool record can be (4 GiB); send it in smaller messages", .path.display())]
    RecordTooLarge {
        /// The spool file.
        path: PathBuf,
        /// The encoded size of the record.
        bytes: u64,
    },
    /// The file is not a spool this build can read.
    #[error("spool file {} is not a valid spool: {reason}; move it aside to start with an empty spool (its records will then not be delivered)", .path.display())]
    Corrupt {
        /// The spool file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// More records were acknowledged than are waiting.
    #[error("spool file {}: cannot acknowledge {requested} records, only {waiting} are waiting; acknowledge only records returned by peek", .path.display())]
    AcknowledgeTooMany {
        /// The spool file.
        path: PathBuf,
        /// How many were acknowledged.
        requested: usize,
        /// How many were waiting.
        waiting: usize,
    },
}

/// A durable, ordered, bounded queue of [`SpoolRecord`]s in one locked file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    capacity_bytes: u64,
    /// File offset of the first undelivered record.
    first: u64,
    /// File offset where each waiting record ends, oldest first.
    ends: VecDeque<u64>,
}

impl Spool {
    /// Opens (creating `dir` and the file if needed) the spool `name` in
    /// `dir`, bounded to `capacity_bytes` of file size.
    ///
    /// `name` is reduced to ASCII letters, digits, `.`, `_` and `-` (others
    /// become `_`). The file is `{name}.spool`; if another process holds it,
    /// `{name}.1.spool` up to `{name}.16.spool`. A torn tail is dropped with
    /// a warning; the records before it wait for delivery.
    pub fn open(dir: &Path, name: &str, capacity_bytes: u64) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, "create the directory", e))?;
        let name = sanitize(name);
        for number in 0..=MAX_NUMBERED_FILES {
            let path = numbered_path(dir, &name, number);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_error(&path, "open", e))?;
            // `File::try_lock` is std's since Rust 1.89: no extra crate.
            let locked = file.try_lock();
            match locked {
                Ok(()) => {
                    let mut spool = Spool::load(path, file, capacity_bytes)?;
                    spool.adopt_orphans(dir, &name)?;
                    return Ok(spool);
                }
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(io_error(&path, "lock", e)),
            }
        }
        Err(SpoolError::AllLocked {
            dir: dir.to_path_buf(),
            name,
        })
    }

    /// Takes over what the other files of `name` hold whose process is
    /// gone (their lock is free): a replica that left a numbered file behind
    /// and never came back would otherwise keep its records there. They are
    /// appended after this spool's own records, each file's order kept, and
    /// removed from the orphan once durable here.
    fn adopt_orphans(&mut self, dir: &Path, name: &str) -> Result<(), SpoolError> {
        for number in 0..=MAX_NUMBERED_FILES {
            let path = numbered_path(dir, name, number);
            if path == self.path || !path.exists() {
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, "open", e))?;
            if file.try_lock().is_err() {
                continue; // Its process is alive.
            }
            let mut orphan = Spool::load(path, file, self.capacity_bytes)?;
            if orphan.is_empty() {
                continue;
            }
            let records = orphan.peek(orphan.len())?;
            self.append(&records)?;
            orphan.acknowledge(records.len())?;
            tracing::info!(
                records = records.len(),
                from = %orphan.path.display(),
                into = %self.path.display(),
                "spool: took over the records of a process that is gone"
            );
        }
        Ok(())
    }

    fn load(path: PathBuf, file: File, capacity_bytes: u64) -> Result<Spool, SpoolError> {
        let mut spool = Spool {
            path,
            file,
            capacity_bytes,
            first: HEADER_LEN,
            ends: VecDeque::new(),
        };
        let len = spool
            .file
            .metadata()
            .map_err(|e| spool.io("read the size of", e))?
            .len();
        if len < HEADER_LEN {
            // New, or its creation was cut short: records are appended only
            // after the header is durable, so there is nothing to lose.
            spool.clear().map_err(|e| spool.io("initialize", e))?;
            let dir = spool.path.parent().unwrap_or(Path::new("."));
            return sync_dir(dir)
                .map_err(|e| io_error(dir, "sync the directory", e))
                .map(|()| spool);
        }
        let mut header = [0u8; HEADER_LEN as usize];
        read_exact_at(&spool.file, &mut header, 0)
            .map_err(|e| spool.io("read the header of", e))?;
        let first = parse_header(&header).map_err(|reason| spool.corrupt(reason))?;
        if first > len && len > HEADER_LEN {
            return Err(spool.corrupt(format!("its first undelivered record is at offset {first}, past the end of the file ({len} bytes)")));
        }
        // A header-only file is empty whatever its offset says: the truncation
        // of `clear` reached the disk before the rewritten header did.
        spool.first = first.min(len);
        let end = spool.scan(len).map_err(|e| spool.io("read", e))?;
        if end < len {
            tracing::warn!(path = %spool.path.display(), dropped_bytes = len - end, "spool: dropping an incomplete or corrupt tail (an append was interrupted); the records before it are kept");
            spool
                .file
                .set_len(end)
                .and_then(|()| spool.file.sync_data())
                .map_err(|e| spool.io("truncate the torn tail of", e))?;
        }
        if spool.ends.is_empty() && (end != HEADER_LEN || first != HEADER_LEN) {
            spool.clear().map_err(|e| spool.io("truncate", e))?;
        }
        Ok(spool)
    }

    /// Reads the frames from `first`, recording where each intact one ends;
    /// returns the end of the last intact frame.
    fn scan(&mut self, len: u64) -> io::Result<u64> {
        let mut reader = BufReader::new(&self.file);
        reader.seek(SeekFrom::Start(self.first))?;
        let (mut pos, mut payload) = (self.first, Vec::new());
        while len - pos >= FRAME_LEN {
            let mut frame = [0u8; FRAME_LEN as usize];
            reader.read_exact(&mut frame)?;
            let size = u64::from(le_u32(&frame[..4]));
            if len - pos - FRAME_LEN < size {
                break;
            }
            payload.resize(size as usize, 0);
            reader.read_exact(&mut payload)?;
            if frame_crc(&frame[..4], &payload) != le_u32(&frame[4..]) {
                break;
            }
            pos += FRAME_LEN + size;
            self.ends.push_back(pos);
        }
        Ok(pos)
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records wait for delivery.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no record waits for delivery.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many bytes of the file the waiting records take (with framing).
    pub fn bytes(&self) -> u64 {
        self.file_len() - self.first
    }

    /// The most bytes the file may hold, header included.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Appends `records` after the waiting ones and syncs the file once:
    /// when this returns `Ok`, they survive a crash. If they do not fit in
    /// the capacity, nothing is appended and the error is
    /// [`SpoolError::Full`].
    pub fn append(&mut self, records: &[SpoolRecord]) -> Result<(), SpoolError> {
        if records.is_empty() {
            return Ok(());
        }
        let (mut buf, mut ends) = (Vec::new(), Vec::with_capacity(records.len()));
        for record in records {
            let start = buf.len();
            buf.extend_from_slice(&[0; FRAME_LEN as usize]);
            encode(record, &mut buf);
            let payload = &buf[start + FRAME_LEN as usize..];
            // Larger than u32 also covers any field whose length was cut short.
            let size = u32::try_from(payload.len()).map_err(|_| SpoolError::RecordTooLarge {
                path: self.path.clone(),
                bytes: payload.len() as u64,
            })?;
            let crc = frame_crc(&size.to_le_bytes(), payload);
            buf[start..start + 4].copy_from_slice(&size.to_le_bytes());
            buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            ends.push(buf.len() as u64);
        }
        let needed = buf.len() as u64;
        let capacity = self.capacity_bytes;
        let fits = |file_len: u64| file_len.saturating_add(needed) <= capacity;
        if !fits(self.file_len())
            && fits(HEADER_LEN + self.bytes())
            && self.first - HEADER_LEN >= self.bytes() + FRAME_LEN
        {
            self.compact().map_err(|e| self.io("compact", e))?;
        }
        if !fits(self.file_len()) {
            return Err(SpoolError::Full {
                path: self.path.clone(),
                capacity_bytes: self.capacity_bytes,
                needed,
            });
        }
        let start = self.file_len();
        let written = self
            .file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.write_all(&buf))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no partial record behind; if this fails too, the next
            // append overwrites it and the next open drops what remains.
            let _ = self.file.set_len(start);
            return Err(self.io("append to", e));
        }
        self.ends.extend(ends.into_iter().map(|end| start + end));
        Ok(())
    }

    /// The oldest `max` waiting records (fewer if fewer wait), oldest first.
    /// They stay waiting until [`acknowledge`](Self::acknowledge)d.
    pub fn peek(&self, max: usize) -> Result<Vec<SpoolRecord>, SpoolError> {
        let count = max.min(self.ends.len());
        let Some(&last) = count.checked_sub(1).and_then(|i| self.ends.get(i)) else {
            return Ok(Vec::new());
        };
        let mut buf = vec![0u8; (last - self.first) as usize];
        read_exact_at(&self.file, &mut buf, self.first).map_err(|e| self.io("read", e))?;
        let mut start = self.first;
        let mut records = Vec::with_capacity(count);
        for &end in self.ends.iter().take(count) {
            let payload =
                &buf[(start - self.first + FRAME_LEN) as usize..(end - self.first) as usize];
            let record = decode(payload).ok_or_else(|| {
                self.corrupt(format!(
                    "the record at offset {start} passed its checksum but does not decode"
                ))
            })?;
            records.push(record);
            start = end;
        }
        Ok(records)
    }

    /// Marks the oldest `n` waiting records delivered, durably. When none is
    /// left waiting, the file is truncated back to its header.
    pub fn acknowledge(&mut self, n: usize) -> Result<(), SpoolError> {
        if n > self.ends.len() {
            return Err(SpoolError::AcknowledgeTooMany {
                path: self.path.clone(),
                requested: n,
                waiting: self.ends.len(),
            });
        }
        if n == 0 {
            return Ok(());
        }
        if n == self.ends.len() {
            return self.clear().map_err(|e| self.io("truncate", e));
        }
        let first = self.ends[n - 1];
        self.write_header(first)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.io("acknowledge in", e))?;
        self.first = first;
        self.ends.drain(..n);
        Ok(())
    }

    fn file_len(&self) -> u64 {
        self.ends.back().copied().unwrap_or(self.first)
    }

    /// Empties the spool: header first, so that a crash before the
    /// truncation reaches the disk re-delivers rather than loses.
    fn clear(&mut self) -> io::Result<()> {
        self.write_header(HEADER_LEN)?;
        self.file.set_len(HEADER_LEN)?;
        self.file.sync_data()?;
        self.first = HEADER_LEN;
        self.ends.clear();
        Ok(())
    }

    /// Moves the waiting records to just after the header. Only called when
    /// the delivered prefix is larger than what waits plus a frame, so the
    /// copy overwrites only delivered records; a crash leaves either the old
    /// layout or the new one followed by a zero frame, which fails its CRC
    /// and ends the scan on open.
    fn compact(&mut self) -> io::Result<()> {
        let (waiting, shift) = (self.bytes(), self.first - HEADER_LEN);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut done = 0;
        while done < waiting {
            let n = chunk.len().min((waiting - done) as usize);
            read_exact_at(&self.file, &mut chunk[..n], self.first + done)?;
            self.file.seek(SeekFrom::Start(HEADER_LEN + done))?;
            self.file.write_all(&chunk[..n])?;
            done += n as u64;
        }
        self.file.seek(SeekFrom::Start(HEADER_LEN + waiting))?;
        self.file.write_all(&[0; FRAME_LEN as usize])?;
        self.file.sync_data()?;
        self.write_header(HEADER_LEN)?;
        self.first = HEADER_LEN;
        self.ends.iter_mut().for_each(|end| *end -= shift);
        self.file.sync_data()?;
        self.file.set_len(HEADER_LEN + waiting)
    }

    fn write_header(&mut self, first: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&encode_header(first))
    }

    fn io(&self, action: &'static str, source: io::Error) -> SpoolError {
        io_error(&self.path, action, source)
    }

    fn corrupt(&self, reason: String) -> SpoolError {
        SpoolError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn sanitize(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "spool".to_owned()
    } else {
        name
    }
}

/// Makes a newly created file's directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut std::mem::take(&mut buf)[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(array)
}

fn frame_crc(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

fn encode_header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&header[..20]);
    header[20..].copy_from_slice(&crc.to_le_bytes());
    header
}

fn parse_header(header: &[u8; HEADER_LEN as usize]) -> Result<u64, String> {
    if &header[..8] != MAGIC {
        return Err("it does not start with the magic bytes `ONEXSPOL`".to_owned());
    }
    let version = le_u32(&header[8..12]);
    if version != VERSION {
        return Err(format!(
            "it has format version {version}, this build reads version {VERSION}"
        ));
    }
    if crc32fast::hash(&header[..20]) != le_u32(&header[20..]) {
        return Err("its header checksum does not match".to_owned());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&header[12..20]);
    let first = u64::from_le_bytes(first);
    if first < HEADER_LEN {
        return Err(format!(
            "its first undelivered record is at offset {first}, inside the header"
        ));
    }
    Ok(first)
}

/// Lengths are cast to `u32`; a field that does not fit makes the payload
/// larger than `u32::MAX`, which `append` refuses before writing.
fn encode(record: &SpoolRecord, out: &mut Vec<u8>) {
    fn put(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    put(out, record.topic.as_bytes());
    match &record.key {
        None => out.push(0),
        Some(key) => {
            out.push(1);
            put(out, key);
        }
    }
    put(out, &record.value);
    out.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
    for (name, value) in &record.headers {
        put(out, name.as_bytes());
        put(out, value);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(le_u32)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        self.take(len).map(<[u8]>::to_vec)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

fn decode(payload: &[u8]) -> Option<SpoolRecord> {
    let mut reader = Reader(payload);
    let topic = reader.string()?;
    let key = match reader.take(1)? {
        [0] => None,
        [1] => Some(reader.bytes()?),
        _ => return None,
    };
    let value = reader.bytes()?;
    let count = reader.u32()?;
    let headers = (0..count)
        .map(|_| Some((reader.string()?, reader.bytes()?)))
        .collect::<Option<Vec<_>>>()?;
    reader.0.is_empty().then_some(SpoolRecord {
        topic,
        key,
        value,
        headers,
    })
}

/// The `number`th file of the spool `name`: `{name}.spool`, then
/// `{name}.1.spool`, `{name}.2.spool`, ...
fn numbered_path(dir: &Path, name: &str, number: u32) -> PathBuf {
    match number {
        0 => dir.join(format!("{name}.spool")),
        n => dir.join(format!("{name}.{n}.spool")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize) -> SpoolRecord {
        SpoolRecord {
            topic: format!("onex.evt.test.v{i}"),
            key: Some(format!("key-{i}").into_bytes()),
            value: format!("value-{i}").into_bytes(),
            headers: vec![("event-type".to_owned(), vec![i as u8])],
        }
    }

    fn records(range: std::ops::Range<usize>) -> Vec<SpoolRecord> {
        range.map(record).collect()
    }

    fn open(dir: &tempfile::TempDir, capacity_bytes: u64) -> Spool {
        Spool::open(dir.path(), "node", capacity_bytes).unwrap()
    }

    /// What a new `open` of the spool finds waiting.
    fn reopened(dir: &tempfile::TempDir) -> Vec<SpoolRecord> {
        open(dir, 1 << 20).peek(usize::MAX).unwrap()
    }

    fn file_size(path: &Path) -> u64 {
        fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX)
    }

    #[test]
    fn append_peek_acknowledge_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        assert!(spool.is_empty());
        spool.append(&records(0..3)).unwrap();
        spool.append(&records(3..5)).unwrap();
        assert_eq!(spool.len(), 5);
        assert_eq!(spool.bytes(), file_size(spool.path()) - HEADER_LEN);
        assert_eq!(spool.peek(2).unwrap(), records(0..2));
        assert_eq!(spool.peek(100).unwrap(), records(0..5));
        spool.acknowledge(2).unwrap();
        assert_eq!(spool.peek(100).unwrap(), records(2..5));
        let err = spool.acknowledge(4).unwrap_err();
        assert!(matches!(
            err,
            SpoolError::AcknowledgeTooMany {
                requested: 4,
                waiting: 3,
                ..
            }
        ));
        assert_eq!(spool.len(), 3);
    }

    #[test]
    fn reopen_keeps_undelivered_in_order_and_forgets_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        spool.append(&records(0..6)).unwrap();
        spool.acknowledge(2).unwrap();
        drop(spool);
        let mut spool = open(&dir, 1 << 20);
        assert_eq!(spool.path(), dir.path().join("node.spool"));
        assert_eq!(spool.peek(100).unwrap(), records(2..6));
        spool.append(&records(6..7)).unwrap();
        spool.acknowledge(1).unwrap();
        drop(spool);
        assert_eq!(reopened(&dir), records(3..7));
    }

    #[test]
    fn refuses_an_append_beyond_capacity_and_appends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 200);
        spool.append(&records(0..2)).unwrap();
        let size = file_size(spool.path());
        let err = spool.append(&records(2..6)).unwrap_err();
        assert!(
            matches!(
                err,
                SpoolError::Full {
                    capacity_bytes: 200,
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains("KAFKA_SPOOL_CAPACITY_BYTES") && message.contains("node.spool"));
        assert_eq!((spool.len(), file_size(spool.path())), (2, size));
        drop(spool);
        assert_eq!(reopened(&dir), records(0..2));
    }

    #[test]
    fn compacts_a_delivered_prefix_to_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 600);
        spool.append(&records(0..6)).unwrap();
        assert!(matches!(
            spool.append(&records(6..9)),
            Err(SpoolError::Full { .. })
        ));
        spool.acknowledge(5).unwrap();
        spool.append(&records(6..9)).unwrap();
        assert_eq!(file_size(spool.path()), HEADER_LEN + spool.bytes());
        assert_eq!(spool.peek(100).unwrap(), records(5..9));
        drop(spool);
        assert_eq!(reopened(&dir), records(5..9));
    }

    #[test]
    fn drops_a_torn_or_corrupt_tail_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        spool.append(&records(0..3)).unwrap();
        let path = spool.path().to_path_buf();
        drop(spool);
        // The last record cut short.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(file_size(&path) - 3).unwrap();
        drop(file);
        assert_eq!(reopened(&dir), records(0..2));
        let size = file_size(&path);
        // Garbage after the last record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0xAB; 40]).unwrap();
        drop(file);
        let mut spool = open(&dir, 1 << 20);
        assert_eq!(file_size(&path), size);
        spool.append(&records(5..6)).unwrap();
        drop(spool);
        assert_eq!(reopened(&dir), [records(0..2), records(5..6)].concat());
    }

    #[test]
    fn a_corrupt_header_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        spool.append(&records(0..1)).unwrap();
        let path = spool.path().to_path_buf();
        drop(spool);
        let mut bytes = fs::read(&path).unwrap();
        bytes[14] ^= 0xFF;
        fs::write(&path, bytes).unwrap();
        let err = Spool::open(dir.path(), "node", 1 << 20).unwrap_err();
        assert!(matches!(err, SpoolError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn the_records_of_a_gone_process_are_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Spool::open(dir.path(), "node", 1 << 20).expect("open");
        let mut second = Spool::open(dir.path(), "node", 1 << 20).expect("open .1");
        second.append(&records(7..9)).expect("append");
        drop(second);
        drop(first);
        // The next start takes the unnumbered file and adopts `.1`'s records.
        let spool = Spool::open(dir.path(), "node", 1 << 20).expect("reopen");
        assert_eq!(spool.path(), dir.path().join("node.spool"));
        assert_eq!(spool.peek(10).expect("peek"), records(7..9));
        let orphan = dir.path().join("node.1.spool");
        assert_eq!(std::fs::metadata(orphan).expect("kept").len(), HEADER_LEN);
    }

    #[test]
    fn a_second_open_gets_the_next_numbered_file() {
        let dir = tempfile::tempdir().unwrap();
        let open_named = || Spool::open(dir.path(), "my node/1", 1 << 20);
        let mut first = open_named().unwrap();
        let mut second = open_named().unwrap();
        assert_eq!(first.path(), dir.path().join("my_node_1.spool"));
        assert_eq!(second.path(), dir.path().join("my_node_1.1.spool"));
        first.append(&records(0..1)).unwrap();
        second.append(&records(1..2)).unwrap();
        assert_eq!(second.peek(10).unwrap(), records(1..2));
        let others: Vec<Spool> = (2..=MAX_NUMBERED_FILES)
            .map(|_| open_named().unwrap())
            .collect();
        let err = open_named().unwrap_err();
        assert!(matches!(err, SpoolError::AllLocked { .. }), "{err}");
        drop((first, others));
        assert_eq!(open_named().unwrap().peek(10).unwrap(), records(0..1));
    }

    #[test]
    fn acknowledging_everything_truncates_to_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        assert_eq!(file_size(spool.path()), HEADER_LEN);
        spool.append(&records(0..4)).unwrap();
        spool.acknowledge(1).unwrap();
        spool.acknowledge(3).unwrap();
        assert_eq!((spool.len(), spool.bytes()), (0, 0));
        assert_eq!(file_size(spool.path()), HEADER_LEN);
        spool.append(&records(4..5)).unwrap();
        drop(spool);
        assert_eq!(reopened(&dir), records(4..5));
    }

    #[test]
    fn a_truncation_that_outran_its_header_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = open(&dir, 1 << 20);
        spool.append(&records(0..2)).unwrap();
        spool.acknowledge(1).unwrap();
        let path = spool.path().to_path_buf();
        drop(spool);
        // All delivered, the file cut back, the header not yet rewritten.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(HEADER_LEN)
            .unwrap();
        let mut spool = open(&dir, 1 << 20);
        assert!(spool.is_empty());
        spool.append(&records(2..3)).unwrap();
        drop(spool);
        assert_eq!(reopened(&dir), records(2..3));
    }

    #[test]
    fn absent_and_empty_keys_and_binary_values_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let binary: Vec<u8> = (0..=255).collect();
        let sent = vec![
            SpoolRecord {
                topic: "t".to_owned(),
                key: None,
                value: binary.clone(),
                headers: vec![],
            },
            SpoolRecord {
                topic: String::new(),
                key: Some(Vec::new()),
                value: Vec::new(),
                headers: vec![("h".to_owned(), binary)],
            },
        ];
        open(&dir, 1 << 20).append(&sent).unwrap();
        assert_eq!(reopened(&dir), sent);
    }

    #[test]
    fn a_spool_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Spool>();
    }
}
