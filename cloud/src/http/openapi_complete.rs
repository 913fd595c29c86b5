//! Documents the answers every operation can give because of the gateway
//! and the extractors, not because of its handler: 401/403 where a token
//! is required, 400/413/415/422 where a JSON body is read, 400 (and 404
//! for a path id) where parameters are parsed, 408 for the request timeout,
//! 503 when the store or an integration is unavailable and 429 under the
//! rate limits. Run over the whole merged document, so an
//! operation added later is covered without listing it anywhere.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, Ref, RefOr, ResponseBuilder};

/// Which gateway answers apply to a part of the document.
#[derive(Debug, Clone, Copy)]
pub struct Gateway {
    /// Served under the per-address rate limits (429).
    pub rate_limited: bool,
}

/// Adds the gateway's answers to every operation of `doc`.
pub fn complete(doc: &mut OpenApi, gateway: Gateway) {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(op, gateway);
        }
    }
}

fn complete_operation(op: &mut Operation, gateway: Gateway) {
    let secured = op.security.as_ref().is_some_and(|reqs| {
        reqs.iter().any(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_object().map(|o| !o.is_empty()))
                .unwrap_or(false)
        })
    });
    let params: Vec<ParameterIn> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p.parameter_in.clone()),
            RefOr::Ref(_) => None,
        })
        .collect();
    let has_path = params.iter().any(|p| matches!(p, ParameterIn::Path));
    let has_query = params.iter().any(|p| matches!(p, ParameterIn::Query));
    let json_body = op.request_body.as_ref().is_some_and(|b| match b {
        RefOr::T(b) => b.content.keys().any(|k| k.contains("json")),
        RefOr::Ref(_) => true,
    });
    let mut add = |status: &str, why: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(why));
    };
    if secured {
        add("401", "missing, malformed or expired token");
        add("403", "the token's holder may not do this");
    }
    if json_body {
        add("400", "malformed JSON (`invalid_json`)");
        add("413", "body larger than the configured limit");
        add("415", "body is not `Content-Type: application/json`");
        add("422", "body is not a JSON object of the documented shape");
    }
    if has_path || has_query {
        add("400", "a path or query parameter is malformed or unknown");
    }
    if has_path {
        add("404", "no such resource, or not visible to the caller");
    }
    add("408", "the request took longer than the configured timeout");
    // Any operation that reads or writes the store (or an unconfigured
    // integration: Stripe, chain, a notification transport) may be
    // temporarily unable to answer: `unavailable` / `try_again`.
    add(
        "503",
        "the database or an integration this needs is unavailable now (`unavailable`, `try_again`): retry later",
    );
    if gateway.rate_limited {
        add("429", "rate limited: retry after `Retry-After` seconds");
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}
