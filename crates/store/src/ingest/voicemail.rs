//! Linking a voicemail message to the call it was left on (they arrive separately, in either
//! order).

use chrono::Duration;
use rusqlite::{params, Connection, OptionalExtension};

use crate::{to_ms, StoreError};
use callpop_core::model::{Call, CallDirection, CallResult, VoicemailMessage};

/// How far apart a voicemail's creation and its call's start may be.
pub(super) const VOICEMAIL_WINDOW_BEFORE: i64 = 60;
pub(super) const VOICEMAIL_WINDOW_AFTER: i64 = 2 * 3600;

pub(super) fn wants_voicemail(call: &Call) -> bool {
    call.answered_at.is_none()
        && call.direction != CallDirection::Outbound
        && matches!(
            call.result,
            Some(CallResult::Voicemail) | Some(CallResult::Missed)
        )
}

pub(super) fn linked_voicemail(
    conn: &Connection,
    call_id: i64,
) -> Result<Option<VoicemailMessage>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached(
            "SELECT message FROM voicemails WHERE call_id = ?1 ORDER BY created_at, id LIMIT 1",
        )?
        .query_row([call_id], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub(super) fn voicemail_matches_extensions(msg: &VoicemailMessage, call: &Call) -> bool {
    let wanted: Vec<String> = [msg.extension_id.clone(), msg.extension_number.clone()]
        .into_iter()
        .flatten()
        .collect();
    wanted.is_empty() || call.extensions.iter().any(|p| p.matches_extension(&wanted))
}

/// An unmatched voicemail left by this call's caller at one of its extensions, shortly after
/// it started; the closest in time wins.
pub(super) fn voicemail_for_call(
    conn: &Connection,
    call: &Call,
) -> Result<Option<(i64, VoicemailMessage)>, StoreError> {
    // Almost always every voicemail is matched already; this probe has no parameters, so
    // SQLite need not re-plan it for each call the way it does the time-window query.
    let waiting: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM voicemails WHERE call_id IS NULL)")?
        .query_row([], |r| r.get(0))?;
    if !waiting {
        return Ok(None);
    }
    let start = call.started_at;
    let mut stmt = conn.prepare_cached(
        "SELECT id, message FROM voicemails
         WHERE call_id IS NULL AND provider = ?1 AND from_e164 IS ?2
           AND created_at BETWEEN ?3 AND ?4
         ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map(
        params![
            call.provider.as_str(),
            call.from.e164,
            to_ms(start - Duration::seconds(VOICEMAIL_WINDOW_BEFORE)),
            to_ms(start + Duration::seconds(VOICEMAIL_WINDOW_AFTER)),
        ],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    )?;
    for row in rows {
        let (id, json) = row?;
        let msg: VoicemailMessage =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if voicemail_matches_extensions(&msg, call) {
            return Ok(Some((id, msg)));
        }
    }
    Ok(None)
}

/// The call a newly arrived voicemail belongs to: same caller, an extension of the mailbox,
/// unanswered, started shortly before; calls that reached voicemail are preferred.
pub(super) fn call_for_voicemail(
    conn: &Connection,
    msg: &VoicemailMessage,
) -> Result<Option<i64>, StoreError> {
    let from_e164 = msg.from.number.as_ref().and_then(|n| n.e164.clone());
    let created = msg.created_at;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM calls
         WHERE provider = ?1 AND from_e164 IS ?2 AND started_at BETWEEN ?3 AND ?4
           AND answered_at IS NULL AND direction != 'outbound'
           AND NOT EXISTS (SELECT 1 FROM voicemails v WHERE v.call_id = calls.id)
         ORDER BY sort_key DESC",
        crate::query::CALL_COLUMNS
    ))?;
    let rows = stmt.query_map(
        params![
            msg.provider.as_str(),
            from_e164,
            to_ms(created - Duration::seconds(VOICEMAIL_WINDOW_AFTER)),
            to_ms(created + Duration::seconds(VOICEMAIL_WINDOW_BEFORE)),
        ],
        crate::query::call_from_row,
    )?;
    let mut fallback = None;
    for row in rows {
        let record = row??;
        if !voicemail_matches_extensions(msg, &record.call) {
            continue;
        }
        if record.call.result == Some(CallResult::Voicemail) {
            return Ok(Some(record.id));
        }
        if fallback.is_none() && wants_voicemail(&record.call) {
            fallback = Some(record.id);
        }
    }
    Ok(fallback)
}
