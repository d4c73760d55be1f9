//! Interning of strategy and operation-type names, so that an operation span does not
//! allocate for them: names repeat, and an `Arc<str>` clone is a counter increment.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Names kept in the shared table at most; beyond this, names are allocated each time
/// (so 100k distinct hostile names cost memory only while their spans live).
const MAX_SHARED: usize = 4096;
/// Names cached per thread, searched linearly.
const MAX_LOCAL: usize = 16;

thread_local! {
    static LOCAL: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

fn shared() -> &'static Mutex<HashMap<Box<str>, Arc<str>>> {
    static SHARED: OnceLock<Mutex<HashMap<Box<str>, Arc<str>>>> = OnceLock::new();
    SHARED.get_or_init(Default::default)
}

/// The shared `Arc<str>` for `name`.
pub(crate) fn intern(name: &str) -> Arc<str> {
    let cached = LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            local.iter().find(|s| &***s == name).cloned()
        })
        .ok()
        .flatten();
    if let Some(found) = cached {
        return found;
    }
    let interned = {
        let mut table = shared().lock().unwrap_or_else(PoisonError::into_inner);
        match table.get(name) {
            Some(found) => found.clone(),
            None => {
                let new: Arc<str> = Arc::from(name);
                if table.len() < MAX_SHARED {
                    table.insert(Box::from(name), new.clone());
                }
                new
            }
        }
    };
    let _ = LOCAL.try_with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            if local.len() >= MAX_LOCAL {
                local.remove(0);
            }
            local.push(interned.clone());
        }
    });
    interned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_allocation() {
        let a = intern("vsrm");
        let b = intern("vsrm");
        assert!(Arc::ptr_eq(&a, &b));
        let c = std::thread::spawn(|| intern("vsrm"))
            .join()
            .unwrap_or_else(|_| intern("x"));
        assert!(Arc::ptr_eq(&a, &c));
    }
}
