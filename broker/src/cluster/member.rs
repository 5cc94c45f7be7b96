//! Every broker's side of the cluster: register with the controller once there is one,
//! then heartbeat every `broker_heartbeat_interval_ms`; register again when the
//! controller no longer knows this incarnation (a new controller's image, a fence).
//! A refusal that cannot heal (the data directory is another cluster's, another process
//! holds this node id for longer than two sessions) stops the broker.

use std::sync::Weak;
use std::time::{Duration, Instant};

use runnel_protocol::ErrorCode;
use tracing::{info, warn};

use super::controller::ControllerCall;
use super::Cluster;

pub async fn run(cluster: Weak<Cluster>) {
    let mut registered = false;
    let mut refused_since: Option<Instant> = None;
    let interval = match cluster.upgrade() {
        Some(c) => Duration::from_millis(c.cfg.broker_heartbeat_interval_ms),
        None => return,
    };
    loop {
        let Some(c) = cluster.upgrade() else { return };
        if c.stopping() {
            return;
        }
        let refusals: Vec<String> = crate::sync::lock(&c.refused_by).values().cloned().collect();
        if refusals.len() > c.cfg.voters.len() / 2 {
            c.fail(format!(
                "a quorum of the controller voters refuse this broker as another cluster's: {}",
                refusals.join("; ")
            ));
            return;
        }
        if let Some(id) = c.cluster_id() {
            if let Err(e) = c.remember_cluster_id(&id) {
                warn!(error = %e, "could not record the cluster id in the data directory");
            }
        }
        let call = if registered {
            ControllerCall::Heartbeat {
                id: c.node_id(),
                incarnation: c.incarnation.clone(),
            }
        } else {
            ControllerCall::Register {
                id: c.node_id(),
                native: c.native.clone(),
                kafka: c.kafka.clone(),
                incarnation: c.incarnation.clone(),
                cluster_id: crate::sync::lock(&c.cluster_id).clone(),
            }
        };
        match c.call_controller(call).await {
            Ok(_) => {
                refused_since = None;
                if !registered {
                    registered = true;
                    info!(node_id = c.node_id(), "registered with the controller");
                    c.registered.send_replace(true);
                }
            }
            Err(r) if r.code() == ErrorCode::UnknownMemberId => registered = false,
            Err(r) if r.code() == ErrorCode::InconsistentClusterId => {
                c.fail(format!("cannot join the cluster: {}", r.message));
                return;
            }
            Err(r) if r.code() == ErrorCode::DuplicateBrokerRegistration => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                let limit = Duration::from_millis(2 * c.cfg.broker_session_timeout_ms);
                if since.elapsed() > limit {
                    c.fail(format!(
                        "cannot register: {} (still after {} ms); is another runnel-broker running with --node-id {}?",
                        r.message,
                        limit.as_millis(),
                        c.node_id()
                    ));
                    return;
                }
                warn!(error = %r.message, "registration refused; retrying until the other process's session expires");
            }
            Err(r) => {
                if registered {
                    warn!(error = %r.message, "heartbeat to the controller failed");
                }
            }
        }
        drop(c);
        tokio::time::sleep(interval).await;
    }
}
