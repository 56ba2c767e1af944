//! A pickle disassembler that follows the opcode stream (protocols 0–5) without
//! executing anything. It keeps a symbolic stack and memo, so it knows what GLOBAL,
//! STACK_GLOBAL, INST, OBJ, REDUCE, BUILD, NEWOBJ, NEWOBJ_EX and EXT* really import
//! and call — also when the names are built on the stack, fetched from the memo, or
//! carried in a pickle nested inside a bytes value — and it reads several pickles in
//! one stream (PyTorch's legacy format writes five in a row, then raw data).
//!
//! Every limit is explicit: opcodes and bytes read are bounded by the input, the stack
//! and memo by [`Limits`], nesting by [`MAX_NESTING`]. Hostile input ends in an
//! [`Error`], never a panic or a hang.

use std::collections::HashMap;
use std::rc::Rc;

/// Nested pickles (a pickle inside a bytes value) followed at most this deep.
pub const MAX_NESTING: usize = 3;

/// Bounds on the symbolic machine.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_stack: usize,
    pub max_memo: usize,
    /// Longest string kept for names (longer ones are cut; names are short).
    pub max_name: usize,
    /// Bytes that decoder calls (base64, hex, zlib, …) may produce in one analysis.
    pub max_decoded: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stack: 100_000,
            max_memo: 100_000,
            max_name: 512,
            max_decoded: 64 << 20,
        }
    }
}

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated: opcode {opcode:#04x} at offset {offset} needs more bytes")]
    Truncated { opcode: u8, offset: usize },
    #[error("unknown opcode {opcode:#04x} at offset {offset}")]
    UnknownOpcode { opcode: u8, offset: usize },
    #[error("malformed argument of opcode {opcode:#04x} at offset {offset}")]
    BadArgument { opcode: u8, offset: usize },
    #[error("stack underflow at offset {offset}")]
    StackUnderflow { offset: usize },
    #[error("the stack grew past {0} items")]
    StackTooDeep(usize),
    #[error("the memo grew past {0} entries")]
    MemoTooLarge(usize),
    #[error("no STOP opcode: the pickle ends at offset {0} without finishing")]
    NoStop(usize),
    #[error("unsupported pickle protocol {0}")]
    Protocol(u8),
}

/// One import the pickle performs (`module.name`), how it was written, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub module: String,
    pub name: String,
    pub offset: usize,
    /// `GLOBAL`, `STACK_GLOBAL`, `INST`, `EXT`.
    pub via: &'static str,
    /// Whether the imported object is then called (REDUCE, OBJ, INST, NEWOBJ, BUILD).
    pub called: bool,
    /// Nesting depth (0 = the outer pickle).
    pub depth: usize,
}

/// Something odd that is not an import: names the machine could not resolve,
/// extension-registry codes, persistent ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oddity {
    pub offset: usize,
    pub what: String,
}

/// What a stream of pickles does.
#[derive(Debug, Default, Clone)]
pub struct Analysis {
    pub imports: Vec<Import>,
    pub oddities: Vec<Oddity>,
    /// Pickles read in the stream (and nested ones).
    pub pickles: usize,
    pub protocol: u8,
    pub opcodes: usize,
    /// Bytes after the last complete pickle that are not a pickle (PyTorch legacy raw
    /// storage data, for one).
    pub trailing: usize,
    /// Bytes produced by decoding payloads the pickle carries.
    pub decoded: usize,
}

#[derive(Debug, Clone)]
enum Val {
    /// A string short enough to be a name (kept whole).
    Str(String),
    /// A longer string or a bytes value: where it sits in the input (not copied).
    Span(usize, usize),
    /// Bytes a decoder call would produce at load time (base64, hex, zlib, latin-1).
    Data(Rc<Vec<u8>>),
    Int(i64),
    Other,
    Mark,
    /// An imported object (index into `imports`).
    Global(usize),
    /// The result of calling something: the import called (when known) and its
    /// arguments. Shared, so DUP and the memo never copy deep values.
    Called(Option<usize>, Rc<Val>),
    /// Items are kept (shared) up to [`KEEP`]; longer tuples keep none.
    Tuple(Rc<Vec<Val>>),
    /// Entries are kept up to [`KEEP`].
    Dict(Rc<Vec<(Val, Val)>>),
}

/// Tuple items and dict entries kept per value (enough for joblib's array wrappers).
const KEEP: usize = 32;

fn tuple(items: Vec<Val>) -> Val {
    Val::Tuple(Rc::new(if items.len() <= KEEP { items } else { Vec::new() }))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    memo: HashMap<u64, Val>,
    limits: Limits,
    depth: usize,
    out: &'a mut Analysis,
}

fn read_line(data: &[u8], pos: &mut usize) -> Option<(usize, usize)> {
    let start = *pos;
    let nl = data.get(start..)?.iter().position(|&b| b == b'\n')?;
    *pos = start + nl + 1;
    Some((start, start + nl))
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize, opcode: u8, at: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated { opcode, offset: at })?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(Error::Truncated { opcode, offset: at })?;
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize, opcode: u8, at: usize) -> Result<u64, Error> {
        let b = self.take(n, opcode, at)?;
        let mut v = 0u64;
        for (i, x) in b.iter().enumerate() {
            v |= u64::from(*x) << (8 * i);
        }
        Ok(v)
    }

    fn line(&mut self, opcode: u8, at: usize) -> Result<&'a str, Error> {
        let (s, e) = read_line(self.data, &mut self.pos).ok_or(Error::Truncated { opcode, offset: at })?;
        std::str::from_utf8(&self.data[s..e]).map_err(|_| Error::BadArgument { opcode, offset: at })
    }

    fn push(&mut self, v: Val) -> Result<(), Error> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(Error::StackTooDeep(self.limits.max_stack));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self, at: usize) -> Result<Val, Error> {
        self.stack.pop().ok_or(Error::StackUnderflow { offset: at })
    }

    /// Pops down to (and including) the topmost mark; returns the items above it.
    fn pop_mark(&mut self, at: usize) -> Result<Vec<Val>, Error> {
        let m = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Val::Mark))
            .ok_or(Error::StackUnderflow { offset: at })?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn name(&self, s: &str) -> String {
        s.chars().take(self.limits.max_name).collect()
    }

    fn import(&mut self, module: &str, name: &str, at: usize, via: &'static str) -> Val {
        self.out.imports.push(Import {
            module: self.name(module),
            name: self.name(name),
            offset: at,
            via,
            called: false,
            depth: self.depth,
        });
        Val::Global(self.out.imports.len() - 1)
    }

    fn called(&mut self, v: &Val, at: usize, how: &str) {
        match v {
            Val::Global(i) => {
                if let Some(imp) = self.out.imports.get_mut(*i) {
                    imp.called = true;
                }
            }
            Val::Called(..) | Val::Other => {}
            other => self.out.oddities.push(Oddity {
                offset: at,
                what: format!("{how} on a {} value", kind(other)),
            }),
        }
    }

    fn memo_put(&mut self, key: u64, v: Val) -> Result<(), Error> {
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(Error::MemoTooLarge(self.limits.max_memo));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), Error> {
        let v = self.memo.get(&key).cloned().unwrap_or_else(|| {
            self.out.oddities.push(Oddity {
                offset: at,
                what: format!("memo key {key} read before it was written"),
            });
            Val::Other
        });
        self.push(v)
    }

    /// Bytes that may hold a pickle (a bytes value, or what a decoder call yields):
    /// a pickle there is analysed too, as the loader would unpickle it.
    fn nested(&mut self, b: &[u8]) {
        if self.depth < MAX_NESTING && (looks_like_pickle(b) || looks_like_protocol_0(b)) {
            let mut nested = Analysis::default();
            let _ = analyse_at_depth(b, self.limits, self.depth + 1, &mut nested);
            if nested.pickles > 0 || !nested.imports.is_empty() {
                self.out.imports.extend(nested.imports);
                self.out.oddities.extend(nested.oddities);
                self.out.pickles += nested.pickles.max(1);
            }
        }
    }

    /// A string from the input: short ones are kept as names; longer ones (and ones
    /// that are not UTF-8, for protocol 0) are kept as where they sit. `strict`: the
    /// opcode (and its offset) requires UTF-8 (BINUNICODE and friends).
    fn push_text(&mut self, start: usize, end: usize, strict: Option<(u8, usize)>) -> Result<(), Error> {
        let b = &self.data[start..end];
        let text = std::str::from_utf8(b);
        if let (Some((opcode, offset)), Err(_)) = (strict, &text) {
            return Err(Error::BadArgument { opcode, offset });
        }
        match text {
            Ok(t) if t.len() <= self.limits.max_name => self.push(Val::Str(t.to_owned())),
            _ => self.push(Val::Span(start, end)),
        }
    }

    /// `copyreg._reconstructor(cls, …)` and `copyreg.__newobj__(cls, …)` construct
    /// their first argument (and BUILD then runs its `__setstate__`): that class is
    /// called as surely as by NEWOBJ.
    fn constructed_through(&mut self, f: &Val, args: &Val, at: usize) {
        let Val::Global(i) = f else { return };
        let Some(imp) = self.out.imports.get(*i) else { return };
        let helper = matches!(imp.module.as_str(), "copyreg" | "copy_reg")
            && matches!(imp.name.as_str(), "_reconstructor" | "__newobj__" | "__newobj_ex__");
        if let (true, Val::Tuple(items)) = (helper, args)
            && let Some(cls @ Val::Global(_)) = items.first()
        {
            let cls = cls.clone();
            self.called(&cls, at, "REDUCE");
        }
    }

    /// The bytes of a string or bytes value.
    fn payload<'v>(&'v self, v: &'v Val) -> Option<&'v [u8]> {
        match v {
            Val::Str(s) => Some(s.as_bytes()),
            Val::Span(s, e) => self.data.get(*s..*e),
            Val::Data(d) => Some(d.as_slice()),
            _ => None,
        }
    }

    /// A call of a decoder on a string the file carries: decode it (bounded) as the
    /// loader would, and analyse a pickle that comes out.
    fn decode_call(&mut self, f: &Val, args: &Val) -> Option<Val> {
        let Val::Global(i) = f else { return None };
        let imp = self.out.imports.get(*i)?;
        let (module, name) = (imp.module.clone(), imp.name.clone());
        let Val::Tuple(items) = args else { return None };
        let input = self.payload(items.first()?)?;
        let codec = items.get(1).and_then(|v| match v {
            Val::Str(s) => Some(s.to_ascii_lowercase().replace('-', "_")),
            _ => None,
        });
        let budget = self.limits.max_decoded.saturating_sub(self.out.decoded);
        let out = crate::decode::call(&module, &name, codec.as_deref(), input, budget)?;
        self.out.decoded += out.len();
        self.nested(&out);
        Some(Val::Data(Rc::new(out)))
    }

    /// Runs one pickle from `self.pos` to its STOP.
    fn run(&mut self) -> Result<(), Error> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(self.pos) else {
                return Err(Error::NoStop(self.pos));
            };
            self.pos += 1;
            self.out.opcodes += 1;
            match op {
                b'(' => self.push(Val::Mark)?,
                b'.' => return Ok(()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let v = self.stack.last().cloned().ok_or(Error::StackUnderflow { offset: at })?;
                    self.push(v)?;
                }
                b'F' => {
                    self.line(op, at)?;
                    self.push(Val::Other)?;
                }
                b'I' | b'L' => {
                    let l = self.line(op, at)?;
                    let v = l
                        .trim_end_matches('L')
                        .parse::<i64>()
                        .map(Val::Int)
                        .unwrap_or(Val::Other);
                    self.push(v)?;
                }
                b'J' => {
                    let v = self.uint(4, op, at)?;
                    self.push(Val::Int(i64::from(u32::try_from(v).unwrap_or(0).cast_signed())))?;
                }
                b'K' | b'M' => {
                    let v = self.uint(if op == b'K' { 1 } else { 2 }, op, at)?;
                    self.push(Val::Int(i64::try_from(v).unwrap_or(0)))?;
                }
                b'N' | 0x88 | 0x89 => self.push(Val::Other)?,
                b'P' => {
                    let l = self.line(op, at)?.to_owned();
                    self.out.oddities.push(Oddity {
                        offset: at,
                        what: format!("persistent id {l:?}"),
                    });
                    self.push(Val::Other)?;
                }
                b'Q' => {
                    self.pop(at)?;
                    self.push(Val::Other)?;
                }
                b'R' => {
                    let args = self.pop(at)?;
                    let f = self.pop(at)?;
                    self.called(&f, at, "REDUCE");
                    self.constructed_through(&f, &args, at);
                    let v = self.decode_call(&f, &args).unwrap_or_else(|| call_of(&f, args));
                    self.push(v)?;
                }
                b'S' => {
                    let (mut start, mut end) =
                        read_line(self.data, &mut self.pos).ok_or(Error::Truncated { opcode: op, offset: at })?;
                    while start < end && matches!(self.data[start], b'\'' | b'"') {
                        start += 1;
                    }
                    while end > start && matches!(self.data[end - 1], b'\'' | b'"') {
                        end -= 1;
                    }
                    self.push_text(start, end, None)?;
                }
                b'T' | b'U' => {
                    let n = self.uint(if op == b'T' { 4 } else { 1 }, op, at)?;
                    let start = self.pos;
                    self.take(usize::try_from(n).unwrap_or(usize::MAX), op, at)?;
                    self.push_text(start, self.pos, None)?;
                }
                b'V' => {
                    let (start, end) =
                        read_line(self.data, &mut self.pos).ok_or(Error::Truncated { opcode: op, offset: at })?;
                    self.push_text(start, end, None)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let width = match op {
                        b'X' => 4,
                        0x8c => 1,
                        _ => 8,
                    };
                    let n = self.uint(width, op, at)?;
                    let start = self.pos;
                    self.take(usize::try_from(n).unwrap_or(usize::MAX), op, at)?;
                    self.push_text(start, self.pos, Some((op, at)))?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let width = match op {
                        b'B' => 4,
                        b'C' => 1,
                        _ => 8,
                    };
                    let n = self.uint(width, op, at)?;
                    let start = self.pos;
                    let b = self.take(usize::try_from(n).unwrap_or(usize::MAX), op, at)?;
                    self.nested(b);
                    self.push(Val::Span(start, self.pos))?;
                }
                b'a' => {
                    let _item = self.pop(at)?;
                    self.top(at)?;
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let obj = self.stack.last().cloned().ok_or(Error::StackUnderflow { offset: at })?;
                    // BUILD calls the object's __setstate__ (or updates its __dict__).
                    if let Val::Global(_) = obj {
                        self.called(&obj, at, "BUILD");
                    }
                    self.joblib_array(&obj, &state, at)?;
                }
                b'c' | b'i' => {
                    let module = self.line(op, at)?.to_owned();
                    let name = self.line(op, at)?.to_owned();
                    if op == b'c' {
                        let g = self.import(&module, &name, at, "GLOBAL");
                        self.push(g)?;
                    } else {
                        let _args = self.pop_mark(at)?;
                        let g = self.import(&module, &name, at, "INST");
                        self.called(&g, at, "INST");
                        self.push(Val::Called(None, Rc::new(Val::Other)))?;
                    }
                }
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let pairs = items
                        .chunks_exact(2)
                        .take(KEEP)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    self.push(Val::Dict(Rc::new(pairs)))?;
                }
                b'l' => {
                    self.pop_mark(at)?;
                    self.push(Val::Other)?;
                }
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(tuple(items))?;
                }
                b'}' => self.push(Val::Dict(Rc::new(Vec::new())))?,
                b']' | 0x8f => self.push(Val::Other)?,
                b')' => self.push(tuple(Vec::new()))?,
                b'e' | 0x90 => {
                    self.pop_mark(at)?;
                    self.top(at)?;
                }
                b'g' => {
                    let l = self.line(op, at)?;
                    let key = l
                        .parse::<u64>()
                        .map_err(|_| Error::BadArgument { opcode: op, offset: at })?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let key = self.uint(1, op, at)?;
                    self.memo_get(key, at)?;
                }
                b'j' => {
                    let key = self.uint(4, op, at)?;
                    self.memo_get(key, at)?;
                }
                b'o' => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(Error::StackUnderflow { offset: at });
                    }
                    let cls = items.remove(0);
                    self.called(&cls, at, "OBJ");
                    self.push(call_of(&cls, tuple(items)))?;
                }
                b'p' => {
                    let l = self.line(op, at)?;
                    let key = l
                        .parse::<u64>()
                        .map_err(|_| Error::BadArgument { opcode: op, offset: at })?;
                    let v = self.top(at)?;
                    self.memo_put(key, v)?;
                }
                b'q' | b'r' => {
                    let key = self.uint(if op == b'q' { 1 } else { 4 }, op, at)?;
                    let v = self.top(at)?;
                    self.memo_put(key, v)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    let v = self.top(at)?;
                    self.memo_put(key, v)?;
                }
                b's' => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    self.set_items(vec![k, v], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    self.set_items(items, at)?;
                }
                b'G' => {
                    self.take(8, op, at)?;
                    self.push(Val::Other)?;
                }
                0x80 => {
                    let p = self.uint(1, op, at)?;
                    let p = u8::try_from(p).unwrap_or(u8::MAX);
                    if p > 5 {
                        return Err(Error::Protocol(p));
                    }
                    self.out.protocol = self.out.protocol.max(p);
                }
                0x81 => {
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    self.called(&cls, at, "NEWOBJ");
                    self.push(call_of(&cls, args))?;
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let cls = self.pop(at)?;
                    self.called(&cls, at, "NEWOBJ_EX");
                    self.push(call_of(&cls, args))?;
                }
                0x82..=0x84 => {
                    let width = match op {
                        0x82 => 1,
                        0x83 => 2,
                        _ => 4,
                    };
                    let code = self.uint(width, op, at)?;
                    // The extension registry (copyreg) maps codes to globals at load
                    // time; which one is not in the file.
                    self.out.oddities.push(Oddity {
                        offset: at,
                        what: format!("extension code {code} (copyreg registry: the import is decided at load time)"),
                    });
                    let g = self.import("copyreg", &format!("<extension {code}>"), at, "EXT");
                    self.push(g)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(Error::StackUnderflow { offset: at });
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(tuple(items))?;
                }
                0x8a => {
                    let n = self.uint(1, op, at)?;
                    self.take(usize::try_from(n).unwrap_or(0), op, at)?;
                    self.push(Val::Other)?;
                }
                0x8b => {
                    let n = self.uint(4, op, at)?;
                    self.take(usize::try_from(n).unwrap_or(usize::MAX), op, at)?;
                    self.push(Val::Other)?;
                }
                0x91 => {
                    self.pop_mark(at)?;
                    self.push(Val::Other)?;
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let text = |v: &Val| match v {
                        Val::Str(s) => Some(s.clone()),
                        Val::Span(s, e) => Some(String::from_utf8_lossy(&self.data[*s..*e]).into_owned()),
                        _ => None,
                    };
                    let g = match (text(&module), text(&name)) {
                        (Some(m), Some(n)) => self.import(&m, &n, at, "STACK_GLOBAL"),
                        _ => {
                            self.out.oddities.push(Oddity {
                                offset: at,
                                what: format!(
                                    "STACK_GLOBAL with a {} module and a {} name: an import the file hides",
                                    kind(&module),
                                    kind(&name)
                                ),
                            });
                            self.import("<unresolved>", "<unresolved>", at, "STACK_GLOBAL")
                        }
                    };
                    self.push(g)?;
                }
                0x95 => {
                    self.take(8, op, at)?;
                }
                0x97 | 0x98 => {
                    if op == 0x97 {
                        self.push(Val::Other)?;
                    }
                }
                _ => return Err(Error::UnknownOpcode { opcode: op, offset: at }),
            }
        }
    }

    /// SETITEM(S): key/value pairs into the dict on top of the stack (kept up to KEEP).
    fn set_items(&mut self, items: Vec<Val>, at: usize) -> Result<(), Error> {
        let top = self.stack.last_mut().ok_or(Error::StackUnderflow { offset: at })?;
        if let Val::Dict(d) = top {
            let mut entries: Vec<(Val, Val)> = d.as_ref().clone();
            for p in items.chunks_exact(2) {
                if entries.len() >= KEEP {
                    break;
                }
                entries.push((p[0].clone(), p[1].clone()));
            }
            *d = Rc::new(entries);
        }
        Ok(())
    }

    /// joblib writes an array's bytes into the stream right after the BUILD of its
    /// `NumpyArrayWrapper` (after a padding byte and that many 0xff bytes), and an
    /// object array as a whole pickle there. Skip the bytes, or analyse the pickle.
    fn joblib_array(&mut self, obj: &Val, state: &Val, at: usize) -> Result<(), Error> {
        let Val::Called(Some(i), _) = obj else { return Ok(()) };
        let is_wrapper = self
            .out
            .imports
            .get(*i)
            .is_some_and(|imp| imp.module.starts_with("joblib.numpy_pickle") && imp.name == "NumpyArrayWrapper");
        if !is_wrapper {
            return Ok(());
        }
        let bad = Error::BadArgument {
            opcode: b'b',
            offset: at,
        };
        let Val::Dict(entries) = state else { return Err(bad) };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| matches!(key, Val::Str(s) if s == k))
                .map(|(_, v)| v)
        };
        let code = match get("dtype") {
            Some(Val::Called(_, args)) => match args.as_ref() {
                Val::Tuple(items) => match items.first() {
                    Some(Val::Str(c)) => c.clone(),
                    _ => return Err(bad),
                },
                _ => return Err(bad),
            },
            _ => return Err(bad),
        };
        let kind = code.trim_start_matches(['<', '>', '|', '=']);
        if kind.starts_with('O') {
            // An object array: a complete pickle follows in the stream.
            let mut nested = Analysis::default();
            let mut m = Machine {
                data: self.data,
                pos: self.pos,
                stack: Vec::new(),
                memo: HashMap::new(),
                limits: self.limits,
                depth: self.depth + 1,
                out: &mut nested,
            };
            m.run()?;
            self.pos = m.pos;
            self.out.pickles += 1;
            self.out.imports.extend(nested.imports);
            self.out.oddities.extend(nested.oddities);
            return Ok(());
        }
        let letters = kind.trim_end_matches(|c: char| c.is_ascii_digit());
        let width: u64 = kind[letters.len()..].parse().map_err(|_| Error::BadArgument {
            opcode: b'b',
            offset: at,
        })?;
        let item = if letters == "U" { width.saturating_mul(4) } else { width };
        let Some(Val::Tuple(dims)) = get("shape") else {
            return Err(bad);
        };
        let mut n: u64 = item;
        for d in dims.iter() {
            let Val::Int(d) = d else { return Err(bad) };
            n = n
                .checked_mul(u64::try_from(*d).map_err(|_| Error::BadArgument {
                    opcode: b'b',
                    offset: at,
                })?)
                .ok_or(Error::BadArgument {
                    opcode: b'b',
                    offset: at,
                })?;
        }
        if get("numpy_array_alignment_bytes").is_some() {
            let pad = usize::from(*self.data.get(self.pos).ok_or(Error::Truncated {
                opcode: b'b',
                offset: at,
            })?);
            let padding = self.take(pad + 1, b'b', at)?;
            if padding[1..].iter().any(|&b| b != 0xff) {
                return Err(Error::BadArgument {
                    opcode: b'b',
                    offset: at,
                });
            }
        }
        self.take(
            usize::try_from(n).map_err(|_| Error::Truncated {
                opcode: b'b',
                offset: at,
            })?,
            b'b',
            at,
        )?;
        Ok(())
    }

    fn top(&self, at: usize) -> Result<Val, Error> {
        self.stack.last().cloned().ok_or(Error::StackUnderflow { offset: at })
    }
}

/// The value a call produces: remembers what was called (when it was an import) and
/// with what, so later opcodes can tell (joblib's array wrappers).
fn call_of(f: &Val, args: Val) -> Val {
    match f {
        Val::Global(i) => Val::Called(Some(*i), Rc::new(args)),
        _ => Val::Called(None, Rc::new(args)),
    }
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::Str(_) => "string",
        Val::Span(..) | Val::Data(_) => "bytes",
        Val::Int(_) => "integer",
        Val::Other => "computed",
        Val::Mark => "mark",
        Val::Global(_) => "imported",
        Val::Called(..) => "call result",
        Val::Tuple(_) => "tuple",
        Val::Dict(_) => "dict",
    }
}

/// Whether bytes plausibly start a pickle of protocol 2 or later (PROTO opcode).
pub fn looks_like_pickle(b: &[u8]) -> bool {
    b.len() >= 3 && b[0] == 0x80 && (2..=5).contains(&b[1]) && b.last() == Some(&b'.')
}

/// Whether bytes could be a protocol 0/1 pickle: they start with an opcode such a
/// pickle starts with and end with STOP.
pub fn looks_like_protocol_0(b: &[u8]) -> bool {
    b.len() >= 2
        && b.last() == Some(&b'.')
        && matches!(
            b[0],
            b'(' | b'c' | b'i' | b']' | b'}' | b')' | b'N' | b'S' | b'V' | b'I' | b'K' | b'X' | b'U' | b'l' | b'd'
        )
}

/// Whether bytes start like a pickle of protocol 2 or later (for containers that do
/// not say what a member holds).
pub fn looks_like_pickle_start(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x80 && (2..=5).contains(&b[1])
}

/// Analyses a stream of one or more pickles.
pub fn analyse(data: &[u8], limits: Limits) -> Result<Analysis, Error> {
    let (a, e) = analyse_partial(data, limits);
    match e {
        Some(e) => Err(e),
        None => Ok(a),
    }
}

/// Like [`analyse`], but keeps what was found before an error: a loader runs opcodes
/// as it reads them, so a call made before the stream breaks would have run.
pub fn analyse_partial(data: &[u8], limits: Limits) -> (Analysis, Option<Error>) {
    let mut out = Analysis::default();
    let e = analyse_at_depth(data, limits, 0, &mut out).err();
    (out, e)
}

fn analyse_at_depth(data: &[u8], limits: Limits, depth: usize, out: &mut Analysis) -> Result<(), Error> {
    let mut pos = 0;
    loop {
        let mut m = Machine {
            data,
            pos,
            stack: Vec::new(),
            memo: HashMap::new(),
            limits,
            depth,
            out,
        };
        match m.run() {
            Ok(()) => {
                pos = m.pos;
                out.pickles += 1;
            }
            // The first pickle must parse; after a complete one, what follows may be
            // other data (PyTorch's legacy format appends raw storage).
            Err(e) if pos == 0 => return Err(e),
            // Imports seen before such an attempt failed stay: a loader runs opcodes as
            // it reads them, so they would have run before the error.
            Err(_) => {
                out.trailing = data.len() - pos;
                return Ok(());
            }
        }
        if pos >= data.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn protocol_0_global_and_reduce() {
        // cos\nsystem\n(S'echo hi'\ntR.
        let p = b"cos\nsystem\n(S'echo hi'\ntR.";
        let a = analyse(p, Limits::default()).unwrap();
        assert_eq!(a.imports.len(), 1);
        assert_eq!(
            (a.imports[0].module.as_str(), a.imports[0].name.as_str()),
            ("os", "system")
        );
        assert!(a.imports[0].called);
    }

    #[test]
    fn stack_global_through_the_memo() {
        // PROTO 4, 'builtins' MEMOIZE, 'eval' MEMOIZE, POP, POP, BINGET 0, BINGET 1,
        // STACK_GLOBAL, ('1+1',) REDUCE STOP
        let mut p = vec![0x80, 4];
        p.extend([0x8c, 8]);
        p.extend(b"builtins");
        p.push(0x94);
        p.extend([0x8c, 4]);
        p.extend(b"eval");
        p.push(0x94);
        p.extend([b'0', b'0', b'h', 0, b'h', 1, 0x93]);
        p.extend([0x8c, 3]);
        p.extend(b"1+1");
        p.extend([0x85, b'R', b'.']);
        let a = analyse(&p, Limits::default()).unwrap();
        assert_eq!(a.imports.len(), 1, "{a:?}");
        assert_eq!(a.imports[0].name, "eval");
        assert_eq!(a.imports[0].via, "STACK_GLOBAL");
        assert!(a.imports[0].called);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x80",
            b"\x80\x04\x95",
            b"X\xff\xff\xff\xff",
            b"(((((",
            b"h\x05.",
            b"\xff",
        ] {
            let _ = analyse(bad, Limits::default());
        }
        assert!(matches!(
            analyse(b"\x80\x09.", Limits::default()),
            Err(Error::Protocol(9))
        ));
        assert!(matches!(analyse(b"N", Limits::default()), Err(Error::NoStop(1))));
        let deep = vec![b'('; 200];
        assert!(matches!(
            analyse(
                &deep,
                Limits {
                    max_stack: 100,
                    ..Limits::default()
                }
            ),
            Err(Error::StackTooDeep(100))
        ));
    }

    #[test]
    fn several_pickles_and_trailing_data() {
        let mut p = b"\x80\x02K\x01.".to_vec();
        p.extend(b"cbuiltins\nexec\n.");
        p.extend([0x00, 0x01, 0x02, 0xff]);
        let a = analyse(&p, Limits::default()).unwrap();
        assert_eq!(a.pickles, 2);
        assert_eq!(a.trailing, 4);
        assert_eq!(a.imports[0].name, "exec");
    }
}
