//! Fuzzes the config loader: parsing and layering must never panic, whatever the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use moat_policy::SandboxPolicy;
use moat_policy::config::{self, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(layer) = config::parse(text, Path::new("fuzz.toml")) else { return };
    let home = Path::new("/home/u");
    for origin in [Origin::User("/u.toml".into()), Origin::Workspace("/w.toml".into())] {
        let mut policy = SandboxPolicy::with_home("/home/u/p".into(), Some(home));
        let mut sources = config::default_sources();
        let _ = config::apply(&mut policy, &mut sources, &layer, &origin, Some("ci"), Some(home));
    }
});
