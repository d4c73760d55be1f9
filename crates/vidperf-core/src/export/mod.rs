//! The export formats: JSON (statistics plus every record) and CSV (one row per
//! operation). Both are documented field by field in `docs/FORMATS.md`; the column
//! names are the original design's and are kept stable.

mod csv_format;
mod json_format;

#[cfg(test)]
mod golden;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use csv_format::{CSV_COLUMNS, read_csv, write_csv};
pub use json_format::{JSON_FORMAT_VERSION, JsonExport, read_json, write_json};

use crate::record::OperationRecord;
use crate::stats::StatsSnapshot;

/// File name of the JSON export written by [`write_files`].
pub const JSON_FILE_NAME: &str = "vidperf-export.json";
/// File name of the CSV export written by [`write_files`].
pub const CSV_FILE_NAME: &str = "vidperf-export.csv";

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The destination failed.
    #[error("cannot write {}: {source}", path.as_deref().map_or_else(|| "export".into(), |p| p.display().to_string()))]
    Io {
        /// The file, when writing to a file.
        path: Option<PathBuf>,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A value could not be encoded.
    #[error("cannot encode export: {0}")]
    Encode(String),
}

impl WriteError {
    fn at(self, path: &Path) -> Self {
        match self {
            Self::Io { source, .. } => Self::Io {
                path: Some(path.to_owned()),
                source,
            },
            other => other,
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(source: io::Error) -> Self {
        Self::Io { path: None, source }
    }
}

/// Why an export could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The source failed.
    #[error("cannot read export: {0}")]
    Io(#[from] io::Error),
    /// The text is not well-formed JSON or CSV.
    #[error("malformed export: {0}")]
    Syntax(String),
    /// The CSV header is not the documented one.
    #[error("unexpected CSV columns: expected {expected:?}, found {found:?}")]
    Columns {
        /// The documented columns.
        expected: Vec<String>,
        /// The columns found.
        found: Vec<String>,
    },
    /// One cell does not hold what its column documents.
    #[error("row {row}, column {column}: {message}")]
    Field {
        /// 1-based data row.
        row: u64,
        /// Column name.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Where [`write_files`] wrote the exports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportPaths {
    /// The JSON export.
    pub json: PathBuf,
    /// The CSV export.
    pub csv: PathBuf,
}

/// Writes [`JSON_FILE_NAME`] and [`CSV_FILE_NAME`] into `dir` (created if missing).
///
/// Each file is written to a temporary name and renamed into place, so a failure never
/// leaves a truncated export behind, and an existing export is replaced whole or not at
/// all.
pub fn write_files(
    dir: &Path,
    snapshot: &StatsSnapshot,
    records: &[OperationRecord],
) -> Result<ExportPaths, WriteError> {
    fs::create_dir_all(dir).map_err(|e| WriteError::from(e).at(dir))?;
    let json = dir.join(JSON_FILE_NAME);
    let csv = dir.join(CSV_FILE_NAME);
    write_atomically(&json, |w| write_json(w, snapshot, records))?;
    write_atomically(&csv, |w| write_csv(w, records))?;
    Ok(ExportPaths { json, csv })
}

fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<fs::File>) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let file = fs::File::create(&tmp)?;
        let mut out = io::BufWriter::new(file);
        write(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e: WriteError| e.at(path))
}
