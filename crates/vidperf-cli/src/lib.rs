//! The `vidperf` command's parts: reading a side of a comparison (an export file or a
//! live service) and writing the result as a table, Markdown or JSON.

pub mod input;
pub mod render;
