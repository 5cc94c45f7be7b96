#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| runnel_broker::fuzzing::scratch_dir("index_files"));
    runnel_broker::fuzzing::index_files(dir, data)
});
