//! Peer discovery on the venue LAN: every node advertises
//! `_gatehouse._tcp.local.` with TXT `event=<event id>` and `node=<node id>`
//! and browses for the same type; a resolved service of the same event and
//! another node becomes a peer. Discovery only finds addresses: every message
//! is still authenticated with the event's gossip key.

use crate::peer::{PeerHub, PeerSource};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use std::sync::Arc;
use sync_protocol::NodeId;
use tokio::sync::watch;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_gatehouse._tcp.local.";

/// mDNS could not be started.
#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct DiscoveryError(String);

/// Advertises this node on `port` and adds discovered peers to `hub` until
/// `shutdown` turns true.
pub fn start(
    hub: Arc<PeerHub>,
    port: u16,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DiscoveryError> {
    let err = |e: mdns_sd::Error| DiscoveryError(e.to_string());
    let daemon = ServiceDaemon::new().map_err(err)?;
    let node = hub.node_id().to_string();
    let event = hub.event_id().to_string();
    let host = format!("gate-{}.local.", &node[..8.min(node.len())]);
    let props = [("event", event.as_str()), ("node", node.as_str())];
    let info = ServiceInfo::new(SERVICE_TYPE, &node, &host, "", port, &props[..])
        .map_err(err)?
        .enable_addr_auto();
    daemon.register(info).map_err(err)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(err)?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                ev = events.recv_async() => match ev {
                    Ok(ServiceEvent::ServiceResolved(svc)) => {
                        let same_event = svc.get_property_val_str("event") == Some(event.as_str());
                        let other = svc
                            .get_property_val_str("node")
                            .and_then(|n| n.parse::<NodeId>().ok())
                            .filter(|n| *n != hub.node_id());
                        let addr = svc.get_addresses_v4().into_iter().min();
                        if let (true, Some(node), Some(ip)) = (same_event, other, addr) {
                            let url = format!("http://{ip}:{}", svc.get_port());
                            tracing::info!(peer = %url, %node, "peer discovered by mDNS");
                            hub.add_peer(&url, PeerSource::Mdns, Some(node));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
        if let Ok(done) = daemon.shutdown() {
            let _ = done.recv_async().await;
        }
    }))
}
