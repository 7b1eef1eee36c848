//! Reading a Server-Sent Events stream as it arrives in chunks: events are split on blank
//! lines, fields on their first colon (WHATWG's rules, as far as the desk API uses them).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// The most bytes one event may take: a call row is a few kilobytes; anything far larger is
/// not the hub speaking.
const MAX_EVENT: usize = 1024 * 1024;

/// Collects chunks and hands out whole events.
#[derive(Default)]
pub struct SseReader {
    buffer: Vec<u8>,
}

/// The stream broke the format.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event longer than [`MAX_EVENT`].
    #[error("an event of the hub's stream is larger than {MAX_EVENT} bytes")]
    TooLarge,
}

impl SseReader {
    /// Adds a chunk; the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = block_end(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end.0 + end.1).collect();
            if let Some(event) = parse_block(&block[..end.0]) {
                events.push(event);
            }
        }
        if self.buffer.len() > MAX_EVENT {
            return Err(SseError::TooLarge);
        }
        Ok(events)
    }
}

/// Where the first block ends and how long its separator is (`\n\n`, `\r\n\r\n`, `\r\r`).
fn block_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buffer.len() {
        for sep in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
            if buffer[i..].starts_with(sep) {
                return Some((i, sep.len()));
            }
        }
        i += 1;
    }
    None
}

fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let text = String::from_utf8_lossy(block);
    let mut event = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    let mut any = false;
    for line in text.split(['\n', '\r']) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = value.to_string(),
            "data" => data.push(value),
            _ => continue,
        }
        any = true;
    }
    if !any {
        return None;
    }
    if event.event.is_empty() {
        event.event = "message".into();
    }
    event.data = data.join("\n");
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole_and_comments_are_skipped() {
        let mut reader = SseReader::default();
        assert!(reader
            .push(b": keep-alive\n\nid: 7\nevent: cha")
            .expect("ok")
            .is_empty());
        let events = reader
            .push(b"nge\ndata: {\"a\":1}\n\nevent: removed\r\ndata: {}\r\n\r\n")
            .expect("ok");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("7".into()),
                    event: "change".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: "removed".into(),
                    data: "{}".into()
                }
            ]
        );
        let events = reader.push(b"data: one\ndata: two\n\n").expect("ok");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].data, "one\ntwo");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = SseReader::default();
        let junk = vec![b'x'; MAX_EVENT + 1];
        assert_eq!(reader.push(&junk), Err(SseError::TooLarge));
    }
}
