//! An incremental `text/event-stream` scanner: for the relay's copy of an
//! upstream's stream, and for reading a legacy HTTP+SSE upstream.
//!
//! Helio forwards an upstream's SSE bytes to the client exactly as they
//! arrive (comments, ids and retry hints included) and scans a copy to learn
//! which JSON-RPC messages went by. SSE crates parse into events and drop the
//! raw framing, which would change what the client sees; this scanner only
//! observes.

/// Follows the WHATWG event-stream parsing rules for the parts Helio needs:
/// `data` lines (joined with `\n`) and the `event` type. Lines may end in
/// `\n`, `\r\n` or `\r`, split anywhere across chunks.
#[derive(Debug, Default)]
pub struct EventScanner {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`; a leading `\n` now is its pair.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    event_type: Vec<u8>,
    started: bool,
}

impl EventScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; calls `on_message` with the data of every completed
    /// event whose type is `message` (the type MCP uses for JSON-RPC).
    pub fn feed(&mut self, chunk: &[u8], mut on_message: impl FnMut(&[u8])) {
        self.feed_events(chunk, |event, data| {
            if event.is_empty() || event == b"message" {
                on_message(data);
            }
        });
    }

    /// Feeds a chunk; calls `on_event` with the type (empty when the event
    /// named none) and data of every completed event that has data.
    pub fn feed_events(&mut self, mut chunk: &[u8], mut on_message: impl FnMut(&[u8], &[u8])) {
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        if self.after_cr {
            self.after_cr = false;
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            let line_end = &chunk[..pos];
            let ending = chunk[pos];
            let mut next = pos + 1;
            if ending == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(line_end, &mut on_message);
            } else {
                self.line.extend_from_slice(line_end);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, &mut on_message);
                self.line = line;
                self.line.clear();
            }
            chunk = &chunk[next..];
        }
        self.line.extend_from_slice(chunk);
    }

    /// True when part of an event has arrived but not its terminating blank line.
    pub fn mid_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || !self.event_type.is_empty()
    }

    fn process_line(&mut self, line: &[u8], on_message: &mut impl FnMut(&[u8], &[u8])) {
        if line.is_empty() {
            self.dispatch(on_message);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_message: &mut impl FnMut(&[u8], &[u8])) {
        if self.has_data {
            on_message(&self.event_type, &self.data);
        }
        self.data.clear();
        self.has_data = false;
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(input: &[u8], piece: usize) -> Vec<String> {
        let mut scanner = EventScanner::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            scanner.feed(chunk, |data| {
                out.push(String::from_utf8_lossy(data).into_owned())
            });
        }
        out
    }

    #[test]
    fn events_survive_any_chunking_and_line_ending() {
        let streams: &[&[u8]] = &[
            b"event: message\ndata: {\"a\":1}\n\ndata: two\ndata: lines\n\n",
            b"event: message\r\ndata: {\"a\":1}\r\n\r\ndata: two\r\ndata: lines\r\n\r\n",
            b"event: message\rdata: {\"a\":1}\r\rdata: two\rdata: lines\r\r",
            b"\xEF\xBB\xBFid: 5\nretry: 100\n: keep-alive\nevent:message\ndata:{\"a\":1}\n\ndata: two\ndata: lines\n\n",
        ];
        for stream in streams {
            for piece in 1..=stream.len() {
                assert_eq!(
                    scan_in_pieces(stream, piece),
                    vec!["{\"a\":1}".to_owned(), "two\nlines".to_owned()],
                    "stream {:?} in pieces of {piece}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    #[test]
    fn other_event_types_comments_and_empty_events_are_skipped() {
        let stream = b": ping\n\nevent: endpoint\ndata: /x\n\nid: 3\n\ndata\n\n";
        assert_eq!(scan_in_pieces(stream, 64), vec![String::new()]);
    }

    #[test]
    fn tracks_partial_events() {
        let mut scanner = EventScanner::new();
        scanner.feed(b"data: {", |_| {});
        assert!(scanner.mid_event());
        scanner.feed(b"}\n", |_| {});
        assert!(scanner.mid_event());
        let mut seen = 0;
        scanner.feed(b"\n", |_| seen += 1);
        assert_eq!(seen, 1);
        assert!(!scanner.mid_event());
    }
}
