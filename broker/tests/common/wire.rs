//! A minimal blocking client of the native protocol, for tests that need to send exactly
//! the bytes they choose (good or bad), and an in-process server on a background runtime.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use runnel_broker::server::{Server, ServerConfig, ServerStats};
use runnel_broker::storage::{LogManager, StorageConfig};
use runnel_protocol::frame::{self, RequestHeader, ResponseFrame, RESPONSE_HEADER_BYTES};
use runnel_protocol::messages::*;
use runnel_protocol::{ApiKey, Request, Response};

/// A server on its own runtime thread.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The Kafka listener, when the config asked for one.
    pub kafka_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub storage: Arc<LogManager>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<Server>,
}

impl TestServer {
    pub fn start(dir: &Path, cfg: ServerConfig) -> TestServer {
        let storage = LogManager::open(StorageConfig::new(dir)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cfg = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..cfg
        };
        let server = runtime.block_on(Server::bind(storage.clone(), cfg)).unwrap();
        TestServer {
            addr: server.local_addr(),
            kafka_addr: server.kafka_addr(),
            metrics_addr: server.metrics_addr(),
            storage,
            runtime: Some(runtime),
            server: Some(server),
        }
    }

    pub fn stats(&self) -> &ServerStats {
        self.server.as_ref().unwrap().stats()
    }

    /// Runs `f` with the server's broker on the server's runtime.
    pub fn with_broker<F: std::future::Future>(
        &self,
        f: impl FnOnce(Arc<runnel_broker::service::Broker>) -> F,
    ) -> F::Output {
        let broker = self.server.as_ref().unwrap().broker().clone();
        self.runtime.as_ref().unwrap().block_on(f(broker))
    }

    pub fn shutdown(mut self) {
        let server = self.server.take().unwrap();
        self.runtime.as_ref().unwrap().block_on(server.shutdown()).unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

pub struct Wire {
    pub sock: TcpStream,
    next_id: i32,
}

impl Wire {
    pub fn connect(addr: SocketAddr) -> Wire {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        sock.set_nodelay(true).unwrap();
        Wire { sock, next_id: 1 }
    }

    /// Encodes a request frame (without sending it).
    pub fn frame(&mut self, key: i16, version: i16, body: &impl Message, trailer: &[u8]) -> (i32, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = BytesMut::new();
        frame::encode_request(
            &mut buf,
            RequestHeader {
                api_key: key,
                api_version: version,
                correlation_id: id,
            },
            body,
            trailer.len(),
        );
        buf.extend_from_slice(trailer);
        (id, buf.to_vec())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).unwrap();
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub fn read_response(&mut self) -> Option<ResponseFrame> {
        let mut len = [0u8; 4];
        if self.sock.read_exact(&mut len).is_err() {
            return None;
        }
        let n = u32::from_be_bytes(len) as usize;
        assert!(n + 4 >= RESPONSE_HEADER_BYTES);
        let mut buf = vec![0u8; 4 + n];
        buf[..4].copy_from_slice(&len);
        self.sock.read_exact(&mut buf[4..]).ok()?;
        Some(frame::parse_response(Bytes::from(buf)).unwrap())
    }

    /// True once the broker has closed the connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.sock.read(&mut b), Ok(0) | Err(_))
    }

    pub fn call<R: Request>(&mut self, req: &R, trailer: &[u8]) -> (R::Response, Bytes) {
        let (id, f) = self.frame(R::KEY as i16, R::VERSION, req, trailer);
        self.send_raw(&f);
        let resp = self.read_response().expect("a response");
        assert_eq!(resp.correlation_id, id);
        (R::Response::decode(resp.body).unwrap(), resp.trailer)
    }

    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let (r, _) = self.call(
            &CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.into(),
                    partitions,
                    configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &[],
        );
        assert_eq!(r.topics[0].error_code, 0, "{}", r.topics[0].error_message);
    }

    pub fn produce(&mut self, topic: &str, partition: u32, acks: Acks, batches: &[u8]) -> ProducePartitionResult {
        let (r, _) = self.call(&produce_request(topic, partition, acks, batches.len()), batches);
        assert_eq!(r.error_code(), 0, "{}", r.error_message());
        r.topics[0].partitions[0].clone()
    }

    pub fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_wait_ms: u32,
    ) -> (FetchPartitionResult, Bytes) {
        let (r, trailer) = self.call(
            &FetchRequest {
                max_wait_ms,
                min_bytes: 1,
                max_bytes: 0,
                topics: vec![FetchTopic {
                    name: topic.into(),
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset: offset,
                        max_bytes: 64 << 20,
                        current_leader_epoch: None,
                    }],
                }],
                replica_id: None,
            },
            &[],
        );
        assert_eq!(r.error_code(), 0, "{}", r.error_message());
        (r.topics[0].partitions[0].clone(), trailer)
    }

    /// A well-behaved round trip: the broker answers this connection.
    pub fn ping(&mut self) {
        let (r, _) = self.call(&ApiVersionsRequest::default(), &[]);
        assert_eq!(r.error_code, 0);
        assert!(r.apis.iter().any(|a| a.api_key == ApiKey::Fetch as i32));
    }
}

pub fn produce_request(topic: &str, partition: u32, acks: Acks, records_bytes: usize) -> ProduceRequest {
    ProduceRequest {
        acks: acks as i32,
        timeout_ms: 10_000,
        topics: vec![ProduceTopic {
            name: topic.into(),
            partitions: vec![ProducePartition {
                partition,
                records_bytes: records_bytes as u32,
            }],
        }],
    }
}
