//! A linearizability checker for single-key register histories, after Wing & Gong (1993) with
//! Lowe's memoisation ("Testing for linearizability", 2017).
//!
//! A history is a set of completed operations, each with the (monotonic) time it was invoked
//! and the time its answer arrived. It is linearizable if the operations can be ordered so that
//! (1) an operation that returned before another was invoked comes first, and (2) replaying the
//! order on a sequential register gives every read the value it returned. The search walks the
//! invocation/response events in time order, tries to linearize each pending operation at the
//! front, backtracks when a response is reached whose operation could not be placed, and
//! remembers (linearized set, register value) pairs already explored so each is tried once.
//!
//! Operations whose outcome is unknown (an error that may or may not have applied) must be left
//! out by the caller, or recorded as completing at the end of the history; failed writes that
//! certainly did not apply (a lock conflict) are simply left out.

use std::collections::HashSet;

/// One completed operation on the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Invocation time (any monotonic unit).
    pub call: u64,
    /// Response time; at least `call`.
    pub ret: u64,
    /// What it did.
    pub kind: Kind,
}

/// A register operation and its observed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Stored the value.
    Write(Vec<u8>),
    /// Read this value (`None`: the key was absent).
    Read(Option<Vec<u8>>),
    /// Removed the key.
    Remove,
}

/// Why a history is not linearizable: the operation that could not be placed when the search
/// got furthest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not linearizable: no order places operation {index} ({operation:?})")]
pub struct Violation {
    /// Its index in the history.
    pub index: usize,
    /// The operation.
    pub operation: Operation,
}

/// Checks `history` against a register that starts as `initial`.
pub fn check(history: &[Operation], initial: Option<Vec<u8>>) -> Result<(), Violation> {
    let mut events = Events::new(history);
    let mut state = initial;
    let mut linearized = Bits::new(history.len());
    let mut seen: HashSet<(Bits, Option<Vec<u8>>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    // The response met with the most operations linearized: the op a violation blames.
    let mut blame: Option<(usize, usize)> = None;
    let mut cursor = events.first();
    while let Some(at) = cursor {
        let Some(event) = events.event(at) else {
            break;
        };
        if event.is_call {
            let op = history.get(event.op).map(|o| &o.kind);
            if let Some(next) = op.and_then(|kind| apply(&state, kind)) {
                let mut tried = linearized.clone();
                tried.set(event.op, true);
                if seen.insert((tried.clone(), next.clone())) {
                    stack.push((at, state));
                    state = next;
                    linearized = tried;
                    events.lift(at);
                    cursor = events.first();
                    continue;
                }
            }
            cursor = events.next(at);
        } else {
            // A response whose operation is not linearized yet: undo the last choice.
            if blame.is_none_or(|(depth, _)| stack.len() > depth) {
                blame = Some((stack.len(), event.op));
            }
            let Some((call_at, previous)) = stack.pop() else {
                let index = blame.map_or(event.op, |(_, op)| op);
                return Err(Violation {
                    index,
                    operation: history.get(index).cloned().unwrap_or(Operation {
                        call: 0,
                        ret: 0,
                        kind: Kind::Remove,
                    }),
                });
            };
            state = previous;
            if let Some(e) = events.event(call_at) {
                linearized.set(e.op, false);
            }
            events.unlift(call_at);
            cursor = events.next(call_at);
        }
    }
    Ok(())
}

/// The register after `kind`, if `kind` can happen in `state`.
fn apply(state: &Option<Vec<u8>>, kind: &Kind) -> Option<Option<Vec<u8>>> {
    match kind {
        Kind::Write(v) => Some(Some(v.clone())),
        Kind::Remove => Some(None),
        Kind::Read(seen) => (seen == state).then(|| state.clone()),
    }
}

/// A fixed-size set of operation indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize, on: bool) {
        if let Some(word) = self.0.get_mut(i / 64) {
            let bit = 1u64 << (i % 64);
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
}

/// Invocation and response events in time order, as a doubly linked list that operations are
/// lifted out of (both their events) while they are tentatively linearized.
struct Events {
    list: Vec<Event>,
    /// Index of each event's neighbours; `None` at the ends.
    prev: Vec<Option<usize>>,
    next: Vec<Option<usize>>,
    head: Option<usize>,
    /// For each call event, its response event.
    partner: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

impl Events {
    fn new(history: &[Operation]) -> Self {
        // (time, calls before responses at equal times, op)
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (i, op) in history.iter().enumerate() {
            order.push((op.call, false, i));
            order.push((op.ret.max(op.call), true, i));
        }
        order.sort_unstable();
        let list: Vec<Event> = order
            .iter()
            .map(|&(_, is_ret, op)| Event {
                op,
                is_call: !is_ret,
            })
            .collect();
        let n = list.len();
        let mut ret_of = vec![0; history.len()];
        for (at, e) in list.iter().enumerate() {
            if !e.is_call {
                if let Some(slot) = ret_of.get_mut(e.op) {
                    *slot = at;
                }
            }
        }
        let partner = list
            .iter()
            .map(|e| ret_of.get(e.op).copied().unwrap_or(0))
            .collect();
        Events {
            list,
            prev: (0..n).map(|i| i.checked_sub(1)).collect(),
            next: (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect(),
            head: (n > 0).then_some(0),
            partner,
        }
    }

    fn first(&self) -> Option<usize> {
        self.head
    }

    fn next(&self, at: usize) -> Option<usize> {
        self.next.get(at).copied().flatten()
    }

    fn event(&self, at: usize) -> Option<Event> {
        self.list.get(at).copied()
    }

    /// Removes the call event at `at` and its response.
    fn lift(&mut self, at: usize) {
        let ret = self.partner.get(at).copied().unwrap_or(at);
        self.unlink(ret);
        self.unlink(at);
    }

    /// Puts back what [`Self::lift`] removed (in reverse order).
    fn unlift(&mut self, at: usize) {
        let ret = self.partner.get(at).copied().unwrap_or(at);
        self.relink(at);
        self.relink(ret);
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (
            self.prev.get(at).copied().flatten(),
            self.next.get(at).copied().flatten(),
        );
        match p {
            Some(p) => {
                if let Some(slot) = self.next.get_mut(p) {
                    *slot = n;
                }
            }
            None => self.head = n,
        }
        if let Some(slot) = n.and_then(|n| self.prev.get_mut(n)) {
            *slot = p;
        }
    }

    /// Re-inserts `at` between the neighbours it still records (they are in the list again,
    /// because lifts are undone in reverse order).
    fn relink(&mut self, at: usize) {
        let (p, n) = (
            self.prev.get(at).copied().flatten(),
            self.next.get(at).copied().flatten(),
        );
        match p {
            Some(p) => {
                if let Some(slot) = self.next.get_mut(p) {
                    *slot = Some(at);
                }
            }
            None => self.head = Some(at),
        }
        if let Some(slot) = n.and_then(|n| self.prev.get_mut(n)) {
            *slot = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn w(call: u64, ret: u64, v: &str) -> Operation {
        Operation {
            call,
            ret,
            kind: Kind::Write(v.as_bytes().to_vec()),
        }
    }

    fn r(call: u64, ret: u64, v: Option<&str>) -> Operation {
        Operation {
            call,
            ret,
            kind: Kind::Read(v.map(|s| s.as_bytes().to_vec())),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(check(&[], None).is_ok());
        let ok = [
            w(0, 1, "a"),
            r(2, 3, Some("a")),
            w(4, 5, "b"),
            r(6, 7, Some("b")),
        ];
        assert!(check(&ok, None).is_ok());
        let stale = [w(0, 1, "a"), w(2, 3, "b"), r(4, 5, Some("a"))];
        let err = check(&stale, None).unwrap_err();
        assert_eq!(err.operation, stale[2]);
        assert!(check(&[r(0, 1, None)], None).is_ok());
        assert!(
            check(&[r(0, 1, Some("x"))], None).is_err(),
            "a value never written"
        );
        assert!(check(&[r(0, 1, Some("x"))], Some(b"x".to_vec())).is_ok());
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps both writes: it may see either.
        for seen in ["a", "b"] {
            let h = [w(0, 10, "a"), w(1, 9, "b"), r(2, 8, Some(seen))];
            assert!(check(&h, None).is_ok(), "{seen}");
        }
        // Two reads after both writes disagree: no single order explains them.
        let h = [
            w(0, 10, "a"),
            w(1, 9, "b"),
            r(11, 12, Some("a")),
            r(13, 14, Some("b")),
        ];
        assert!(check(&h, None).is_err());
        // A read overlapping a write sees old then new; a later read cannot go back.
        let h = [
            w(0, 1, "a"),
            w(2, 10, "b"),
            r(3, 4, Some("b")),
            r(5, 6, Some("a")),
        ];
        assert!(
            check(&h, None).is_err(),
            "new then old while the write is pending"
        );
        let h = [
            w(0, 1, "a"),
            w(2, 10, "b"),
            r(3, 4, Some("a")),
            r(5, 6, Some("b")),
        ];
        assert!(check(&h, None).is_ok());
    }

    #[test]
    fn removals_and_deep_backtracking() {
        let h = [
            w(0, 1, "a"),
            Operation {
                call: 2,
                ret: 20,
                kind: Kind::Remove,
            },
            w(3, 19, "b"),
            r(4, 5, Some("a")),
            r(6, 7, Some("b")),
            r(21, 22, None),
        ];
        // a, then (read a), write b, (read b), remove, read none.
        assert!(check(&h, None).is_ok());
        let mut bad = h.to_vec();
        bad.push(r(23, 24, Some("b")));
        assert!(check(&bad, None).is_err());
    }

    #[test]
    fn many_overlapping_clients_are_checked_quickly() {
        // 8 clients, each writing its own values and reading back, interleaved finely.
        let mut h = Vec::new();
        for step in 0..400u64 {
            let t = step * 10;
            let v = format!("v{step}");
            h.push(w(t, t + 25, &v));
            h.push(r(t + 30, t + 31, Some(&v)));
        }
        // Reads at t+30 overlap the next write (issued at t+10, returning at t+35).
        assert!(check(&h, None).is_ok());
    }
}
