//! The JSON export.

use std::io::{Read, Write};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ReadError, WriteError};
use crate::record::{OperationRecord, rfc3339};
use crate::stats::StatsSnapshot;

/// The `format_version` written in JSON exports. It changes only when a field changes
/// meaning or disappears; new fields may appear within a version.
pub const JSON_FORMAT_VERSION: u32 = 1;

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
    mut out: W,
    snapshot: &StatsSnapshot,
    records: &[OperationRecord],
) -> Result<(), WriteError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        format_version: u32,
        #[serde(with = "rfc3339")]
        exported_at: SystemTime,
        statistics: &'a StatsSnapshot,
        operations: &'a [OperationRecord],
    }
    let doc = Borrowed {
        format_version: JSON_FORMAT_VERSION,
        exported_at: SystemTime::now(),
        statistics: snapshot,
        operations: records,
    };
    serde_json::to_writer_pretty(&mut out, &doc).map_err(|e| {
        if e.is_io() {
            WriteError::from(std::io::Error::from(e))
        } else {
            WriteError::Encode(e.to_string())
        }
    })?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Reads a JSON export back.
pub fn read_json<R: Read>(input: R) -> Result<JsonExport, ReadError> {
    serde_json::from_reader(input).map_err(|e| {
        if e.is_io() {
            ReadError::Io(std::io::Error::from(e))
        } else {
            ReadError::Syntax(e.to_string())
        }
    })
}
