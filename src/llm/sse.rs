//! Reading a Server-Sent Events body as it arrives: the `data` of each
//! event, joined across its `data:` lines (what the chat-completions
//! stream sends). Comments, `event:`, `id:` and `retry:` lines are ignored.

/// The longest event accepted; a provider sending more is broken.
const MAX_EVENT_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct SseReader {
    buf: Vec<u8>,
    data: Option<String>,
}

impl SseReader {
    /// Adds bytes of the body; returns the data of every event they
    /// complete, or an error if an event grows past the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        // Lines are read in place; the bytes they took go in one drain.
        let mut start = 0;
        while let Some(n) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[start..start + n];
            start += n + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
                continue;
            }
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                let value = String::from_utf8_lossy(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                }
            }
        }
        self.buf.drain(..start);
        let pending = self.buf.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_EVENT_BYTES {
            return Err(format!("an event was longer than {MAX_EVENT_BYTES} bytes"));
        }
        Ok(events)
    }

    /// The body ended: the data of an event left without its blank line.
    pub fn finish(&mut self) -> Option<String> {
        if !self.buf.is_empty() {
            let _ = self.push(b"\n");
        }
        self.data.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_read_whole() {
        let body = b": keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata: [DONE]";
        for cut in 0..body.len() {
            let mut r = SseReader::default();
            let mut events = r.push(&body[..cut]).unwrap();
            events.extend(r.push(&body[cut..]).unwrap());
            events.extend(r.finish());
            assert_eq!(events, ["{\"a\":1}", "one\ntwo", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut r = SseReader::default();
        let big = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(r.push(&big).is_err());
    }
}
