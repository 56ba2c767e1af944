//! Server-Sent Events, parsed as the WHATWG HTML standard's event-stream rules say, so
//! the gateway reads a stream exactly as a client will: lines end in CRLF, LF or a bare
//! CR (also when the CR and LF arrive in different chunks); a leading BOM is dropped;
//! `field: value` loses one space after the colon; several `data:` lines join with
//! `\n`; a blank line dispatches; comments and unknown fields are not events.
//!
//! Unlike a browser it refuses instead of repairing: a line that is not UTF-8 or is
//! longer than the bound, or an event whose data exceeds its bound, is an error — an
//! inspecting gateway must not pass what it could not read. Pure: no I/O.

/// A line longer than this is refused.
pub const MAX_LINE: usize = 1024 * 1024;
/// An event's data longer than this is refused.
pub const MAX_EVENT_DATA: usize = 4 * 1024 * 1024;

/// One dispatched event (or a block of comments only, `data == None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, when set.
    pub event: Option<String>,
    /// The joined `data:` lines; `None` when the block had no data field.
    pub data: Option<String>,
    /// The `id:` field, when set (ids containing NUL are ignored, as clients do).
    pub id: Option<String>,
    /// The `retry:` field, when it is all digits.
    pub retry: Option<u64>,
}

impl Event {
    /// Writes the event in one canonical framing: LF line ends, one `data:` line per
    /// line of data, a blank line at the end. An event without data becomes a comment
    /// line (a keep-alive), so connections stay warm without carrying text.
    pub fn write(&self, out: &mut Vec<u8>) {
        let Some(data) = &self.data else {
            out.extend_from_slice(b":\n\n");
            return;
        };
        if let Some(e) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
        if let Some(r) = self.retry {
            out.extend_from_slice(format!("retry: {r}\n").as_bytes());
        }
        for line in data.split('\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

/// Why a stream cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("a stream line is not UTF-8")]
    Utf8,
    #[error("a stream line is longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("an event's data is longer than {MAX_EVENT_DATA} bytes")]
    EventTooLarge,
}

/// An incremental event-stream parser. Feed chunks with [`Parser::push`]; call
/// [`Parser::finish`] at the end of the stream.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF that starts the next one belongs to it.
    after_cr: bool,
    /// Past the first bytes (the BOM check is done).
    started: bool,
    pending: Pending,
}

#[derive(Debug, Default)]
struct Pending {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    /// Anything (a comment, an unknown field) was seen since the last dispatch.
    any: bool,
}

impl Pending {
    fn take(&mut self) -> Option<Event> {
        let p = std::mem::take(self);
        if p.has_data {
            let mut data = p.data;
            if data.ends_with('\n') {
                data.pop();
            }
            Some(Event {
                event: p.event,
                data: Some(data),
                id: p.id,
                retry: p.retry,
            })
        } else if p.any {
            Some(Event::default())
        } else {
            None
        }
    }
}

impl Parser {
    /// Parses a chunk; complete events are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if !self.started {
            // The BOM may arrive split; wait for enough bytes to tell.
            let mut probe = std::mem::take(&mut self.line);
            probe.extend_from_slice(chunk);
            const BOM: &[u8] = b"\xef\xbb\xbf";
            if probe.len() < BOM.len() && BOM.starts_with(&probe) {
                self.line = probe;
                return Ok(());
            }
            self.started = true;
            let body = probe.strip_prefix(BOM).unwrap_or(&probe).to_vec();
            return self.push_lines(&body, out);
        }
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.push_lines(chunk, out)
    }

    fn push_lines(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut i = 0;
        while i < chunk.len() {
            let rest = &chunk[i..];
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    if self.line.len() + rest.len() > MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.extend_from_slice(rest);
                    return Ok(());
                }
                Some(p) => {
                    if self.line.len() + p > MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    if self.line.is_empty() {
                        // The whole line is in this chunk: no copy.
                        self.on_line(&rest[..p], out)?;
                    } else {
                        self.line.extend_from_slice(&rest[..p]);
                        // Reuse the buffer: no allocation per line.
                        let line = std::mem::take(&mut self.line);
                        let result = self.on_line(&line, out);
                        self.line = line;
                        self.line.clear();
                        result?;
                    }
                    i += p + 1;
                    if rest[p] == b'\r' {
                        match rest.get(p + 1) {
                            Some(b'\n') => i += 1,
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            if let Some(e) = self.pending.take() {
                out.push(e);
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::Utf8)?;
        let p = &mut self.pending;
        p.any = true;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if p.data.len() + value.len() + 1 > MAX_EVENT_DATA {
                    return Err(SseError::EventTooLarge);
                }
                p.data.push_str(value);
                p.data.push('\n');
                p.has_data = true;
            }
            "event" => p.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => p.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                p.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    /// The end of the stream. Browsers drop an event without its closing blank line;
    /// other clients dispatch it, so it is returned here to be inspected like any other.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        let mut out = Vec::new();
        if !self.started && !self.line.is_empty() {
            self.started = true;
            let probe = std::mem::take(&mut self.line);
            self.push_lines(&probe, &mut out)?;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, &mut out)?;
        }
        self.on_line(b"", &mut out)?;
        Ok(out.into_iter().reduce(|_, last| last))
    }
}

/// Every event of a whole stream given in chunks (tests, fuzzing, tools).
pub fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<Event>, SseError> {
    let mut p = Parser::default();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c, &mut out)?;
    }
    out.extend(p.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Result<Vec<Event>, SseError> {
        parse_chunks(chunks)
    }

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().filter_map(|e| e.data.as_deref()).collect()
    }

    #[test]
    fn every_line_ending_and_split() {
        let want = vec!["a", "b"];
        for text in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
            b"\xef\xbb\xbfdata: a\n\ndata:b\n\n",
        ] {
            assert_eq!(data(&parse(&[text]).unwrap()), want);
            // Every split point, including CR | LF across chunks.
            for cut in 0..text.len() {
                assert_eq!(data(&parse(&[&text[..cut], &text[cut..]]).unwrap()), want, "cut {cut}");
            }
        }
    }

    #[test]
    fn data_lines_join_and_fields_parse() {
        let e = parse(&[b"event: delta\nid: 7\nretry: 30\ndata: one\ndata:  two\n: comment\nfoo: bar\n\n"]).unwrap();
        assert_eq!(
            e,
            vec![Event {
                event: Some("delta".into()),
                data: Some("one\n two".into()),
                id: Some("7".into()),
                retry: Some(30),
            }]
        );
        let mut out = Vec::new();
        e[0].write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: delta\nid: 7\nretry: 30\ndata: one\ndata:  two\n\n"
        );
        assert_eq!(parse(&[b": keepalive\n\n"]).unwrap(), vec![Event::default()]);
        assert_eq!(data(&parse(&[b"data\n\n"]).unwrap()), vec![""]);
    }

    #[test]
    fn unterminated_last_event_is_returned() {
        assert_eq!(data(&parse(&[b"data: a\n\ndata: tail"]).unwrap()), vec!["a", "tail"]);
    }

    #[test]
    fn unreadable_streams_are_errors() {
        assert_eq!(parse(&[b"data: \xff\n\n"]), Err(SseError::Utf8));
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(parse(&[&long]), Err(SseError::LineTooLong));
    }
}
