//! Panic policy of the harnesses.
//!
//! `waymark-core` deliberately catches panics raised inside the Automerge decoder and reports
//! the input as `Corrupt`; libfuzzer-sys's default hook would abort on those caught panics too.
//! [`run`] replaces that hook with one that only remembers the message, and aborts (so libFuzzer
//! saves the input) when a panic escapes the harness. Set `WAYMARK_FUZZ_CAUGHT_PANICS=abort` to
//! keep libfuzzer-sys's hook instead and hunt the caught ones too (upstream decoder bugs).

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("WAYMARK_FUZZ_CAUGHT_PANICS").as_deref() == Ok("abort") {
            return;
        }
        std::panic::set_hook(Box::new(|info| {
            let message = format!("{info}");
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
        }));
    });
}

/// Runs one harness call; a panic that escapes it prints its message and aborts the process.
pub fn run(harness: impl FnOnce()) {
    install_hook();
    if catch_unwind(AssertUnwindSafe(harness)).is_err() {
        let message = LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        eprintln!("panic escaped the harness: {message}");
        std::process::abort();
    }
}
