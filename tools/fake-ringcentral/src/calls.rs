//! Scripted calls and the delivery loop: telephony-session events (one party per event, the
//! concrete account-level path, increasing `sequence`), voicemail messages, renewal reminders,
//! the call-log record, and blacklisting when deliveries keep failing.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use callpop_testkit::payloads::rc_notification;

use crate::{FakePlatform, LogEntry, PendingEvent, ACCOUNT_ID, OWNER_EXTENSION_ID};

/// How a scripted call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The desk answers after `ring` seconds and talks for `talk` seconds.
    Answered {
        /// Seconds of ringing.
        ring: i64,
        /// Seconds of talk.
        talk: i64,
    },
    /// Nobody answers; the caller hangs up after `ring` seconds.
    Missed {
        /// Seconds of ringing.
        ring: i64,
    },
    /// Voicemail picks up after `ring` seconds; the caller leaves `message` seconds.
    Voicemail {
        /// Seconds of ringing.
        ring: i64,
        /// Seconds of message.
        message: i64,
    },
}

/// An inbound call to run through the platform.
#[derive(Debug, Clone)]
pub struct ScriptedCall {
    /// When it starts.
    pub start: DateTime<Utc>,
    /// The caller, E.164.
    pub from: String,
    /// The caller's name (caller ID).
    pub from_name: Option<String>,
    /// The dealership line dialled, E.164.
    pub to: String,
    /// The desk's extension id.
    pub extension_id: String,
    /// The desk's extension number.
    pub extension_number: String,
    /// The desk's user name.
    pub extension_name: String,
    /// How it ends.
    pub outcome: CallOutcome,
}

impl ScriptedCall {
    /// A call to the owner's desk (ext 101).
    pub fn to_owner(start: DateTime<Utc>, from: &str, outcome: CallOutcome) -> ScriptedCall {
        ScriptedCall {
            start,
            from: from.to_string(),
            from_name: None,
            to: "+16505550100".into(),
            extension_id: OWNER_EXTENSION_ID.into(),
            extension_number: "101".into(),
            extension_name: "Alice Sales".into(),
            outcome,
        }
    }

    /// When the call is over.
    pub fn end(&self) -> DateTime<Utc> {
        self.start
            + Duration::seconds(match self.outcome {
                CallOutcome::Answered { ring, talk } => 2 + ring + talk,
                CallOutcome::Missed { ring } => 2 + ring,
                CallOutcome::Voicemail { ring, message } => 2 + ring + message,
            })
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A call's telephony events and what its call-log record needs.
struct Built {
    session: String,
    legacy: String,
    caller: Value,
    events: Vec<(DateTime<Utc>, Value)>,
    result: &'static str,
    duration: i64,
    message: Option<i64>,
}

impl ScriptedCall {
    /// The telephony-session event bodies of this call (one party per event, increasing
    /// sequence), as call number `n` of the platform; for load generators.
    pub fn telephony_events(&self, n: u64) -> Vec<(DateTime<Utc>, Value)> {
        self.build(n).events
    }

    fn build(&self, n: u64) -> Built {
        let call = self;
        let session = format!("s-fake-{n:08}");
        let legacy = format!("{}", 500_000_000 + n);
        let caller_party = format!("{session}-1");
        let desk_party = format!("{session}-2");
        let caller = {
            let mut c = json!({"phoneNumber": call.from});
            if let Some(name) = &call.from_name {
                c["name"] = json!(name);
            }
            c
        };
        let line = json!({"phoneNumber": call.to});
        let desk = json!({"phoneNumber": call.extension_number, "name": call.extension_name,
                          "extensionId": call.extension_id});
        let mut seq = 0;
        let mut events: Vec<(DateTime<Utc>, Value)> = Vec::new();
        let mut party = |at: DateTime<Utc>,
                         desk_leg: bool,
                         code: &str,
                         reason: Option<&str>,
                         missed: bool| {
            seq += 1;
            let mut p = if desk_leg {
                json!({"accountId": ACCOUNT_ID, "extensionId": call.extension_id, "id": desk_party,
                       "direction": "Inbound", "from": caller, "to": desk,
                       "status": {"code": code}, "missedCall": missed, "standAlone": false, "muted": false})
            } else {
                json!({"accountId": ACCOUNT_ID, "id": caller_party, "direction": "Outbound",
                       "from": caller, "to": line, "status": {"code": code},
                       "missedCall": false, "standAlone": false, "muted": false})
            };
            if let Some(r) = reason {
                p["status"]["reason"] = json!(r);
            }
            let body = json!({"sequence": seq, "sessionId": legacy, "telephonySessionId": session,
                              "serverId": "10.13.22.241.TAM", "eventTime": ts(at),
                              "origin": {"type": "Call"}, "parties": [p], "accountId": ACCOUNT_ID});
            events.push((at, body));
        };
        let t0 = call.start;
        let at = |secs: i64| t0 + Duration::seconds(secs);
        party(at(0), false, "Setup", None, false);
        party(at(1), true, "Setup", None, false);
        party(at(2), true, "Proceeding", None, false);
        let (result, duration, message) = match call.outcome {
            CallOutcome::Answered { ring, talk } => {
                party(at(2 + ring), true, "Answered", None, false);
                party(at(2 + ring), false, "Answered", None, false);
                party(
                    at(2 + ring + talk),
                    true,
                    "Disconnected",
                    Some("CallFinished"),
                    false,
                );
                party(
                    at(2 + ring + talk),
                    false,
                    "Disconnected",
                    Some("CallFinished"),
                    false,
                );
                ("Accepted", talk, None)
            }
            CallOutcome::Missed { ring } => {
                party(at(2 + ring), true, "Disconnected", Some("NoAnswer"), true);
                party(
                    at(2 + ring),
                    false,
                    "Disconnected",
                    Some("CallFinished"),
                    false,
                );
                ("Missed", ring, None)
            }
            CallOutcome::Voicemail { ring, message } => {
                party(at(2 + ring), true, "VoiceMail", None, false);
                party(at(2 + ring), false, "Answered", None, false);
                party(
                    at(2 + ring + message),
                    true,
                    "Disconnected",
                    Some("Voicemail"),
                    true,
                );
                party(
                    at(2 + ring + message),
                    false,
                    "Disconnected",
                    Some("CallFinished"),
                    false,
                );
                ("Voicemail", ring + message, Some(message))
            }
        };
        Built {
            session,
            legacy,
            caller,
            events,
            result,
            duration,
            message,
        }
    }
}

/// Builds a call's events and call-log record and queues them.
pub(crate) fn schedule(p: &FakePlatform, call: ScriptedCall) {
    let base = p.url().to_string();
    let mut s = p.lock();
    let n = s.next_id();
    let Built {
        session,
        legacy,
        caller,
        events,
        result,
        duration,
        message,
    } = call.build(n);
    let t0 = call.start;
    for (when, body) in events {
        s.pending.push(PendingEvent {
            at: when,
            kind: "telephony",
            body,
            event_path: format!("/restapi/v1.0/account/{ACCOUNT_ID}/telephony/sessions"),
        });
    }
    let end = call.end();
    let mut record = json!({
        "uri": format!("https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/call-log/CL{n:08}"),
        "id": format!("CL{n:08}"), "sessionId": legacy, "telephonySessionId": session,
        "startTime": ts(t0), "duration": duration, "durationMs": duration * 1000, "type": "Voice",
        "internalType": "Local", "direction": "Inbound", "action": "Phone Call", "result": result,
        "to": {"phoneNumber": call.to, "extensionNumber": call.extension_number,
               "extensionId": call.extension_id, "name": call.extension_name},
        "from": caller,
        "extension": {"uri": format!("https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/extension/{}", call.extension_id),
                      "id": call.extension_id.parse::<u64>().unwrap_or(0)},
        "lastModifiedTime": ts(end),
    });
    if let Some(seconds) = message {
        let message_id = format!("{}", 82_063_400_000u64 + n);
        record["message"] = json!({"id": message_id, "type": "VoiceMail",
            "uri": format!("https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/extension/{}/message-store/{message_id}", call.extension_id)});
        let created = end + Duration::seconds(1);
        s.voicemails.insert(
            message_id.clone(),
            crate::messages::FakeVoicemail {
                extension_id: call.extension_id.clone(),
                audio: crate::messages::silent_wav(1),
                seconds,
            },
        );
        s.pending.push(PendingEvent {
            at: created + Duration::seconds(4),
            kind: "voicemail",
            event_path: format!("/restapi/v1.0/account/{ACCOUNT_ID}/extension/{}/voicemail", call.extension_id),
            body: json!({"id": message_id, "to": [{"name": call.extension_name, "extensionNumber": call.extension_number}],
                "from": caller, "type": "VoiceMail", "creationTime": ts(created), "readStatus": "Unread",
                "priority": "Normal", "attachments": [{"id": message_id,
                    "uri": crate::messages::content_uri(&base, &call.extension_id, &message_id),
                    "type": "AudioRecording", "contentType": "audio/x-wav", "vmDuration": seconds}],
                "direction": "Inbound", "availability": "Alive", "messageStatus": "Received",
                "lastModifiedTime": ts(created), "vmTranscriptionStatus": "NotAvailable"}),
        });
    }
    let lag = s.config.call_log_lag;
    s.log.push(LogEntry {
        available_at: end + lag,
        start: t0,
        record,
    });
    s.pending.sort_by_key(|e| e.at);
}

/// True when a subscription's filters ask for this kind of event (telephony: any telephony
/// sessions filter; voicemail: the mailbox's own filter).
fn wants(filters: &[String], kind: &str, path: &str) -> bool {
    filters.iter().any(|f| {
        let f = f.split('?').next().unwrap_or(f);
        match kind {
            "telephony" => f.ends_with("/telephony/sessions"),
            "voicemail" => f == path,
            _ => false,
        }
    })
}

struct Delivery {
    subscription_id: String,
    address: String,
    token: Option<String>,
    body: Value,
    reminder: bool,
}

/// Delivers due events forever: each to every Active subscription that asks for it, once (the
/// platform does not retry), counting failures towards blacklisting.
pub(crate) async fn delivery_loop(p: FakePlatform) {
    let http = reqwest::Client::builder()
        .timeout(StdDuration::from_secs(3))
        .build()
        .unwrap_or_default();
    loop {
        let now = p.clock.now();
        let deliveries = collect_due(&p, now);
        for d in deliveries {
            let mut request = http
                .post(&d.address)
                .header("Content-Type", "application/json; charset=UTF-8")
                .header("User-Agent", "RingCentral-Webhook/8.3")
                .header("Accept", "application/json");
            if let Some(t) = &d.token {
                // The current guide names the header Validation-Token (docs/PROTOCOL.md §0 #3).
                request = request.header("Validation-Token", t);
            }
            if let Some(body) = d.body.get("body") {
                crate::note_sent(&mut p.lock(), "webhook", body);
            }
            let ok = matches!(request.json(&d.body).send().await, Ok(r) if r.status().is_success());
            record_result(&p, &d, ok);
        }
        // Wake up for the next event, or at least every simulated minute for reminders and
        // expiry.
        let next = {
            let s = p.lock();
            s.pending.first().map(|e| e.at)
        };
        let horizon = now + Duration::minutes(1);
        let until = next.map_or(horizon, |t| t.min(horizon));
        let wall = p
            .clock
            .wall_duration(until - p.clock.now())
            .max(StdDuration::from_millis(2));
        tokio::time::sleep(wall.min(StdDuration::from_millis(250))).await;
    }
}

fn collect_due(p: &FakePlatform, now: DateTime<Utc>) -> Vec<Delivery> {
    let mut s = p.lock();
    // Expired subscriptions are gone.
    s.subscriptions.retain(|_, sub| sub.expires_at > now);
    let due: Vec<PendingEvent> = {
        let split = s.pending.partition_point(|e| e.at <= now);
        s.pending.drain(..split).collect()
    };
    let mut out = Vec::new();
    let mut counter = s.counter;
    for event in due {
        s.counter = counter;
        crate::websocket::route(&mut s, &event, now, |filters| {
            wants(filters, event.kind, &event.event_path)
        });
        counter = s.counter;
        for sub in s.subscriptions.values() {
            if sub.status != "Active" || !wants(&sub.event_filters, event.kind, &event.event_path) {
                continue;
            }
            counter += 1;
            out.push(Delivery {
                subscription_id: sub.id.clone(),
                address: sub.address.clone(),
                token: sub.verification_token.clone(),
                body: rc_notification(
                    &format!("{}", 900_000_000_000_000_000u64 + counter),
                    &event.event_path,
                    now,
                    &sub.id,
                    OWNER_EXTENSION_ID,
                    event.body.clone(),
                ),
                reminder: false,
            });
        }
    }
    // Renewal reminders: from `threshold` before expiry, every `interval`.
    for sub in s.subscriptions.values_mut() {
        if sub.status != "Active" {
            continue;
        }
        let Some((filter, threshold, interval)) = sub.event_filters.iter().find_map(|f| {
            let query = f.strip_prefix("/restapi/v1.0/subscription/~?")?;
            let get = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            Some((f.clone(), get("threshold")?, get("interval")?))
        }) else {
            continue;
        };
        let left = sub.expires_at - now;
        if left > Duration::seconds(threshold) {
            continue;
        }
        if sub
            .last_reminder
            .is_some_and(|t| now - t < Duration::seconds(interval))
        {
            continue;
        }
        sub.last_reminder = Some(now);
        counter += 1;
        out.push(Delivery {
            subscription_id: sub.id.clone(),
            address: sub.address.clone(),
            token: sub.verification_token.clone(),
            body: rc_notification(
                &format!("{}", 900_000_000_000_000_000u64 + counter),
                &filter,
                now,
                &sub.id,
                OWNER_EXTENSION_ID,
                json!({"expiresIn": left.num_seconds()}),
            ),
            reminder: true,
        });
    }
    s.counter = counter;
    out
}

fn record_result(p: &FakePlatform, d: &Delivery, ok: bool) {
    let now = p.clock.now();
    let mut s = p.lock();
    let blacklist_after = s.config.blacklist_after;
    let mut newly_blacklisted = false;
    if let Some(sub) = s.subscriptions.get_mut(&d.subscription_id) {
        if ok {
            sub.failing_since = None;
        } else {
            let since = *sub.failing_since.get_or_insert(now);
            if now - since >= blacklist_after && sub.status == "Active" {
                sub.status = "Blacklisted".into();
                sub.blacklisted_at = Some(now);
                sub.blacklisted_reason =
                    Some("I/O operation is failed. Details: [Connection refused]".into());
                newly_blacklisted = true;
            }
        }
    }
    if ok {
        s.stats.delivered += 1;
        if d.reminder {
            s.stats.reminders += 1;
        }
    } else {
        s.stats.failed_deliveries += 1;
    }
    if newly_blacklisted {
        s.stats.blacklisted += 1;
    }
}
