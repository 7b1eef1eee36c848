//! Reading stored deliveries again with today's parsers: after an upgrade fixed a parser
//! (`callpop events replay`), and whenever the store re-derives a call from what is on disk.

use chrono::{DateTime, Utc};

use crate::model::{ParsedDelivery, Provider};
use crate::numbers::Country;
use crate::wire::ParseError;
use crate::{ringcentral, ringotel};

/// A stored delivery as the parsers need it to read its events again.
pub struct StoredBody<'a> {
    /// Phone system.
    pub provider: Provider,
    /// Kind label stored with it (`call_log` deliveries have their own reader).
    pub kind: &'a str,
    /// The body as stored.
    pub body: &'a [u8],
    /// SHA-256 of the body as received.
    pub body_sha256: &'a str,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// Reads a stored body again with today's parser.
pub fn reparse(
    provider: Provider,
    body: &[u8],
    body_sha256: &str,
    received_at: chrono::DateTime<chrono::Utc>,
    country: &Country,
) -> Result<ParsedDelivery, ParseError> {
    match provider {
        Provider::RingCentral => ringcentral::webhook::parse_delivery(body, country, received_at),
        Provider::Ringotel => {
            let request = ringotel::read_request(body)?;
            ringotel::parse_delivery(request, body_sha256, country, received_at)
        }
    }
}

/// Reads the call events of a stored delivery with today's parsers (used by the store when a
/// call must be re-derived from what is on disk).
pub fn stored_events(
    stored: &StoredBody<'_>,
    country: &Country,
) -> Result<Vec<crate::model::CallEvent>, ParseError> {
    let parsed = reparse_stored(stored, country)?;
    Ok(match parsed.payload {
        crate::model::Payload::Calls(events) => events,
        _ => Vec::new(),
    })
}

/// Reads a stored delivery again, whichever way it arrived (webhook or call-log backfill).
pub fn reparse_stored(
    stored: &StoredBody<'_>,
    country: &Country,
) -> Result<ParsedDelivery, ParseError> {
    if stored.kind == "call_log" {
        let record: serde_json::Value = serde_json::from_slice(stored.body)
            .map_err(|e| ParseError::new(format!("stored call-log record: {e}")))?;
        return Ok(crate::ringcentral::calllog::record_to_delivery(
            &record,
            country,
            stored.received_at,
        )?
        .parsed);
    }
    reparse(
        stored.provider,
        stored.body,
        stored.body_sha256,
        stored.received_at,
        country,
    )
}
