//! The lenient config reader and validation, any text: no panic, and an error names the file.
#![no_main]

use emstail::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let path = Path::new("/etc/emstail/config.ini");
    match Config::from_str(path, &text) {
        Ok(config) => {
            let _ = config.render();
        }
        Err(e) => assert!(
            e.to_string().starts_with("/etc/emstail/config.ini"),
            "an error names the file: {e}"
        ),
    }
});
