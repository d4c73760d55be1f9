//! The `vidperf` command's parts: reading a side of a comparison (an export file or a
//! live service) and writing the result as a table, Markdown or JSON; and `vidperf
//! top`, the live view for a terminal.

pub mod input;
pub mod render;
pub mod top;
