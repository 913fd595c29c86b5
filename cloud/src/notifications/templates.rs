//! Message templates (minijinja), one set per message kind: a subject, a
//! plain-text body, an HTML body (extending `layout.html`, which carries the
//! event's branding) and for some kinds an SMS text. Files ending in `.html`
//! are HTML-escaped automatically, so a buyer named `<script>` or an
//! organizer's message text cannot inject markup; text templates are not.

use minijinja::{Environment, Value, context};
use serde::Serialize;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("templates/", $name)))),*]
    };
}

const FILES: &[(&str, &str)] = templates!(
    "layout.html",
    "welcome.html",
    "welcome.txt",
    "welcome.subject.txt",
    "order_confirmation.html",
    "order_confirmation.txt",
    "order_confirmation.subject.txt",
    "order_confirmation.sms.txt",
    "transfer_received.html",
    "transfer_received.txt",
    "transfer_received.subject.txt",
    "transfer_sent.html",
    "transfer_sent.txt",
    "transfer_sent.subject.txt",
    "refund.html",
    "refund.txt",
    "refund.subject.txt",
    "event_reminder.html",
    "event_reminder.txt",
    "event_reminder.subject.txt",
    "event_cancelled.html",
    "event_cancelled.txt",
    "event_cancelled.subject.txt",
    "custom.html",
    "custom.txt",
    "custom.subject.txt",
    "custom.sms.txt",
);

/// Kinds of email the templates cover.
pub const EMAIL_KINDS: &[&str] = &[
    "welcome",
    "order_confirmation",
    "transfer_received",
    "transfer_sent",
    "refund",
    "event_reminder",
    "event_cancelled",
    "custom",
];

/// Kinds a buyer may opt out of (everything else is transactional).
pub const OPTIONAL_KINDS: &[&str] = &["event_reminder"];

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// text/plain.
    pub text: String,
    /// text/html.
    pub html: String,
}

/// How an event looks in its messages.
#[derive(Debug, Clone, Serialize)]
pub struct Brand {
    /// Shown in the header (the event's name, or Gatehouse).
    pub name: String,
    /// Header colour.
    pub primary_color: String,
    /// Accent colour.
    pub accent_color: String,
    /// Logo.
    pub logo_url: Option<String>,
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

fn money(minor: i64, currency: String) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        m / 100,
        m % 100,
        currency.to_uppercase()
    )
}

impl Templates {
    /// Compiles every template (a syntax error is a bug caught by tests).
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, src) in FILES {
            env.add_template(name, src)?;
        }
        env.add_filter("money", money);
        Ok(Self { env })
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<String, String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("template {name}: {e}"))
    }

    /// Renders an email of `kind` from its payload variables.
    pub fn email(
        &self,
        kind: &str,
        vars: &serde_json::Value,
        brand: &Brand,
    ) -> Result<Rendered, String> {
        if !EMAIL_KINDS.contains(&kind) {
            return Err(format!("no email template for {kind:?}"));
        }
        let base = Value::from_serialize(vars);
        let subject_ctx = context! { brand => brand, ..base.clone() };
        let subject = self.render(&format!("{kind}.subject.txt"), &subject_ctx)?;
        // One line: a newline in a subject would be a header injection.
        let subject: String = subject
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let paragraphs: Vec<String> = vars["text"]
            .as_str()
            .unwrap_or_default()
            .split("\n\n")
            .map(str::to_string)
            .collect();
        let ctx = context! {
            brand => brand,
            subject => subject,
            optional => OPTIONAL_KINDS.contains(&kind),
            paragraphs => paragraphs,
            ..base
        };
        Ok(Rendered {
            text: self
                .render(&format!("{kind}.txt"), &ctx)?
                .trim()
                .to_string()
                + "\n",
            html: self.render(&format!("{kind}.html"), &ctx)?,
            subject,
        })
    }

    /// Renders the SMS text of `kind`.
    pub fn sms(
        &self,
        kind: &str,
        vars: &serde_json::Value,
        brand: &Brand,
    ) -> Result<String, String> {
        let ctx = context! { brand => brand, ..Value::from_serialize(vars) };
        Ok(self
            .render(&format!("{kind}.sms.txt"), &ctx)?
            .trim()
            .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn brand() -> Brand {
        Brand {
            name: "Harbour <Lights>".into(),
            primary_color: "#112233".into(),
            accent_color: "#445566".into(),
            logo_url: Some("https://cdn.example/logo.png".into()),
        }
    }

    #[test]
    fn every_kind_renders_text_and_html() {
        let t = Templates::new().unwrap();
        let vars = json!({"name": "Ada", "from_name": "Bob", "to_name": "Cy", "ticket_id": "t1", "subject": "Hi", "text": "Doors at 6",
            "event": {"name": "Fest", "venue": "Pier", "starts_at": "2031-06-01T18:00:00Z"},
            "order": {"id": "o1", "total_minor": 2500, "currency": "eur"},
            "tickets": [{"id": "t1", "tier_name": "GA", "holder_name": "Ada", "cid": "qr-t1"}]});
        for kind in EMAIL_KINDS {
            let r = t.email(kind, &vars, &brand()).unwrap();
            assert!(!r.subject.is_empty() && !r.text.trim().is_empty(), "{kind}");
            assert!(
                r.html.contains("#112233"),
                "{kind} carries the event's colour"
            );
        }
        let r = t.email("order_confirmation", &vars, &brand()).unwrap();
        assert!(r.text.contains("25.00 EUR"), "{}", r.text);
        assert!(r.html.contains("cid:qr-t1"), "the QR code is inline");
        assert!(
            t.sms("order_confirmation", &vars, &brand())
                .unwrap()
                .contains("o1")
        );
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::new().unwrap();
        let vars = json!({"subject": "Line\r\nBcc: evil@example.com", "text": "<script>alert(1)</script> & more"});
        let r = t.email("custom", &vars, &brand()).unwrap();
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        assert!(
            r.html.contains("Harbour &lt;Lights&gt;"),
            "branding is escaped too"
        );
        assert!(r.text.contains("<script>alert(1)</script> & more"));
        assert!(
            !r.subject.contains('\n') && !r.subject.contains('\r'),
            "{:?}",
            r.subject
        );
        assert!(t.email("nope", &vars, &brand()).is_err());
    }
}
