//! The daemon binary: starts on a data directory, stops cleanly on SIGTERM, leaving the
//! clean-shutdown marker; a second start finds its topics.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use runnel_broker::storage::manager::CLEAN_SHUTDOWN_FILE;
use runnel_broker::storage::{LogManager, StorageConfig};

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(StorageConfig::new(dir.path())).unwrap();
        m.create_topic("t", 2, &BTreeMap::new()).unwrap();
        // Dropped without shutdown: the daemon must recover.
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the daemon to say it has opened (and recovered) storage.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("runnel-broker started") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("the daemon starts");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let m = LogManager::open(StorageConfig::new(dir.path())).unwrap();
    assert_eq!(m.topic("t").unwrap().partitions.len(), 2);
}

#[test]
fn a_bad_data_dir_is_one_clear_line_and_a_nonzero_exit() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel-broker"))
        .arg("--data-dir")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("runnel-broker: cannot open"), "{err}");
}
