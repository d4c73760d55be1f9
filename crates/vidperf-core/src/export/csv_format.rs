//! The CSV export: one row per operation, RFC 4180 quoting, UTF-8.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use std::borrow::Cow;

use super::{ReadError, WriteError};
use crate::figure::Figure;
use crate::record::OperationRecord;
use crate::wire::{self, rfc3339};

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

/// One CSV column: a field with its name, how a record's cell is written and how it is
/// read back; or a resource figure, written in its wire unit under its JSON key.
enum Column {
    Field {
        name: &'static str,
        write: fn(&OperationRecord) -> Result<Cow<'_, str>, WriteError>,
        read: fn(&mut OperationRecord, &str) -> Result<(), String>,
    },
    Figure(Figure),
}

impl Column {
    const fn name(&self) -> &'static str {
        match self {
            Self::Field { name, .. } => name,
            Self::Figure(f) => f.def().json,
        }
    }

    fn write<'r>(&self, record: &'r OperationRecord) -> Result<Cow<'r, str>, WriteError> {
        match self {
            Self::Field { write, .. } => write(record),
            Self::Figure(f) => {
                Ok(opt_float(record.figures.get(*f).map(|v| wire::to_wire(f.def(), v))).into())
            }
        }
    }

    fn read(&self, record: &mut OperationRecord, cell: &str) -> Result<(), String> {
        match self {
            Self::Field { read, .. } => read(record, cell),
            Self::Figure(f) => {
                let value = parse::<f64>(cell)?
                    .map(|v| wire::from_wire(f.def(), v))
                    .transpose()?;
                record.figures.set(*f, value);
                Ok(())
            }
        }
    }
}

/// Reads an optional cell: empty is `None`.
fn parse<T: std::str::FromStr>(cell: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    if cell.is_empty() {
        return Ok(None);
    }
    cell.parse().map(Some).map_err(|e| format!("{cell:?}: {e}"))
}

/// Reads a required cell.
fn required<T: std::str::FromStr>(cell: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    parse(cell)?.ok_or_else(|| "empty".to_owned())
}

fn time(cell: &str) -> Result<std::time::SystemTime, String> {
    rfc3339::parse(cell).map_err(|e| format!("{cell:?}: {e}"))
}

fn json_cell<T: serde::Serialize>(value: &T, empty: bool) -> Result<Cow<'static, str>, WriteError> {
    if empty {
        return Ok(Cow::Borrowed(""));
    }
    serde_json::to_string(value)
        .map(Cow::Owned)
        .map_err(WriteError::Json)
}

fn read_json_cell<T: serde::de::DeserializeOwned + Default>(cell: &str) -> Result<T, String> {
    if cell.is_empty() {
        Ok(T::default())
    } else {
        serde_json::from_str(cell).map_err(|e| e.to_string())
    }
}

/// Every column, in order: the one list the writer, the reader and [`CSV_COLUMNS`] use.
/// Stable: new columns are only ever appended.
const COLUMNS: &[Column] = &[
    Column::Field {
        name: "operation_id",
        write: |r| Ok(text_cell(&r.operation_id)),
        read: |r, c| {
            r.operation_id = untext(c);
            Ok(())
        },
    },
    Column::Field {
        name: "operation_type",
        write: |r| Ok(text_cell(&r.operation_type)),
        read: |r, c| {
            r.operation_type = untext(c);
            Ok(())
        },
    },
    Column::Field {
        name: "strategy",
        write: |r| Ok(text_cell(&r.strategy)),
        read: |r, c| {
            r.strategy = untext(c);
            Ok(())
        },
    },
    Column::Field {
        name: "start_time",
        write: |r| Ok(rfc3339::format(r.start_time).into()),
        read: |r, c| {
            r.start_time = time(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "end_time",
        write: |r| Ok(rfc3339::format(r.end_time).into()),
        read: |r, c| {
            r.end_time = time(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "duration_seconds",
        write: |r| Ok(float(r.duration_seconds).into()),
        read: |r, c| {
            r.duration_seconds = required(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "success",
        write: |r| Ok(r.success.to_string().into()),
        read: |r, c| {
            r.success = required(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "error_message",
        write: |r| {
            Ok(r.error_message
                .as_deref()
                .map(text_cell)
                .unwrap_or_default())
        },
        read: |r, c| {
            r.error_message = Some(untext(c)).filter(|e| !e.is_empty());
            Ok(())
        },
    },
    Column::Field {
        name: "frames_processed",
        write: |r| Ok(opt(r.frames_processed).into()),
        read: |r, c| {
            r.frames_processed = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "segments",
        write: |r| Ok(opt(r.segments).into()),
        read: |r, c| {
            r.segments = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "input_resolution",
        write: |r| Ok(opt(r.input_resolution).into()),
        read: |r, c| {
            r.input_resolution = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "output_resolution",
        write: |r| Ok(opt(r.output_resolution).into()),
        read: |r, c| {
            r.output_resolution = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "scale_factor",
        write: |r| Ok(opt_float(r.scale_factor).into()),
        read: |r, c| {
            r.scale_factor = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "quality_score",
        write: |r| Ok(opt_float(r.quality_score).into()),
        read: |r, c| {
            r.quality_score = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "enhancement_factor",
        write: |r| Ok(opt_float(r.enhancement_factor).into()),
        read: |r, c| {
            r.enhancement_factor = parse(c)?;
            Ok(())
        },
    },
    Column::Figure(Figure::ProcessMemory),
    Column::Figure(Figure::GpuMemory),
    Column::Figure(Figure::ProcessCpu),
    Column::Figure(Figure::GpuUtilization),
    Column::Field {
        name: "samples",
        write: |r| Ok(opt(r.samples).into()),
        read: |r, c| {
            r.samples = parse(c)?;
            Ok(())
        },
    },
    Column::Field {
        name: "trace_id",
        write: |r| Ok(text_cell(&r.trace_id)),
        read: |r, c| {
            r.trace_id = untext(c);
            Ok(())
        },
    },
    Column::Field {
        name: "span_id",
        write: |r| Ok(text_cell(&r.span_id)),
        read: |r, c| {
            r.span_id = untext(c);
            Ok(())
        },
    },
    Column::Field {
        name: "metadata",
        write: |r| {
            let text = json_cell(&r.metadata, r.metadata.is_empty())?;
            Ok(Cow::Owned(text_cell(&text).into_owned()))
        },
        read: |r, c| {
            r.metadata = read_json_cell::<BTreeMap<_, _>>(&untext(c))?;
            Ok(())
        },
    },
    Column::Field {
        name: "gpu_devices",
        write: |r| json_cell(&r.gpu_devices, r.gpu_devices.is_empty()),
        read: |r, c| {
            r.gpu_devices = read_json_cell(c)?;
            Ok(())
        },
    },
];

/// The CSV columns, in order. Stable: new columns are only ever appended.
pub const CSV_COLUMNS: [&str; COLUMNS.len()] = {
    let mut names = [""; COLUMNS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = COLUMNS[i].name();
        i += 1;
    }
    names
};

/// Writes a header and one row per record.
pub fn write_csv<W: Write>(out: W, records: &[OperationRecord]) -> Result<(), WriteError> {
    write_csv_from(out, records.iter())
}

/// [`write_csv`] from records given one at a time (each dropped once written).
pub fn write_csv_from<W, R>(out: W, records: impl IntoIterator<Item = R>) -> Result<(), WriteError>
where
    W: Write,
    R: std::borrow::Borrow<OperationRecord>,
{
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_COLUMNS).map_err(csv_error)?;
    for record in records {
        let r = record.borrow();
        let mut row: Vec<Cow<'_, str>> = Vec::with_capacity(COLUMNS.len());
        for column in COLUMNS {
            row.push(column.write(r)?);
        }
        writer
            .write_record(row.iter().map(|c| c.as_bytes()))
            .map_err(csv_error)?;
    }
    writer.flush()?;
    Ok(())
}

fn csv_error(e: csv::Error) -> WriteError {
    match split_io(e) {
        Ok(io) => WriteError::from(io),
        Err(e) => WriteError::Csv(e),
    }
}

/// The I/O error inside a CSV error, or the CSV error itself when it is
/// about the data.
fn split_io(e: csv::Error) -> Result<std::io::Error, csv::Error> {
    if !e.is_io_error() {
        return Err(e);
    }
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Ok(io),
        // `is_io_error` said it was one.
        other => Ok(std::io::Error::other(format!("{other:?}"))),
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
        let mut record = OperationRecord::blank();
        for (k, column) in COLUMNS.iter().enumerate() {
            column
                .read(&mut record, row.get(k).unwrap_or_default())
                .map_err(|message| ReadError::Field {
                    row: i as u64 + 1,
                    column: column.name(),
                    message,
                })?;
        }
        record.cancelled =
            !record.success && record.error_message.as_deref() == Some(crate::CANCELLED);
        out.push(record);
    }
    Ok(out)
}

fn read_error(e: csv::Error) -> ReadError {
    match split_io(e) {
        Ok(io) => ReadError::Io(io),
        Err(e) => ReadError::Csv(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figure::FIGURES;

    #[test]
    fn the_figure_columns_are_the_tables() {
        let in_csv: Vec<Figure> = COLUMNS
            .iter()
            .filter_map(|c| match c {
                Column::Figure(f) => Some(*f),
                Column::Field { .. } => None,
            })
            .collect();
        let table: Vec<Figure> = FIGURES.iter().filter(|d| d.csv).map(|d| d.figure).collect();
        assert_eq!(in_csv, table);
    }
}
