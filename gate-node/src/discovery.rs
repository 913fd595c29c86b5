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
                        let found = peer_of(
                            &event,
                            hub.node_id(),
                            svc.get_property_val_str("event"),
                            svc.get_property_val_str("node"),
                            svc.get_addresses_v4(),
                            svc.get_port(),
                        );
                        if let Some((url, node)) = found {
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

/// The peer a resolved service stands for: same event, another node, an
/// IPv4 address (the lowest, so repeated answers agree).
pub fn peer_of(
    event: &str,
    own: NodeId,
    svc_event: Option<&str>,
    svc_node: Option<&str>,
    addrs: impl IntoIterator<Item = std::net::Ipv4Addr>,
    port: u16,
) -> Option<(String, NodeId)> {
    if svc_event != Some(event) {
        return None;
    }
    let node = svc_node?.parse::<NodeId>().ok().filter(|n| *n != own)?;
    let ip = addrs.into_iter().min()?;
    Some((format!("http://{ip}:{port}"), node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn only_other_nodes_of_the_same_event_become_peers() {
        let own = NodeId::from_bytes([1; 16]);
        let other = NodeId::from_bytes([2; 16]);
        let ev = "0190a0b0-0000-7000-8000-000000000001";
        let addrs = [Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 3)];
        let o = other.to_string();
        assert_eq!(
            peer_of(ev, own, Some(ev), Some(&o), addrs, 7300),
            Some(("http://10.0.0.3:7300".to_string(), other))
        );
        assert_eq!(
            peer_of(ev, own, Some("another"), Some(&o), addrs, 7300),
            None
        );
        assert_eq!(
            peer_of(ev, own, Some(ev), Some(&own.to_string()), addrs, 7300),
            None
        );
        assert_eq!(
            peer_of(ev, own, Some(ev), Some("garbage"), addrs, 7300),
            None
        );
        assert_eq!(peer_of(ev, own, Some(ev), Some(&o), [], 7300), None);
    }
}
