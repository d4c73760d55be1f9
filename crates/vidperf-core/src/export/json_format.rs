//! The JSON export.

use std::io::{Read, Write};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ReadError, WriteError};
use crate::record::OperationRecord;
use crate::stats::StatsSnapshot;
use crate::wire::rfc3339;

/// The `format_version` written in JSON exports. It changes only when a field changes
/// meaning or disappears, or when readers must know of a new one; new fields may
/// appear within a version.
///
/// - 1: statistics and records.
/// - 2: `statistics.pairs`, every (operation type, strategy) pair with its whole
///   duration distribution, so a comparison does not depend on the records kept.
///   Version 1 files still read (their pairs are rebuilt from the records).
pub const JSON_FORMAT_VERSION: u32 = 2;

/// The JSON export document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JsonExport {
    /// [`JSON_FORMAT_VERSION`].
    pub format_version: u32,
    /// When the export was written.
    #[serde(with = "rfc3339")]
    pub exported_at: SystemTime,
    /// The statistics at that moment.
    pub statistics: StatsSnapshot,
    /// Every operation record held, oldest first.
    pub operations: Vec<OperationRecord>,
}

/// Writes the JSON export (pretty-printed, UTF-8, trailing newline).
pub fn write_json<W: Write>(
    out: W,
    snapshot: &StatsSnapshot,
    records: &[OperationRecord],
) -> Result<(), WriteError> {
    write_json_from(out, snapshot, records.iter())
}

/// Serialises a sequence from an iterator, consumed once (records built as written).
struct Lazy<I>(std::cell::RefCell<Option<I>>);

impl<I, R> Serialize for Lazy<I>
where
    I: Iterator<Item = R>,
    R: std::borrow::Borrow<OperationRecord>,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.0.borrow_mut().take();
        serializer.collect_seq(items.into_iter().flatten().map(Record))
    }
}

/// A record, by value or by reference.
struct Record<R>(R);

impl<R: std::borrow::Borrow<OperationRecord>> Serialize for Record<R> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.borrow().serialize(serializer)
    }
}

/// [`write_json`] from records given one at a time (each dropped once written), so an
/// export of many records is encoded without holding them all.
pub fn write_json_from<W, R>(
    mut out: W,
    snapshot: &StatsSnapshot,
    records: impl IntoIterator<Item = R>,
) -> Result<(), WriteError>
where
    W: Write,
    R: std::borrow::Borrow<OperationRecord>,
{
    #[derive(Serialize)]
    struct Borrowed<'a, I> {
        format_version: u32,
        #[serde(with = "rfc3339")]
        exported_at: SystemTime,
        statistics: &'a StatsSnapshot,
        operations: I,
    }
    let doc = Borrowed {
        format_version: JSON_FORMAT_VERSION,
        exported_at: SystemTime::now(),
        statistics: snapshot,
        operations: Lazy(std::cell::RefCell::new(Some(records.into_iter()))),
    };
    serde_json::to_writer_pretty(&mut out, &doc).map_err(|e| {
        if e.is_io() {
            WriteError::from(std::io::Error::from(e))
        } else {
            WriteError::Json(e)
        }
    })?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Reads a JSON export back.
///
/// An export from a newer format than this library writes is
/// [`ReadError::NewerFormat`].
pub fn read_json<R: Read>(input: R) -> Result<JsonExport, ReadError> {
    let export: JsonExport = serde_json::from_reader(input).map_err(|e| {
        if e.is_io() {
            ReadError::Io(std::io::Error::from(e))
        } else {
            ReadError::Json(e)
        }
    })?;
    if export.format_version > JSON_FORMAT_VERSION {
        return Err(ReadError::NewerFormat {
            found: export.format_version,
            supported: JSON_FORMAT_VERSION,
        });
    }
    Ok(export)
}
