//! Peer discovery on the venue LAN: every node advertises
//! `_gatehouse._tcp.local.` with TXT `event=<event id>` and `node=<node id>`
//! and browses for the same type; a resolved service of the same event and
//! another node becomes a peer. Discovery only finds addresses: every message
//! is still authenticated with the event's gossip key.

use crate::peer::{PeerHub, PeerSource};
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use std::net::IpAddr;
use std::sync::Arc;
use sync_protocol::NodeId;
use tokio::sync::watch;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_gatehouse._tcp.local.";

/// mDNS could not be started.
#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct DiscoveryError(String);

/// Which addresses are advertised for a node listening on a given address:
/// only ones a peer can reach the node at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertise {
    /// Bound to a loopback address: no peer can reach the node, so nothing
    /// is advertised (discovery is off).
    Nothing,
    /// Bound to exactly this address: advertise it alone, on its interface.
    Only(IpAddr),
    /// Bound to an unspecified address: the addresses of the interfaces of
    /// the listening family (`0.0.0.0`: IPv4 only; `::`: both), never
    /// loopback.
    Interfaces {
        /// IPv6 interface addresses too.
        v6: bool,
    },
}

/// What to advertise for a node bound to `bind`.
pub fn advertise_for(bind: IpAddr) -> Advertise {
    if bind.is_loopback() {
        Advertise::Nothing
    } else if bind.is_unspecified() {
        Advertise::Interfaces { v6: bind.is_ipv6() }
    } else {
        Advertise::Only(bind)
    }
}

/// The interfaces the mDNS daemon is restricted to for `plan`: first the
/// ones to disable, then the ones to enable again.
fn interfaces(plan: Advertise) -> (Vec<IfKind>, Vec<IfKind>) {
    match plan {
        Advertise::Nothing => (vec![IfKind::All], vec![]),
        Advertise::Only(ip) => (vec![IfKind::All], vec![IfKind::Addr(ip)]),
        Advertise::Interfaces { v6: true } => {
            (vec![IfKind::LoopbackV4, IfKind::LoopbackV6], vec![])
        }
        Advertise::Interfaces { v6: false } => (
            vec![IfKind::IPv6, IfKind::LoopbackV4, IfKind::LoopbackV6],
            vec![],
        ),
    }
}

/// Advertises this node (listening on `bind`) and adds discovered peers to
/// `hub` until `shutdown` turns true. Only addresses the node listens on are
/// advertised ([`advertise_for`]); bound to loopback, discovery is off.
pub fn start(
    hub: Arc<PeerHub>,
    bind: std::net::SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DiscoveryError> {
    let err = |e: mdns_sd::Error| DiscoveryError(e.to_string());
    let port = bind.port();
    let plan = advertise_for(bind.ip());
    if plan == Advertise::Nothing {
        return Err(DiscoveryError(format!(
            "the node listens on {bind} (loopback), which no peer can reach: \
             set `listen` to a LAN address or 0.0.0.0 to be discovered"
        )));
    }
    let daemon = ServiceDaemon::new().map_err(err)?;
    let (off, on) = interfaces(plan);
    daemon.disable_interface(off).map_err(err)?;
    if !on.is_empty() {
        daemon.enable_interface(on).map_err(err)?;
    }
    let node = hub.node_id().to_string();
    let event = hub.event_id().to_string();
    let host = format!("gate-{}.local.", &node[..8.min(node.len())]);
    let props = [("event", event.as_str()), ("node", node.as_str())];
    let info = match plan {
        Advertise::Only(ip) => {
            ServiceInfo::new(SERVICE_TYPE, &node, &host, ip, port, &props[..]).map_err(err)?
        }
        _ => ServiceInfo::new(SERVICE_TYPE, &node, &host, "", port, &props[..])
            .map_err(err)?
            .enable_addr_auto(),
    };
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
    fn only_addresses_the_node_listens_on_are_advertised() {
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        assert_eq!(advertise_for(lan), Advertise::Only(lan));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(advertise_for(v6), Advertise::Only(v6));
        assert_eq!(
            advertise_for("0.0.0.0".parse().unwrap()),
            Advertise::Interfaces { v6: false }
        );
        assert_eq!(
            advertise_for("::".parse().unwrap()),
            Advertise::Interfaces { v6: true }
        );
        assert_eq!(
            advertise_for("127.0.0.1".parse().unwrap()),
            Advertise::Nothing
        );
        assert_eq!(advertise_for("::1".parse().unwrap()), Advertise::Nothing);
        // IfKind has no PartialEq: compare by Debug.
        let kinds = |v: Vec<IfKind>| v.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>();
        // A specific address: every interface off, then only that one's on.
        let (off, on) = interfaces(Advertise::Only(lan));
        assert_eq!(kinds(off), vec!["All"]);
        assert_eq!(kinds(on), vec![format!("Addr({lan})")]);
        // 0.0.0.0 listens on IPv4 only: IPv6 and loopback are not advertised.
        let (off, on) = interfaces(Advertise::Interfaces { v6: false });
        assert_eq!(kinds(off), vec!["IPv6", "LoopbackV4", "LoopbackV6"]);
        assert!(on.is_empty());
        let (off, _) = interfaces(Advertise::Interfaces { v6: true });
        assert_eq!(kinds(off), vec!["LoopbackV4", "LoopbackV6"]);
    }

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
