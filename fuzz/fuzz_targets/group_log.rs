#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| runnel_broker::fuzzing::group_log(data));
