//! NVTX ranges for `tracing` spans, for [vidperf](https://docs.rs/vidperf): under Nsight
//! Systems every span shows as a named range on the timeline of the thread that runs it,
//! nested as the spans are, in the domain `vidperf`. An operation (a span with a
//! `strategy` field) is named `"{operation} {strategy}"`, e.g. `enhancement seedvr2`, the
//! name vidperf's other outputs use; any other span by its name.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! // `Some` only when a tool is attached (Nsight Systems sets NVTX_INJECTION64_PATH):
//! // without one the layer is not there at all and costs nothing.
//! let nvtx = vidperf_nvtx::NvtxLayer::if_attached();
//! tracing_subscriber::registry().with(nvtx).init();
//! ```
//!
//! The `vidperf` facade adds this layer in `install()` when its `nvtx` feature is on.
//!
//! # How it works
//!
//! NVTX is a protocol more than a library: a program's NVTX calls go through function
//! pointers that start out empty, and on the first call the client loads the tool named by
//! `NVTX_INJECTION64_PATH`, calls its `InitializeInjectionNvtx2` with an export table, and
//! the tool fills in the pointers it implements. This crate is such a client, written
//! against NVIDIA's headers (`nvtx3/nvtxDetail/nvtxInit.h`, `nvtxTypes.h`) in a few lines
//! of Rust: no bindgen, no C compiler, no CUDA toolkit at build time. The tool is loaded
//! once, when [`NvtxLayer::if_attached`] is first called (never on the span path).
//!
//! Push and pop ranges follow `tracing`'s enter and exit, which are per thread like NVTX's:
//! a span entered several times (an async task polled on different threads) shows as one
//! range per time it ran, on the thread it ran on.
//!
//! Tested against a fake injection tool that records every call (`vidperf-fake-nvml`).

#![cfg_attr(test, deny(warnings))]
// reason: NVTX is a C ABI reached through function pointers a loaded library fills in;
// every unsafe block names what it relies on.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_uint, c_void};
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Subscriber, span};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use vidperf_core::fields;

/// The environment variable naming the tool library (64-bit processes).
pub const INJECTION_PATH_VAR: &str = "NVTX_INJECTION64_PATH";

/// The NVTX domain every range is recorded in.
pub const DOMAIN: &str = "vidperf";

// ---- NVTX v3 ABI (nvtxTypes.h, nvToolsExt.h) ----

type FunctionPointer = *mut c_void;
type GetExportTable = unsafe extern "C" fn(u32) -> *const c_void;
type InitializeInjection = unsafe extern "C" fn(GetExportTable) -> c_int;
type GetModuleFunctionTable =
    unsafe extern "C" fn(c_int, *mut *mut *mut FunctionPointer, *mut c_uint) -> c_int;

const ETID_CALLBACKS: u32 = 1;
const ETID_VERSIONINFO: u32 = 3;
const MODULE_CORE: c_int = 1;
const MODULE_CORE2: c_int = 5;
/// The NVTX API version this client implements.
const NVTX_VERSION: u32 = 3;

/// `NvtxCallbackIdCore`: ids 1..=15; slot 0 is never used.
const CORE_SIZE: usize = 16;
const CORE_RANGE_PUSH_EX: usize = 8;
const CORE_RANGE_POP: usize = 11;
/// `NvtxCallbackIdCore2`: ids 1..=15.
const CORE2_SIZE: usize = 16;
const CORE2_DOMAIN_RANGE_PUSH_EX: usize = 4;
const CORE2_DOMAIN_RANGE_POP: usize = 5;
const CORE2_DOMAIN_CREATE_A: usize = 12;

#[repr(C)]
struct ExportTableCallbacks {
    struct_size: usize,
    get_module_function_table: GetModuleFunctionTable,
}

#[repr(C)]
struct ExportTableVersionInfo {
    struct_size: usize,
    version: u32,
    reserved0: u32,
    set_injection_nvtx_version: unsafe extern "C" fn(u32),
}

/// `nvtxEventAttributes_v2`.
#[repr(C)]
struct EventAttributes {
    version: u16,
    size: u16,
    category: u32,
    color_type: i32,
    color: u32,
    payload_type: i32,
    reserved0: i32,
    payload: u64,
    message_type: i32,
    message: *const c_char,
}

const EVENT_ATTRIB_STRUCT_VERSION: u16 = 2;
const MESSAGE_TYPE_ASCII: i32 = 1;
const _: () = assert!(std::mem::size_of::<EventAttributes>() == 48);

type DomainCreateA = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type DomainRangePushEx = unsafe extern "C" fn(*mut c_void, *const EventAttributes) -> c_int;
type DomainRangePop = unsafe extern "C" fn(*mut c_void) -> c_int;
type RangePushEx = unsafe extern "C" fn(*const EventAttributes) -> c_int;
type RangePop = unsafe extern "C" fn() -> c_int;

/// The client's function-pointer slots, which the tool fills in through the module
/// tables. `AtomicPtr<c_void>` has the layout of the `void*` the tool writes.
struct Slots {
    core: [AtomicPtr<c_void>; CORE_SIZE],
    core2: [AtomicPtr<c_void>; CORE2_SIZE],
}

static SLOTS: Slots = Slots {
    core: [const { AtomicPtr::new(std::ptr::null_mut()) }; CORE_SIZE],
    core2: [const { AtomicPtr::new(std::ptr::null_mut()) }; CORE2_SIZE],
};

/// A module table: pointers to the slots, indexed by callback id (0 left null).
struct Table<const N: usize>([*mut FunctionPointer; N]);

// SAFETY: the pointers point into `SLOTS`, a static of atomics, valid on every thread.
unsafe impl<const N: usize> Send for Table<N> {}
// SAFETY: as above; the table itself is only read after it is built.
unsafe impl<const N: usize> Sync for Table<N> {}

fn table<const N: usize>(slots: &'static [AtomicPtr<c_void>; N]) -> Table<N> {
    let mut t = [std::ptr::null_mut(); N];
    for (entry, slot) in t.iter_mut().zip(slots).skip(1) {
        *entry = slot.as_ptr();
    }
    Table(t)
}

static CORE_TABLE: OnceLock<Table<CORE_SIZE>> = OnceLock::new();
static CORE2_TABLE: OnceLock<Table<CORE2_SIZE>> = OnceLock::new();

unsafe extern "C" fn get_module_function_table(
    module: c_int,
    out_table: *mut *mut *mut FunctionPointer,
    out_size: *mut c_uint,
) -> c_int {
    if out_table.is_null() || out_size.is_null() {
        return 0;
    }
    let (ptr, size) = match module {
        MODULE_CORE => {
            let t = CORE_TABLE.get_or_init(|| table(&SLOTS.core));
            (t.0.as_ptr(), CORE_SIZE)
        }
        MODULE_CORE2 => {
            let t = CORE2_TABLE.get_or_init(|| table(&SLOTS.core2));
            (t.0.as_ptr(), CORE2_SIZE)
        }
        _ => return 0,
    };
    // SAFETY: both out-pointers were checked non-null; the tool passes its own locals.
    // The table lives in a static, so the pointer stays valid; the tool writes through
    // its entries (into `SLOTS`), never into the table itself.
    unsafe {
        *out_table = ptr.cast_mut();
        *out_size = size as c_uint;
    }
    1
}

unsafe extern "C" fn set_injection_nvtx_version(_version: u32) {}

static CALLBACKS: ExportTableCallbacks = ExportTableCallbacks {
    struct_size: std::mem::size_of::<ExportTableCallbacks>(),
    get_module_function_table,
};

static VERSION_INFO: ExportTableVersionInfo = ExportTableVersionInfo {
    struct_size: std::mem::size_of::<ExportTableVersionInfo>(),
    version: NVTX_VERSION,
    reserved0: 0,
    set_injection_nvtx_version,
};

unsafe extern "C" fn get_export_table(id: u32) -> *const c_void {
    match id {
        ETID_CALLBACKS => (&raw const CALLBACKS).cast(),
        ETID_VERSIONINFO => (&raw const VERSION_INFO).cast(),
        _ => std::ptr::null(),
    }
}

/// The loaded tool and the functions this layer calls.
#[derive(Debug)]
struct Client {
    /// Kept loaded for the life of the process, as NVTX does.
    _library: libloading::Library,
    ranges: Ranges,
}

#[derive(Clone, Copy, Debug)]
enum Ranges {
    /// In the `vidperf` domain (NVTX v2+ tools).
    Domain {
        domain: usize,
        push: DomainRangePushEx,
        pop: DomainRangePop,
    },
    /// In the default domain (a tool without domains).
    Core { push: RangePushEx, pop: RangePop },
}

/// Why no tool was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotAttached {
    /// `NVTX_INJECTION64_PATH` is not set (no profiler is attached).
    NoTool,
    /// The library could not be loaded.
    Load(String),
    /// The library has no `InitializeInjectionNvtx2`: not an NVTX tool.
    NotATool(String),
    /// The tool's initialisation returned failure.
    Refused,
    /// The tool implements neither domain nor default-domain push and pop ranges.
    NoRanges,
}

impl std::fmt::Display for NotAttached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoTool => write!(f, "{INJECTION_PATH_VAR} is not set"),
            Self::Load(e) => write!(
                f,
                "cannot load the NVTX tool named by {INJECTION_PATH_VAR}: {e}"
            ),
            Self::NotATool(e) => write!(
                f,
                "the library named by {INJECTION_PATH_VAR} is not an NVTX tool: {e}"
            ),
            Self::Refused => f.write_str("the NVTX tool refused to initialise"),
            Self::NoRanges => f.write_str("the NVTX tool implements no push/pop ranges"),
        }
    }
}

impl std::error::Error for NotAttached {}

static CLIENT: OnceLock<Result<Client, NotAttached>> = OnceLock::new();

fn slot(slots: &[AtomicPtr<c_void>], id: usize) -> Option<*mut c_void> {
    Some(slots[id].load(Ordering::Acquire)).filter(|p| !p.is_null())
}

fn attach() -> Result<Client, NotAttached> {
    let path = std::env::var_os(INJECTION_PATH_VAR)
        .filter(|p| !p.is_empty())
        .ok_or(NotAttached::NoTool)?;
    // SAFETY: loading the tool runs its initialisers; that is what NVTX does with this
    // variable, and what the user who set it asked for.
    let library =
        unsafe { libloading::Library::new(&path) }.map_err(|e| NotAttached::Load(e.to_string()))?;
    // SAFETY: the symbol's type is NVTX's `NvtxInitializeInjectionNvtxFunc_t`.
    let init = unsafe { library.get::<InitializeInjection>(b"InitializeInjectionNvtx2\0") }
        .map_err(|e| NotAttached::NotATool(e.to_string()))?;
    // SAFETY: `get_export_table` follows NVTX's contract: it returns static tables that
    // outlive the tool, or null for ids it does not know.
    if unsafe { init(get_export_table) } == 0 {
        return Err(NotAttached::Refused);
    }
    let core2 = |id| slot(&SLOTS.core2, id);
    let ranges = match (
        core2(CORE2_DOMAIN_CREATE_A),
        core2(CORE2_DOMAIN_RANGE_PUSH_EX),
        core2(CORE2_DOMAIN_RANGE_POP),
    ) {
        (Some(create), Some(push), Some(pop)) => {
            // SAFETY: the tool wrote these slots with functions of NVTX's signatures for
            // these callback ids (nvtxImplCore2_v3.h).
            let (create, push, pop) = unsafe {
                (
                    std::mem::transmute::<*mut c_void, DomainCreateA>(create),
                    std::mem::transmute::<*mut c_void, DomainRangePushEx>(push),
                    std::mem::transmute::<*mut c_void, DomainRangePop>(pop),
                )
            };
            let name = CString::new(DOMAIN).map_err(|_| NotAttached::NoRanges)?;
            // SAFETY: a NUL-terminated name; the tool copies it.
            let domain = unsafe { create(name.as_ptr()) } as usize;
            Ranges::Domain { domain, push, pop }
        }
        _ => match (
            slot(&SLOTS.core, CORE_RANGE_PUSH_EX),
            slot(&SLOTS.core, CORE_RANGE_POP),
        ) {
            (Some(push), Some(pop)) => {
                // SAFETY: as above, for the core module's ids (nvtxImplCore.h).
                let (push, pop) = unsafe {
                    (
                        std::mem::transmute::<*mut c_void, RangePushEx>(push),
                        std::mem::transmute::<*mut c_void, RangePop>(pop),
                    )
                };
                Ranges::Core { push, pop }
            }
            _ => return Err(NotAttached::NoRanges),
        },
    };
    Ok(Client {
        _library: library,
        ranges,
    })
}

fn client() -> Result<&'static Client, &'static NotAttached> {
    CLIENT.get_or_init(attach).as_ref()
}

impl Ranges {
    fn push(self, message: &CString) {
        let attributes = EventAttributes {
            version: EVENT_ATTRIB_STRUCT_VERSION,
            size: std::mem::size_of::<EventAttributes>() as u16,
            category: 0,
            color_type: 0,
            color: 0,
            payload_type: 0,
            reserved0: 0,
            payload: 0,
            message_type: MESSAGE_TYPE_ASCII,
            message: message.as_ptr(),
        };
        // SAFETY: the functions came from the tool for these ids; the attributes and the
        // message live across the call, and NVTX tools copy what they keep.
        unsafe {
            match self {
                Self::Domain { domain, push, .. } => {
                    push(domain as *mut c_void, &attributes);
                }
                Self::Core { push, .. } => {
                    push(&attributes);
                }
            }
        }
    }

    fn pop(self) {
        // SAFETY: as in `push`; pop takes no pointer but the tool's own domain handle.
        unsafe {
            match self {
                Self::Domain { domain, pop, .. } => {
                    pop(domain as *mut c_void);
                }
                Self::Core { pop, .. } => {
                    pop();
                }
            }
        }
    }
}

/// A [`Layer`] that opens an NVTX push/pop range each time a span is entered and closes
/// it when the span exits. See the [crate documentation](crate).
#[derive(Clone, Copy, Debug)]
pub struct NvtxLayer {
    ranges: Ranges,
}

impl NvtxLayer {
    /// The layer, if an NVTX tool (a profiler such as Nsight Systems) is attached to this
    /// process; `None` otherwise, so that `registry().with(NvtxLayer::if_attached())`
    /// costs nothing outside a profiler. The tool is loaded on the first call.
    pub fn if_attached() -> Option<Self> {
        Self::attach().ok()
    }

    /// Like [`NvtxLayer::if_attached`], with the reason when there is no layer.
    pub fn attach() -> Result<Self, NotAttached> {
        client()
            .map(|c| Self { ranges: c.ranges })
            .map_err(Clone::clone)
    }
}

/// The range name kept in a span's extensions.
struct RangeName {
    name: &'static str,
    operation: Option<String>,
    strategy: Option<String>,
    message: CString,
}

impl RangeName {
    fn rebuild(&mut self) {
        let mut text = String::new();
        match &self.strategy {
            Some(strategy) => {
                let _ = write!(
                    text,
                    "{} {strategy}",
                    self.operation.as_deref().unwrap_or(self.name)
                );
            }
            None => text.push_str(self.name),
        }
        // A NUL inside a field value would end the C string early: drop it.
        text.retain(|c| c != '\0');
        self.message = CString::new(text).unwrap_or_default();
    }
}

/// Reads the `strategy` and `operation` fields.
struct NameFields<'a>(&'a mut RangeName);

impl Visit for NameFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            fields::STRATEGY => self.0.strategy = Some(value.to_owned()),
            fields::OPERATION => self.0.operation = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), fields::STRATEGY | fields::OPERATION) {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for NvtxLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut name = RangeName {
            name: attrs.metadata().name(),
            operation: None,
            strategy: None,
            message: CString::default(),
        };
        attrs.record(&mut NameFields(&mut name));
        name.rebuild();
        span.extensions_mut().insert(name);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(name) = extensions.get_mut::<RangeName>() {
            let before = (name.operation.clone(), name.strategy.clone());
            values.record(&mut NameFields(name));
            if before != (name.operation.clone(), name.strategy.clone()) {
                name.rebuild();
            }
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(name) = span.extensions().get::<RangeName>()
        {
            self.ranges.push(&name.message);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        // Only spans this layer pushed for (a span created before the layer was added
        // has no name and pushed nothing).
        if let Some(span) = ctx.span(id)
            && span.extensions().get::<RangeName>().is_some()
        {
            self.ranges.pop();
        }
    }
}
