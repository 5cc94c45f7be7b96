//! Fetched record bytes never pass through user space.
//!
//! How this is shown: `server::reply::write_reply` is the only code that writes to client
//! sockets, and it counts what it writes from memory (`bytes_written`: frame heads and
//! protobuf bodies) apart from what it sends from segment files with `sendfile(2)`
//! (`bytes_sendfile`). This test fetches megabytes of records and checks that every
//! record byte went through `sendfile` and that the bytes written from memory are only a
//! few hundred per response. If the fetch path ever read a region into a buffer and
//! wrote it (a user-space copy), `bytes_written` would grow by megabytes and this fails.
//! A counting wrapper is used rather than tracing syscalls (strace is not always there);
//! the counters themselves sit beside the `sendfile` call, not in a test double.

mod common;

use runnel_broker::server::{ServerConfig, ServerStats};
use runnel_protocol::messages::Acks;
use runnel_protocol::RecordBatch;

use common::wire::{TestServer, Wire};

#[test]
fn fetched_records_go_out_by_sendfile_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path(), ServerConfig::default());
    let mut c = Wire::connect(s.addr);
    c.create_topic("t", 1, &[("flush.policy", "os")]);
    let mut produced = 0usize;
    for i in 0..128 {
        let b = common::batch(i, 32, 1_000, 1_000);
        produced += b.len();
        c.produce("t", 0, Acks::Leader, &b);
    }
    assert!(produced > 4_000_000);

    let written_before = ServerStats::get(&s.stats().bytes_written);
    let sent_before = ServerStats::get(&s.stats().bytes_sendfile);
    let mut fetched = 0usize;
    let mut offset = 0i64;
    let mut responses = 0u64;
    while offset < 128 * 32 {
        let (_, records) = c.fetch("t", 0, offset, 0);
        responses += 1;
        for b in RecordBatch::split_all(records.clone()).unwrap() {
            offset = b.header().next_offset();
        }
        fetched += records.len();
    }
    assert_eq!(fetched, produced);
    let written = ServerStats::get(&s.stats().bytes_written) - written_before;
    let sent = ServerStats::get(&s.stats().bytes_sendfile) - sent_before;
    assert_eq!(sent as usize, fetched, "every record byte is sent with sendfile");
    assert!(
        written < 512 * responses,
        "{written} bytes written from memory for {responses} responses: records were copied"
    );
    s.shutdown();
}
