//! SMS through the Twilio REST API (Messages resource): `POST
//! {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form fields
//! `To`, `From`, `Body`, HTTP basic auth `AccountSid:AuthToken`. 429 and 5xx
//! are retried (honouring `Retry-After`); other 4xx (a bad number) fail for
//! good.

use super::config::SmsConfig;
use super::{Attempt, Failure};
use std::time::Duration;

/// Whether `s` is an E.164 number: `+`, then 8 to 15 digits, no leading 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Longest SMS body sent (Twilio's limit is 1600 characters).
pub const MAX_BODY: usize = 1_600;

/// The Twilio client.
#[derive(Clone)]
pub struct Sms {
    client: reqwest::Client,
    url: String,
    sid: String,
    token: crate::config::Secret,
    from: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("url", &self.url)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Sms {
    /// The configured client, or `None` when no account is set.
    pub fn from_config(cfg: &SmsConfig) -> Result<Option<Self>, String> {
        if cfg.account_sid.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("SMS client: {e}"))?;
        Ok(Some(Self {
            client,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                cfg.api_base.trim_end_matches('/'),
                cfg.account_sid
            ),
            sid: cfg.account_sid.clone(),
            token: cfg.auth_token.clone(),
            from: cfg.from.clone(),
        }))
    }

    /// Sends one SMS.
    pub async fn send(&self, to: &str, body: &str) -> Result<Attempt, Failure> {
        if !is_e164(to) {
            return Err(Failure::permanent(format!("{to:?} is not an E.164 number")));
        }
        let body: String = body.chars().take(MAX_BODY).collect();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("To", to)
            .append_pair("From", &self.from)
            .append_pair("Body", &body)
            .finish();
        let resp = self
            .client
            .post(&self.url)
            .basic_auth(&self.sid, Some(self.token.expose()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| Failure::retry(format!("SMS API: {}", super::error_chain(&e))))?;
        super::http_outcome(resp, "the SMS API", true).await
    }
}

#[cfg(test)]
mod tests {
    use super::is_e164;

    #[test]
    fn e164() {
        for ok in ["+14155550100", "+447700900123", "+4915123456789"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "14155550100",
            "+0155550100",
            "+1 415 555",
            "+1415",
            "+1234567890123456",
            "+14155550a00",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
