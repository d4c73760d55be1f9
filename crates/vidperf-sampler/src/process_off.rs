//! Stand-in for the sysinfo source when the `system` feature is off: no readings.

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct ProcessSource;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessReading {
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) cpu: Option<f64>,
}

#[derive(Debug)]
pub(crate) enum ResidentReader {}

impl ResidentReader {
    pub(crate) fn new() -> Option<Self> {
        None
    }

    pub(crate) fn read(&self) -> Option<u64> {
        match *self {}
    }
}

impl ProcessSource {
    pub(crate) fn new() -> Option<Self> {
        None
    }

    pub(crate) fn read(&mut self, _now: Instant) -> ProcessReading {
        ProcessReading::default()
    }
}
