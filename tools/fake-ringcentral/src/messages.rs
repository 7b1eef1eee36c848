//! The message store, as far as voicemail goes: a message's details
//! (`GET …/extension/{e}/message-store/{id}`) with its audio attachment, and the audio itself
//! (`GET …/message-store/{id}/content/{attachment}`). Both need the bearer token, as on
//! RingCentral; the attachment's `uri` is on this server, as it is on RingCentral's.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::{api_error, guard};
use crate::{FakePlatform, Group, ACCOUNT_ID, OWNER_EXTENSION_ID};

/// A voicemail held in an extension's mailbox.
#[derive(Debug, Clone)]
pub struct FakeVoicemail {
    /// The mailbox's extension id.
    pub extension_id: String,
    /// The recording (WAV).
    pub audio: Vec<u8>,
    /// Its length in seconds.
    pub seconds: i64,
}

/// A short, valid WAV file: `seconds` of silence at 8 kHz, 8-bit mono.
pub fn silent_wav(seconds: u32) -> Vec<u8> {
    let samples = 8_000 * seconds;
    let mut wav = Vec::with_capacity(44 + samples as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8_000u32.to_le_bytes());
    wav.extend_from_slice(&8_000u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&samples.to_le_bytes());
    wav.resize(44 + samples as usize, 128);
    wav
}

/// Where a message's audio is served, on this server.
pub(crate) fn content_uri(base: &str, extension_id: &str, message_id: &str) -> String {
    format!("{base}/restapi/v1.0/account/{ACCOUNT_ID}/extension/{extension_id}/message-store/{message_id}/content/{message_id}")
}

/// `~` is the signed-in user's own extension.
fn mailbox(extension: &str) -> &str {
    if extension == "~" {
        OWNER_EXTENSION_ID
    } else {
        extension
    }
}

fn no_message() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "MSG-333",
        "Resource for parameter [messageId] is not found",
    )
}

pub(crate) async fn read(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path((_account, extension, id)): Path<(String, String, String)>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Light) {
        return r;
    }
    let base = p.url().to_string();
    let s = p.lock();
    match s.voicemails.get(&id) {
        Some(vm) if vm.extension_id == mailbox(&extension) => Json(json!({
            "id": id, "type": "VoiceMail", "availability": "Alive",
            "attachments": [{"id": id, "uri": content_uri(&base, &vm.extension_id, &id),
                             "type": "AudioRecording", "contentType": "audio/x-wav",
                             "vmDuration": vm.seconds, "size": vm.audio.len()}],
        }))
        .into_response(),
        _ => no_message(),
    }
}

pub(crate) async fn content(
    State(p): State<FakePlatform>,
    headers: HeaderMap,
    Path((_account, extension, id, _attachment)): Path<(String, String, String, String)>,
) -> Response {
    if let Some(r) = guard(&p, &headers, Group::Heavy) {
        return r;
    }
    let mut s = p.lock();
    let audio = match s.voicemails.get(&id) {
        Some(vm) if vm.extension_id == mailbox(&extension) => vm.audio.clone(),
        _ => return no_message(),
    };
    s.stats.media_downloads += 1;
    ([(header::CONTENT_TYPE, "audio/x-wav")], audio).into_response()
}
