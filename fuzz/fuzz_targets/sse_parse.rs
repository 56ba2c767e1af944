//! The event-stream parser: never panics; the events do not depend on where the
//! stream is split into chunks (the first byte picks the split); events written back
//! in canonical framing parse to the same events.
#![no_main]
use rampart_detect::sse::{Event, parse_chunks};


libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let cut = usize::from(cut) % (stream.len() + 1);
    let whole = parse_chunks(&[stream]);
    let split = parse_chunks(&[&stream[..cut], &stream[cut..]]);
    assert_eq!(whole, split, "the split at {cut} changed the events");
    if let Ok(events) = whole {
        let mut written = Vec::new();
        for e in &events {
            e.write(&mut written);
        }
        let reread = parse_chunks(&[&written]).expect("canonical framing must parse");
        // Comment-only blocks are written as a keep-alive; data events round-trip.
        let data = |es: &[Event]| es.iter().filter(|e| e.data.is_some()).cloned().collect::<Vec<_>>();
        assert_eq!(data(&reread), data(&events));
    }
});
