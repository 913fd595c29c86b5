//! Organizer webhooks per Standard Webhooks 1.0: `webhook-id` (the outbox
//! row's id, stable across retries), `webhook-timestamp` (unix seconds of
//! the attempt) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` under the base64 key after `whsec_`; one
//! space-separated signature per live secret during a rotation).
//!
//! SSRF: a target must be http(s), and every address its host resolves to
//! must be public, or inside `notifications.webhooks.allow_networks`. The
//! request then goes to the checked address (DNS is not asked twice, so a
//! rebinding name cannot swap in a private address), redirects are not
//! followed (a 3xx is a failed attempt).

use super::config::WebhookConfig;
use super::{Attempt, Failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

/// Prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// `v1,<base64>` for one secret (raw key bytes).
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value for every live secret.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `whsec_<base64>` of raw key bytes.
pub fn encode_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(key))
}

/// Raw key bytes of a `whsec_` secret.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// Whether an address is one a webhook may not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 into any IPv4
        }
    }
}

/// Why a URL cannot be a webhook target.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("the URL must be http:// or https://".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("the URL must not carry a user name or password".into());
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(u)
}

/// Resolves the URL's host and refuses internal addresses outside `allow`.
pub async fn resolve(url: &reqwest::Url, allow: &[IpNet]) -> Result<SocketAddr, String> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    for a in &addrs {
        if is_internal(a.ip()) && !allow.iter().any(|n| n.contains(&a.ip())) {
            return Err(format!(
                "refused: {host} resolves to {}, a loopback, private or link-local address \
                 (add its network to notifications.webhooks.allow_networks if this is intended)",
                a.ip()
            ));
        }
    }
    Ok(first)
}

/// Clients pinned to a checked address, reused across deliveries (a client
/// per delivery would set up TLS and a connection pool every time).
static CLIENTS: std::sync::OnceLock<Mutex<HashMap<(String, SocketAddr), reqwest::Client>>> =
    std::sync::OnceLock::new();

fn client_for(host: &str, addr: SocketAddr, timeout_ms: u64) -> Result<reqwest::Client, Failure> {
    let cache = CLIENTS.get_or_init(Default::default);
    let key = (host.to_string(), addr);
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(timeout_ms))
        .resolve(host, addr)
        .user_agent("Gatehouse-Webhooks/1")
        .build()
        .map_err(|e| Failure::retry(format!("HTTP client: {e}")))?;
    if let Ok(mut m) = cache.lock() {
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(key, client.clone());
    }
    Ok(client)
}

/// Sends one signed delivery.
pub async fn deliver(
    cfg: &WebhookConfig,
    url: &str,
    keys: &[Vec<u8>],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<Attempt, Failure> {
    let url = check_url(url).map_err(Failure::permanent)?;
    let addr = resolve(&url, &cfg.allow_networks)
        .await
        .map_err(Failure::permanent)?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = client_for(&host, addr, cfg.timeout_ms)?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature_header(keys, id, timestamp, body),
        )
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "connection failed"
            };
            Failure::retry(format!("{what}: {}", super::error_chain(&e)))
        })?;
    super::http_outcome(resp, "the endpoint", false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_spec_test_vector() {
        let key = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let sig = sign(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn rotation_signs_with_every_live_secret() {
        let header = signature_header(&[b"new".to_vec(), b"old".to_vec()], "msg_1", 1, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "one signature per secret: {header}");
        assert_eq!(parts[1], sign(b"old", "msg_1", 1, "{}"));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} is internal");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let url = check_url("http://127.0.0.1:9/hook").unwrap();
        let err = resolve(&url, &[]).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(resolve(&url, &allow).await.is_ok());
        let url = check_url("http://localhost:9/hook").unwrap();
        assert!(
            resolve(&url, &[]).await.is_err(),
            "a name resolving to loopback too"
        );
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("http://user:pw@example.com/").is_err());
    }
}
