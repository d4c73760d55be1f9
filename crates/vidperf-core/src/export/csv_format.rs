//! The CSV export: one row per operation, RFC 4180 quoting, UTF-8.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::{ReadError, WriteError};
use crate::record::{OperationRecord, rfc3339};

/// The CSV columns, in order. Stable: new columns are only ever appended.
pub const CSV_COLUMNS: [&str; 24] = [
    "operation_id",
    "operation_type",
    "strategy",
    "start_time",
    "end_time",
    "duration_seconds",
    "success",
    "error_message",
    "frames_processed",
    "segments",
    "input_resolution",
    "output_resolution",
    "scale_factor",
    "quality_score",
    "enhancement_factor",
    "peak_memory_mb",
    "peak_gpu_memory_mb",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "samples",
    "trace_id",
    "span_id",
    "metadata",
    "gpu_devices",
];

/// Characters that make a spreadsheet treat a cell as a formula, plus the escape itself.
const FORMULA_TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// A text cell, neutralised: one `'` is prepended when it starts with `=`, `+`, `-`,
/// `@`, tab, carriage return or `'`. [`read_csv`] removes exactly that one `'`.
fn text_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(FORMULA_TRIGGERS) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

fn untext(cell: &str) -> String {
    cell.strip_prefix('\'').unwrap_or(cell).to_owned()
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The shortest digits that read back to the same value: positional for ordinary
/// magnitudes, scientific (`1.5e-300`) for extreme ones, which positional notation
/// would spell with hundreds of digits.
fn float(v: f64) -> String {
    let a = v.abs();
    if a.is_finite() && a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

fn opt_float(value: Option<f64>) -> String {
    value.map(float).unwrap_or_default()
}

/// Writes a header and one row per record.
pub fn write_csv<W: Write>(out: W, records: &[OperationRecord]) -> Result<(), WriteError> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_COLUMNS).map_err(csv_error)?;
    for r in records {
        let metadata = if r.metadata.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.metadata).map_err(|e| WriteError::Encode(e.to_string()))?
        };
        let devices = if r.gpu_devices.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&r.gpu_devices).map_err(|e| WriteError::Encode(e.to_string()))?
        };
        let row: [std::borrow::Cow<'_, str>; 24] = [
            text_cell(&r.operation_id),
            text_cell(&r.operation_type),
            text_cell(&r.strategy),
            rfc3339::format(r.start_time).into(),
            rfc3339::format(r.end_time).into(),
            float(r.duration_seconds).into(),
            r.success.to_string().into(),
            r.error_message
                .as_deref()
                .map(text_cell)
                .unwrap_or_default(),
            opt(r.frames_processed).into(),
            opt(r.segments).into(),
            opt(r.input_resolution).into(),
            opt(r.output_resolution).into(),
            opt_float(r.scale_factor).into(),
            opt_float(r.quality_score).into(),
            opt_float(r.enhancement_factor).into(),
            opt_float(r.peak_memory_mb).into(),
            opt_float(r.peak_gpu_memory_mb).into(),
            opt_float(r.cpu_utilization_percent).into(),
            opt_float(r.gpu_utilization_percent).into(),
            opt(r.samples).into(),
            text_cell(&r.trace_id),
            text_cell(&r.span_id),
            text_cell(&metadata).into_owned().into(),
            devices.into(),
        ];
        writer
            .write_record(row.iter().map(|c| c.as_bytes()))
            .map_err(csv_error)?;
    }
    writer.flush()?;
    Ok(())
}

fn csv_error(e: csv::Error) -> WriteError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => WriteError::from(io),
        other => WriteError::Encode(format!("{other:?}")),
    }
}

/// Reads a CSV export back into records, undoing the formula neutralisation.
pub fn read_csv<R: Read>(input: R) -> Result<Vec<OperationRecord>, ReadError> {
    let mut reader = csv::Reader::from_reader(input);
    let headers = reader.headers().map_err(read_error)?.clone();
    if headers.iter().ne(CSV_COLUMNS) {
        return Err(ReadError::Columns {
            expected: CSV_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
            found: headers.iter().map(str::to_owned).collect(),
        });
    }
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(read_error)?;
        out.push(parse_row(&row, i as u64 + 1)?);
    }
    Ok(out)
}

fn read_error(e: csv::Error) -> ReadError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ReadError::Io(io),
        other => ReadError::Syntax(format!("{other:?}")),
    }
}

struct Row<'a> {
    row: &'a csv::StringRecord,
    line: u64,
}

impl Row<'_> {
    fn cell(&self, i: usize) -> &str {
        self.row.get(i).unwrap_or_default()
    }

    fn bad(&self, i: usize, message: String) -> ReadError {
        ReadError::Field {
            row: self.line,
            column: CSV_COLUMNS[i],
            message,
        }
    }

    fn opt<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>, ReadError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.cell(i);
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e| self.bad(i, format!("{text:?}: {e}")))
    }

    fn req<T: std::str::FromStr>(&self, i: usize) -> Result<T, ReadError>
    where
        T::Err: std::fmt::Display,
    {
        self.opt(i)?.ok_or_else(|| self.bad(i, "empty".to_owned()))
    }

    fn time(&self, i: usize) -> Result<std::time::SystemTime, ReadError> {
        let text = self.cell(i);
        rfc3339::parse(text).map_err(|e| self.bad(i, format!("{text:?}: {e}")))
    }

    fn text(&self, i: usize) -> String {
        untext(self.cell(i))
    }
}

fn parse_row(row: &csv::StringRecord, line: u64) -> Result<OperationRecord, ReadError> {
    let r = Row { row, line };
    let metadata_text = r.text(22);
    let metadata = if metadata_text.is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(&metadata_text).map_err(|e| r.bad(22, e.to_string()))?
    };
    let devices_text = r.cell(23);
    let gpu_devices = if devices_text.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(devices_text).map_err(|e| r.bad(23, e.to_string()))?
    };
    Ok(OperationRecord {
        operation_id: r.text(0),
        operation_type: r.text(1),
        strategy: r.text(2),
        start_time: r.time(3)?,
        end_time: r.time(4)?,
        duration_seconds: r.req(5)?,
        success: r.req(6)?,
        error_message: Some(r.text(7)).filter(|e| !e.is_empty()),
        frames_processed: r.opt(8)?,
        segments: r.opt(9)?,
        input_resolution: r.opt(10)?,
        output_resolution: r.opt(11)?,
        scale_factor: r.opt(12)?,
        quality_score: r.opt(13)?,
        enhancement_factor: r.opt(14)?,
        peak_memory_mb: r.opt(15)?,
        peak_gpu_memory_mb: r.opt(16)?,
        cpu_utilization_percent: r.opt(17)?,
        gpu_utilization_percent: r.opt(18)?,
        samples: r.opt(19)?,
        trace_id: r.text(20),
        span_id: r.text(21),
        metadata,
        gpu_devices,
    })
}
