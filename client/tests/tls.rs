//! TLS between the client and the broker, with certificates made in the test (`rcgen`):
//! produce and consume over TLS (fetches copied through the TLS layer, not `sendfile`),
//! the failures a user meets (an untrusted certificate, a plaintext client on a TLS
//! port, mutual TLS without a client certificate) and the bad input a listener must
//! shrug off (garbage instead of a client hello, a client that never finishes its
//! handshake) while a good client keeps working, and a certificate reload.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use runnel_broker::net::ServerStats;
use runnel_broker::server::{Server, ServerConfig};
use runnel_broker::storage::{LogManager, StorageConfig};
use runnel_broker::tls::{Tls, TlsFiles};
use runnel_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Offset, Producer, ProducerConfig, ProducerRecord, TlsConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA, and certificates it signs, written as PEM files under `dir`.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki {
            dir: dir.to_owned(),
            ca,
            ca_key,
        }
    }

    fn ca_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// A certificate for `names` (DNS names or IP addresses) with subject CN `cn`:
    /// `(cert.pem, key.pem)`.
    fn issue(&self, file: &str, cn: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

async fn tls_broker(dir: &Path, files: TlsFiles) -> Server {
    let storage = LogManager::open(StorageConfig::new(dir.join("data"))).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(Arc::new(Tls::load(files).unwrap())),
        plaintext_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    Server::bind(storage, cfg).await.unwrap()
}

fn client(tls: TlsConfig) -> ClientConfig {
    ClientConfig {
        tls: Some(tls),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

/// Produces `n` records to `topic` and reads them back, over `config`'s connection.
async fn round_trip(addr: &str, config: &ClientConfig, topic: &str, n: usize) {
    let admin = Admin::connect_with(addr, config.clone()).await.unwrap();
    admin.create_topic(topic, 1, BTreeMap::new()).await.unwrap();
    let producer = Producer::connect(
        addr,
        ProducerConfig {
            client: config.clone(),
            ..ProducerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut sent = Vec::new();
    for i in 0..n {
        sent.push(
            producer
                .send(ProducerRecord::new(topic, format!("{topic}-{i}-{}", "x".repeat(200))))
                .await
                .unwrap(),
        );
    }
    for d in sent {
        d.await.unwrap();
    }
    producer.close().await;
    let mut consumer = Consumer::connect(
        addr,
        ConsumerConfig {
            client: config.clone(),
            ..ConsumerConfig::default()
        },
    )
    .await
    .unwrap();
    consumer.assign_topic(topic).await.unwrap();
    consumer.seek_all(Offset::Earliest).await.unwrap();
    for i in 0..n {
        let r = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a record in time")
            .unwrap()
            .unwrap();
        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        assert!(v.starts_with(&format!("{topic}-{i}-")), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_over_tls_with_fetches_copied_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "one");
    let (cert, key) = pki.issue("broker", "broker", &["localhost", "127.0.0.1"]);
    let server = tls_broker(
        dir.path(),
        TlsFiles {
            cert,
            key,
            client_ca: None,
        },
    )
    .await;
    let tls = client(TlsConfig::from_ca_file(&pki.ca_file("one")).unwrap());
    round_trip(&server.local_addr().to_string(), &tls, "secure", 300).await;
    let stats = server.stats();
    assert!(
        ServerStats::get(&stats.bytes_copied) > 300 * 200,
        "the records went out through TLS"
    );
    assert_eq!(
        ServerStats::get(&stats.bytes_sendfile),
        0,
        "no sendfile on a TLS connection"
    );
    // The plaintext listener beside it still serves with sendfile.
    let plain = server.plaintext_addr().unwrap().to_string();
    round_trip(&plain, &ClientConfig::default(), "plain", 100).await;
    assert!(ServerStats::get(&stats.bytes_sendfile) > 100 * 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_and_bad_handshakes_fail_alone_and_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "good");
    let other = Pki::new(dir.path(), "other");
    let (cert, key) = pki.issue("broker", "broker", &["127.0.0.1"]);
    let server = tls_broker(
        dir.path(),
        TlsFiles {
            cert,
            key,
            client_ca: None,
        },
    )
    .await;
    let addr = server.local_addr().to_string();
    let good = client(TlsConfig::from_ca_file(&pki.ca_file("good")).unwrap());
    let admin = Admin::connect_with(&addr, good.clone()).await.unwrap();

    // A certificate from a CA the client does not trust: a clear connect error.
    let untrusted = client(TlsConfig::from_ca_file(&other.ca_file("other")).unwrap());
    let e = Admin::connect_with(&addr, untrusted).await.err().expect("refused");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
    // A plaintext client on the TLS port: refused, not hung.
    let started = std::time::Instant::now();
    let e = Admin::connect_with(
        &addr,
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
    .await
    .err()
    .expect("a plaintext client gets nowhere");
    assert!(started.elapsed() < Duration::from_secs(6), "{e}");

    // Garbage instead of a client hello, and a client that connects and says nothing:
    // 10 000 garbage records in all, while the good client keeps working.
    let silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let before = ServerStats::get(&server.stats().tls_handshake_failures);
    // All at once: a hello that announces more than it sends waits for the rest until
    // the handshake timeout (10 s), so each gets that long to be closed.
    let mut junk_clients = Vec::new();
    for round in 0..100u64 {
        let addr = addr.clone();
        junk_clients.push(tokio::spawn(async move {
            let mut rng = 0x2545_f491_4f6c_dd1du64 ^ (round + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut junk = Vec::new();
            for _ in 0..100 {
                // A TLS record header with a random type and length, then random bytes.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let b = rng.to_le_bytes();
                junk.extend_from_slice(&[b[0] % 30 + 10, 3, b[1] % 4, b[2], b[3]]);
                junk.extend_from_slice(&b[4..]);
            }
            let _ = s.write_all(&junk).await;
            let mut buf = [0u8; 64];
            // The broker answers with an alert or closes: either way reads end.
            let limit = runnel_broker::tls::HANDSHAKE_TIMEOUT + Duration::from_secs(3);
            let closed = tokio::time::timeout(limit, async {
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "garbage client {round}: the broker neither closed nor timed out"
            );
        }));
    }
    for _ in 0..10 {
        admin.list_topics().await.expect("the good client is served meanwhile");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in junk_clients {
        c.await.unwrap();
    }
    assert!(ServerStats::get(&server.stats().tls_handshake_failures) >= before + 100);
    round_trip(&addr, &good, "after-garbage", 50).await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_wants_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "mtls");
    let clients = Pki::new(dir.path(), "clients");
    let (cert, key) = pki.issue("broker", "broker", &["127.0.0.1"]);
    let (alice, alice_key) = clients.issue("alice", "alice", &[]);
    let (mallory, mallory_key) = pki.issue("mallory", "mallory", &[]);
    let server = tls_broker(
        dir.path(),
        TlsFiles {
            cert,
            key,
            client_ca: Some(clients.ca_file("clients")),
        },
    )
    .await;
    let addr = server.local_addr().to_string();
    let ca = pki.ca_file("mtls");
    // No client certificate: refused (the broker ends the handshake; the client sees it
    // at the handshake or at its first request).
    let anonymous = client(TlsConfig::from_ca_file(&ca).unwrap());
    match Admin::connect_with(&addr, anonymous).await {
        Err(_) => {}
        Ok(a) => assert!(a.list_topics().await.is_err(), "served without a client certificate"),
    }
    // A certificate from another CA: refused too.
    let wrong = client(TlsConfig::with_client_cert(&ca, &mallory, &mallory_key).unwrap());
    match Admin::connect_with(&addr, wrong).await {
        Err(_) => {}
        Ok(a) => assert!(
            a.list_topics().await.is_err(),
            "served with a certificate from another CA"
        ),
    }
    // Alice's certificate from the client CA: served.
    let good = client(TlsConfig::with_client_cert(&ca, &alice, &alice_key).unwrap());
    round_trip(&addr, &good, "mutual", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_puts_the_new_certificate_in_use_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::new(dir.path(), "first");
    let second = Pki::new(dir.path(), "second");
    let (cert, key) = first.issue("broker", "broker", &["127.0.0.1"]);
    let server = tls_broker(
        dir.path(),
        TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        },
    )
    .await;
    let addr = server.local_addr().to_string();
    let trusts_second = client(TlsConfig::from_ca_file(&second.ca_file("second")).unwrap());
    assert!(Admin::connect_with(&addr, trusts_second.clone()).await.is_err());
    // The files replaced (as a renewal does), then SIGHUP's reload.
    let (new_cert, new_key) = second.issue("renewed", "broker", &["127.0.0.1"]);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    server.tls().unwrap().reload().unwrap();
    let admin = Admin::connect_with(&addr, trusts_second).await.unwrap();
    admin.list_topics().await.unwrap();
    // A broken file leaves the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(server.tls().unwrap().reload().is_err());
    Admin::connect_with(&addr, admin_config(&second))
        .await
        .unwrap()
        .list_topics()
        .await
        .unwrap();
}

fn admin_config(pki: &Pki) -> ClientConfig {
    client(TlsConfig::from_ca_file(&pki.ca_file("second")).unwrap())
}
