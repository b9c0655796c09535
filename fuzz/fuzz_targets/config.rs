//! The config parser is total: any bytes give a Config or a
//! `path:line:column` error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = gatehouse::core::config::Config::parse(std::path::Path::new("/f/config.toml"), &text)
    {
        let msg = e.to_string();
        assert!(msg.starts_with("/f/config.toml:"), "{msg}");
    }
});
