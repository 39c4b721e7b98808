//! A recorder of the wiring a forward pass actually uses: which tensor each layer point held and
//! which tensors each module instance read and changed. Off unless [`record`] runs; then a test
//! can compare the running model with the design graph without trusting either.

use crate::sites::Point;
use candle_core::{Tensor, TensorId};
use std::cell::RefCell;

/// One module instance applied during the pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// `<module label>.layer<i>`.
    pub label: String,
    /// The tensor it read `z` from.
    pub read: TensorId,
    /// The value it changed, and what it changed it into.
    pub before: Option<TensorId>,
    pub after: TensorId,
}

/// What one recorded pass did.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    /// (layer, point, tensor) as the encoder computed them, in order.
    pub points: Vec<(usize, Point, TensorId)>,
    pub applied: Vec<Applied>,
    layer: usize,
}

impl Trace {
    /// The (layer, point) a tensor held, following a module's output back to the value it
    /// changed.
    pub fn point_of(&self, id: TensorId) -> Option<(usize, Point)> {
        let direct = self
            .points
            .iter()
            .rfind(|(_, _, t)| *t == id)
            .map(|(l, p, _)| (*l, *p));
        direct.or_else(|| {
            let a = self.applied.iter().find(|a| a.after == id)?;
            self.point_of(a.before?)
        })
    }
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// Runs `f` with recording on, and returns what it recorded.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Trace) {
    TRACE.with(|t| *t.borrow_mut() = Some(Trace::default()));
    let out = f();
    let trace = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (out, trace)
}

fn with(f: impl FnOnce(&mut Trace)) {
    TRACE.with(|t| {
        if let Some(trace) = t.borrow_mut().as_mut() {
            f(trace)
        }
    })
}

/// The encoder enters layer `layer`.
pub fn layer(layer: usize) {
    with(|t| t.layer = layer)
}

/// The current layer's `point` holds `value`.
pub fn point(point: Point, value: &Tensor) {
    with(|t| {
        let layer = t.layer;
        t.points.push((layer, point, value.id()))
    })
}

/// A module instance read `read` and changed `before` into `after`.
pub fn module(label: &str, read: &Tensor, before: &Tensor, after: &Tensor) {
    with(|t| {
        t.applied.push(Applied {
            label: label.to_string(),
            read: read.id(),
            before: Some(before.id()),
            after: after.id(),
        })
    })
}

/// A prefix joined the attention: it read `queries` and the attention produced `context`.
pub fn prefix(label: &str, queries: &Tensor, context: &Tensor) {
    with(|t| {
        t.applied.push(Applied {
            label: label.to_string(),
            read: queries.id(),
            before: None,
            after: context.id(),
        })
    })
}
