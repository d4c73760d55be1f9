//! The export formats: JSON (statistics plus every record) and CSV (one row per
//! operation). Both are documented field by field in `docs/FORMATS.md`; the column
//! names are the original design's and are kept stable.

mod csv_format;
mod json_format;
mod summary;

#[cfg(test)]
mod golden;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use csv_format::{CSV_COLUMNS, read_csv, write_csv, write_csv_from};
pub use json_format::{JSON_FORMAT_VERSION, JsonExport, read_json, write_json, write_json_from};
pub use summary::{ExportSummary, read_summary};

use crate::record::OperationRecord;
use crate::stats::{ExportView, Stats, StatsSnapshot};

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
    /// A value could not be encoded as JSON.
    #[error("cannot encode the JSON export: {0}")]
    Json(#[source] serde_json::Error),
    /// A record could not be encoded as CSV.
    #[error("cannot encode the CSV export: {0}")]
    Csv(#[source] csv::Error),
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
    /// The text is not well-formed JSON (the error says where).
    #[error("malformed JSON export: {0}")]
    Json(#[source] serde_json::Error),
    /// The text is not well-formed CSV (the error says where).
    #[error("malformed CSV export: {0}")]
    Csv(#[source] csv::Error),
    /// Well-formed JSON, but not a vidperf export.
    #[error("not a vidperf JSON export: {0}")]
    NotAnExport(&'static str),
    /// The CSV header is not the documented one.
    #[error("unexpected CSV columns: expected {expected:?}, found {found:?}")]
    Columns {
        /// The documented columns.
        expected: Vec<String>,
        /// The columns found.
        found: Vec<String>,
    },
    /// The export was written in a newer format than this library reads.
    #[error(
        "export format_version {found} is newer than this vidperf reads (up to {supported}); \
         upgrade vidperf"
    )]
    NewerFormat {
        /// The file's `format_version`.
        found: u32,
        /// The newest this library reads.
        supported: u32,
    },
    /// Well-formed, but a figure the export holds cannot be (a histogram with a
    /// zero-width or overlapping bucket, counts that do not add up).
    #[error("pair {pair}: {message}")]
    Inconsistent {
        /// `operation_type/strategy`.
        pair: String,
        /// What is wrong, naming the field.
        message: String,
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
/// Both files are written in full under temporary names (`….tmp-<pid>`) before either is
/// renamed into place, so a failure — a full disk, an encoding error — leaves the
/// previous pair untouched and never a new JSON beside an old CSV. Temporary files that
/// a killed process left behind (its pid no longer running) are removed first.
pub fn write_files(
    dir: &Path,
    snapshot: &StatsSnapshot,
    records: &[OperationRecord],
) -> Result<ExportPaths, WriteError> {
    write_pair(
        dir,
        |w| write_json(w, snapshot, records),
        |w| write_csv(w, records),
    )
}

/// Writes the JSON export of an [`ExportView`]: its snapshot and records, each record
/// built from the view's compact rows as it is written.
pub fn write_view_json<W: io::Write>(out: W, view: &ExportView) -> Result<(), WriteError> {
    write_json_from(out, view.snapshot(), view.records())
}

/// Writes the CSV export of an [`ExportView`].
pub fn write_view_csv<W: io::Write>(out: W, view: &ExportView) -> Result<(), WriteError> {
    write_csv_from(out, view.records())
}

/// Writes the JSON export of everything `stats` holds now (statistics and every record,
/// from one [`Stats::export_view`]).
pub fn write_stats_json<W: io::Write>(out: W, stats: &Stats) -> Result<(), WriteError> {
    write_view_json(out, &stats.export_view())
}

/// Writes the CSV export of every record `stats` holds now.
pub fn write_stats_csv<W: io::Write>(out: W, stats: &Stats) -> Result<(), WriteError> {
    write_view_csv(out, &stats.export_view())
}

/// Writes [`JSON_FILE_NAME`] and [`CSV_FILE_NAME`] of everything `stats` holds into
/// `dir`, from one view, as [`write_files`] does.
pub fn write_stats_files(dir: &Path, stats: &Stats) -> Result<ExportPaths, WriteError> {
    let view = stats.export_view();
    write_pair(
        dir,
        |w| write_view_json(w, &view),
        |w| write_view_csv(w, &view),
    )
}

type Body<'a> = &'a dyn Fn(&mut io::BufWriter<fs::File>) -> Result<(), WriteError>;

fn write_pair(
    dir: &Path,
    json_body: impl Fn(&mut io::BufWriter<fs::File>) -> Result<(), WriteError>,
    csv_body: impl Fn(&mut io::BufWriter<fs::File>) -> Result<(), WriteError>,
) -> Result<ExportPaths, WriteError> {
    fs::create_dir_all(dir).map_err(|e| WriteError::from(e).at(dir))?;
    remove_stale_temp_files(dir);
    let json = dir.join(JSON_FILE_NAME);
    let csv = dir.join(CSV_FILE_NAME);
    let bodies: [(&Path, Body<'_>); 2] = [(&json, &json_body), (&csv, &csv_body)];
    let mut written = Vec::with_capacity(2);
    for (path, body) in bodies {
        match write_temp(path, body) {
            Ok(tmp) => written.push((tmp, path)),
            Err(e) => {
                for (tmp, _) in &written {
                    let _ = fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    for (i, (tmp, path)) in written.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            for (tmp, _) in &written[i..] {
                let _ = fs::remove_file(tmp);
            }
            return Err(WriteError::from(e).at(path));
        }
    }
    Ok(ExportPaths { json, csv })
}

/// The temporary name of `path` for this process.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TEMP_MARK}{}", std::process::id()));
    path.with_file_name(name)
}

const TEMP_MARK: &str = ".tmp-";

/// Writes `path`'s content to its temporary name, synced to disk; the temporary path.
fn write_temp(path: &Path, body: Body<'_>) -> Result<PathBuf, WriteError> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = fs::File::create(&tmp)?;
        let mut out = io::BufWriter::new(file);
        body(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(WriteError::at(e, path))
        }
    }
}

/// Removes `vidperf-export.{json,csv}.tmp-<pid>` files whose process no longer runs
/// (killed while writing). Where running processes cannot be listed (no `/proc`),
/// nothing is removed.
fn remove_stale_temp_files(dir: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let pid = [JSON_FILE_NAME, CSV_FILE_NAME].iter().find_map(|base| {
            name.strip_prefix(base)?
                .strip_prefix(TEMP_MARK)
                .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        });
        if let Some(pid) = pid
            && !proc.join(pid).exists()
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}
