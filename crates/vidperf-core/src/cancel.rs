//! Cancellation: telling a future that was dropped before it completed from one that
//! finished. A plain `tracing` span cannot: it closes the same way whether the future
//! returned `Ready` or was dropped by a timeout, so the code that owns the future says
//! it — `#[vidperf::track]` on an `async fn` does (through [`CancelGuard`]), and
//! [`CancelExt::cancel_aware`] does for an instrumented future you spawn.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;
use tracing::instrument::Instrumented;

use crate::layer::record_cancelled;

/// Marks its span cancelled when dropped before [`CancelGuard::completed`] (and not
/// while a panic unwinds: that is a failure, which the layer records). What
/// `#[vidperf::track]` puts around an `async fn`'s body; not public API.
#[doc(hidden)]
#[derive(Debug)]
pub struct CancelGuard<'a> {
    span: &'a Span,
    completed: bool,
}

impl<'a> CancelGuard<'a> {
    /// Watches `span`.
    pub fn new(span: &'a Span) -> Self {
        Self {
            span,
            completed: false,
        }
    }

    /// The body returned: not a cancellation.
    pub fn completed(mut self) {
        self.completed = true;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if !self.completed && !std::thread::panicking() {
            record_cancelled(self.span);
        }
    }
}

/// An instrumented future that records its span cancelled when it is dropped before it
/// completes; see [`CancelExt::cancel_aware`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct CancelAware<F> {
    inner: Pin<Box<Instrumented<F>>>,
    completed: bool,
}

/// `.cancel_aware()` on an instrumented future: one line to make a plain span tell a
/// timeout or an abort from completion.
///
/// ```
/// use tracing::Instrument as _;
/// use vidperf_core::CancelExt as _;
///
/// let work = async { /* ... */ }
///     .instrument(tracing::info_span!("upscale", strategy = "vsrm"))
///     .cancel_aware();
/// # drop(work);
/// ```
pub trait CancelExt: Sized {
    /// The future, its span marked cancelled if it is dropped before it completes.
    fn cancel_aware(self) -> CancelAware<Self::Inner>;

    /// The future being instrumented.
    type Inner;
}

impl<F: Future> CancelExt for Instrumented<F> {
    type Inner = F;

    fn cancel_aware(self) -> CancelAware<F> {
        CancelAware {
            inner: Box::pin(self),
            completed: false,
        }
    }
}

impl<F: Future> Future for CancelAware<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_ready() {
            self.completed = true;
        }
        poll
    }
}

impl<F> Drop for CancelAware<F> {
    fn drop(&mut self) {
        if !self.completed && !std::thread::panicking() {
            record_cancelled(self.inner.span());
        }
    }
}
