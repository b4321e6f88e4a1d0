//! A package's zstd stream read frame by frame (package-format.md,
//! "Compression"): the concatenated frames decode to the archive, and a
//! file member whose data is exactly one plain frame of its own is taken
//! whole ([`Frames::take_frame`]) and decoded by [`decode_frame`], so an
//! installer can store that frame as the blob's record body (the store's
//! records are single zstd frames, store-format.md "Object records")
//! instead of compressing the bytes again.
//!
//! Frames are decoded with libzstd's streaming decoder (RFC 8878); between
//! frames the reader checks each new frame's magic number, so a skippable
//! frame (RFC 8878 §3.1.2: bytes no decoder shows) or bytes that are not a
//! frame at all are refused, never skipped.

use std::io::{self, BufRead, Read};
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// The magic number of a zstd frame, little-endian on the wire.
const FRAME_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The largest window a frame handed on may use: the store decodes large
/// blobs with a streaming decoder at zstd's default limit (2^27), so a frame
/// read under a larger limit is never handed on.
const STORE_WINDOW_LOG: u32 = 27;

/// What is wrong with the bytes where a frame should start.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    /// A skippable frame (magic `0x184D2A5?`): bytes outside the archive.
    #[error("a skippable zstd frame after frame {after}")]
    Skippable {
        /// Frames decoded before it.
        after: u64,
    },
    /// Bytes that are not a zstd frame after a complete frame.
    #[error("bytes that are not a zstd frame after frame {after}")]
    NotAFrame {
        /// Frames decoded before them.
        after: u64,
    },
    /// A frame whose content is not the size its header declares (libzstd
    /// does not compare them when the frame ends with an empty block, and
    /// reports a frame decoding past it only when its buffer runs out:
    /// checked here for every frame).
    #[error("a zstd frame does not hold the {declared} bytes it declares")]
    ContentSize {
        /// The frame (0-based).
        frame: u64,
        /// The content size its header declares.
        declared: u64,
    },
    /// A frame whose window is larger than the limit (libzstd checks the
    /// limit only when it decodes through its window buffer, not when the
    /// whole frame fits the output at once: the header is checked here).
    #[error("zstd frame {frame} needs a {window}-byte window")]
    WindowTooLarge {
        /// The frame (0-based).
        frame: u64,
        /// Its window size in bytes.
        window: u64,
    },
}

/// The window size a zstd frame header declares (RFC 8878 §3.1.1.1.2:
/// the window descriptor, or the content size of a single-segment frame),
/// from its first bytes `head` (magic included); `None` until enough
/// bytes are known.
fn frame_window(head: &[u8]) -> Option<u64> {
    let fhd = *head.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    if !single_segment {
        let wd = *head.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = [1, 2, 4, 8][usize::from(fhd >> 6)];
    let at = 5 + dict_len;
    let field = head.get(at..at + fcs_len)?;
    let mut v = [0u8; 8];
    v[..fcs_len].copy_from_slice(field);
    let n = u64::from_le_bytes(v);
    Some(if fcs_len == 2 { n + 256 } else { n })
}

/// The length of a zstd frame header (RFC 8878 §3.1.1.1: magic, frame
/// header descriptor, window descriptor, dictionary id, content size),
/// from its first bytes `head`; `None` until the descriptor is known.
fn header_len(head: &[u8]) -> Option<usize> {
    let fhd = *head.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match (fhd >> 6, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    Some(5 + usize::from(!single_segment) + dict_len + fcs_len)
}

/// The content size a whole zstd frame header `head` declares, if any
/// (RFC 8878 §3.1.1.1.4; a 2-byte field is offset by 256).
fn content_size(head: &[u8]) -> Option<u64> {
    let fhd = *head.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    let fcs_len = match (fhd >> 6, single_segment) {
        (0, false) => return None,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let end = header_len(head)?;
    let field = head.get(end - fcs_len..end)?;
    let mut v = [0u8; 8];
    v[..fcs_len].copy_from_slice(field);
    Some(u64::from_le_bytes(v) + if fcs_len == 2 { 256 } else { 0 })
}

/// A zstd block header (RFC 8878 §3.1.1.2): 3 bytes, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHeader {
    /// The frame's last block.
    last: bool,
    /// 0 raw, 1 RLE, 2 compressed, 3 reserved.
    kind: u32,
    /// `Block_Size`: the content of a raw or RLE block, the compressed
    /// bytes of a compressed one.
    size: usize,
}

impl BlockHeader {
    /// The header in `b[..3]`.
    fn parse(b: &[u8]) -> Self {
        let h = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        BlockHeader {
            last: h & 1 == 1,
            kind: (h >> 1) & 3,
            size: (h >> 3) as usize,
        }
    }

    /// The block's bytes in the frame, its header included: an RLE block
    /// is one byte (repeated), a reserved one is refused at its header.
    fn wire_len(&self) -> usize {
        3 + match self.kind {
            1 => 1,
            3 => 0,
            _ => self.size,
        }
    }
}

/// Where the decoder is in the current frame's body, the blocks and
/// checksum after its header: what the next call of the decoder may be
/// given ([`Frames::body_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// A block header is next (not looked at yet).
    Next,
    /// Inside a block: `left` of its bytes (header included) not consumed.
    Block {
        /// Bytes not consumed yet.
        left: usize,
        /// The frame's last block.
        last: bool,
    },
    /// Inside the content checksum (RFC 8878 §3.1.1: 4 bytes after the last block).
    Checksum {
        /// Bytes not consumed yet.
        left: usize,
    },
    /// Nothing more may be given to the decoder in this frame: its last
    /// block (and checksum) were consumed, or the input was cut inside a
    /// block header. (Its output may not all be out yet.)
    Done,
}

/// The longest frame header: magic, descriptor, window descriptor,
/// dictionary id (up to 4), content size (up to 8).
const MAX_HEADER: usize = 4 + 1 + 1 + 4 + 8;

/// The frame bookkeeping, apart from the input (so it can be updated while
/// the input's buffer is borrowed).
struct State {
    /// A frame has started (some of its bytes were consumed) and not ended.
    in_frame: bool,
    /// Frames completely decoded.
    frames: u64,
    /// The current frame's first bytes (up to its whole header).
    head: [u8; MAX_HEADER],
    head_len: usize,
    /// The current frame's window was checked against `window_max`.
    window_checked: bool,
    /// The content size the current frame's header declares, once read.
    declared: Option<u64>,
    /// Bytes the current frame decoded to so far.
    frame_out: u64,
    /// Where the decoder is in the current frame's blocks, once its header is consumed.
    body: Body,
    /// The largest window a frame may declare, in bytes.
    window_max: u64,
}

impl State {
    /// Before the first frame, refusing windows past `window_max` bytes.
    fn new(window_max: u64) -> Self {
        State {
            in_frame: false,
            frames: 0,
            head: [0; MAX_HEADER],
            head_len: 0,
            window_checked: false,
            declared: None,
            frame_out: 0,
            body: Body::Next,
            window_max,
        }
    }

    /// Accounts for `used` bytes consumed by the decoder (which made `made`
    /// bytes of output), and whether the current frame ended with them.
    fn note(&mut self, used: &[u8], made: usize, ended: bool) -> io::Result<()> {
        // (A call consumes header bytes or body bytes, never both: until the
        // header is consumed, the decoder is given no more than its rest.)
        if self.header_done() {
            self.consume_body(used.len());
        }
        if !used.is_empty() && !self.in_frame {
            self.in_frame = true;
            self.head_len = 0;
            self.window_checked = false;
            self.declared = None;
            self.frame_out = 0;
            self.body = Body::Next;
        }
        let take = used.len().min(self.head.len() - self.head_len);
        self.head[self.head_len..self.head_len + take].copy_from_slice(&used[..take]);
        self.head_len += take;
        if !self.window_checked
            && self.head[..self.head_len.min(4)] == FRAME_MAGIC[..self.head_len.min(4)]
            && let Some(window) = frame_window(&self.head[..self.head_len])
        {
            self.window_checked = true;
            if window > self.window_max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    FrameError::WindowTooLarge {
                        frame: self.frames,
                        window,
                    },
                ));
            }
        }
        if self.declared.is_none() && self.header_done() {
            self.declared = content_size(&self.head[..self.head_len]);
        }
        self.frame_out += made as u64;
        if let Some(declared) = self.declared
            && (self.frame_out > declared || (ended && self.frame_out != declared))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                FrameError::ContentSize {
                    frame: self.frames,
                    declared,
                },
            ));
        }
        if ended {
            self.in_frame = false;
            self.frames += 1;
        }
        Ok(())
    }

    /// How many of `next`, the input not yet consumed, may be handed to
    /// libzstd while the frame's header is not whole: never more than the
    /// rest of the header, and its last byte alone. libzstd decodes a frame
    /// in one pass (with other checks) when the call that completes its
    /// header holds a whole frame.
    fn header_left(&self, next: &[u8]) -> usize {
        let have = if self.in_frame {
            self.head_len.min(MAX_HEADER)
        } else {
            0
        };
        let mut known = [0u8; MAX_HEADER];
        known[..have].copy_from_slice(&self.head[..have]);
        let more = next.len().min(MAX_HEADER - have);
        known[have..have + more].copy_from_slice(&next[..more]);
        // The call that completes the header holds only its last byte: libzstd
        // looks for a whole frame from the start of that call's input (and a
        // header's own bytes can hold one, e.g. a skippable frame after a
        // dictionary id). Five bytes never complete a header (six at least).
        match header_len(&known[..have + more]) {
            None => 5usize.saturating_sub(have).max(1),
            Some(want) if want > have + 1 => want - have - 1,
            Some(_) => 1,
        }
    }

    /// Advances [`State::body`] over `n` consumed bytes of the frame's body.
    fn consume_body(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let checksum = self.head[4] & 0x04 != 0;
        // ([`Frames::body_limit`] never gives more than the unit's rest.)
        debug_assert!(match self.body {
            Body::Block { left, .. } | Body::Checksum { left } => n <= left,
            Body::Next => n < 3,
            Body::Done => false,
        });
        self.body = match self.body {
            Body::Block { left, last } if left > n => Body::Block { left: left - n, last },
            Body::Block { last: false, .. } => Body::Next,
            Body::Block { last: true, .. } if checksum => Body::Checksum { left: 4 },
            Body::Checksum { left } if left > n => Body::Checksum { left: left - n },
            // The last block (without a checksum) or the checksum, consumed;
            // or bytes of a block header not looked at (a cut input's last
            // bytes): nothing the decoder may be given follows.
            _ => Body::Done,
        };
    }

    /// Whether the current frame's whole header was consumed.
    fn header_done(&self) -> bool {
        self.in_frame && header_len(&self.head[..self.head_len]).is_some_and(|n| self.head_len >= n)
    }

    /// Checks the start of a frame about to be decoded: `next` are the
    /// input bytes not yet consumed. Refuses a skippable frame or bytes
    /// that are not a frame once four bytes of the frame are known.
    fn check_start(&self, next: &[u8]) -> io::Result<()> {
        if self.in_frame && self.head_len >= 4 {
            return Ok(());
        }
        let have = if self.in_frame { self.head_len } else { 0 };
        let mut magic = [0u8; 4];
        magic[..have].copy_from_slice(&self.head[..have]);
        let more = next.len().min(4 - have);
        magic[have..have + more].copy_from_slice(&next[..more]);
        if have + more < 4 {
            // Not known yet (the buffer ends), unless what is known already
            // starts neither a frame nor a skippable frame: refused at once
            // (a pipe that stalls after one wrong byte is not waited for).
            let known = &magic[..have + more];
            let frame = *known == FRAME_MAGIC[..known.len()];
            let skippable = known.first().is_none_or(|b| b & 0xf0 == 0x50)
                && known
                    .get(1..)
                    .is_none_or(|rest| *rest == [0x2a, 0x4d, 0x18][..rest.len()]);
            if frame || skippable {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                FrameError::NotAFrame { after: self.frames },
            ));
        }
        if magic == FRAME_MAGIC {
            return Ok(());
        }
        let error = if magic[1..] == [0x2a, 0x4d, 0x18] && magic[0] & 0xf0 == 0x50 {
            FrameError::Skippable { after: self.frames }
        } else {
            FrameError::NotAFrame { after: self.frames }
        };
        Err(io::Error::new(io::ErrorKind::InvalidData, error))
    }
}

/// Bytes read from the input at a time (and the buffer's usual size).
const INPUT_CHUNK: usize = 256 << 10;

/// The largest zstd block's content (RFC 8878 §3.1.1.2.4, `Block_Maximum_Size`).
const MAX_BLOCK: usize = 128 << 10;

/// The most input the decoder is given in one call inside a frame's body
/// ([`Frames::body_limit`]): a whole block of the largest size, header
/// included. (A block declaring more is refused by libzstd at its header.)
const MAX_UNIT: usize = 3 + MAX_BLOCK;

/// The compressed input, buffered so that a whole frame can be looked at
/// before any of it is consumed ([`Frames::take_frame`]).
struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    /// The unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl<R: Read> Input<R> {
    fn new(inner: R) -> Self {
        Input {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// Reads into the buffer's free tail once; `Ok(0)` at the input's end.
    fn read_more(&mut self) -> io::Result<usize> {
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// At least `n` unconsumed bytes, or fewer when the input ends first.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.end - self.pos < n {
            if self.buf.len() - self.pos < n.max(INPUT_CHUNK) {
                // Move what is left to the front, with room for `n` and a chunk.
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
                let want = n.max(INPUT_CHUNK) + INPUT_CHUNK;
                if self.buf.len() < want {
                    self.buf.resize(want, 0);
                }
            }
            if self.read_more()? == 0 {
                break;
            }
        }
        Ok(&self.buf[self.pos..self.end])
    }
}

impl<R> Input<R> {
    /// Consumes the next `n` buffered bytes and returns them. A large run
    /// at the buffer's start (a frame the buffer grew to hold) is handed
    /// out as the buffer itself, which is replaced, instead of copied.
    fn take_front(&mut self, n: usize) -> Vec<u8> {
        assert!(n <= self.end - self.pos, "only buffered bytes are taken");
        if self.pos > 0 || n <= INPUT_CHUNK {
            let front = self.buf[self.pos..self.pos + n].to_vec();
            self.pos += n;
            return front;
        }
        let left = self.end - n;
        let mut rest = vec![0; (2 * INPUT_CHUNK).max(left)];
        rest[..left].copy_from_slice(&self.buf[n..self.end]);
        let mut front = std::mem::replace(&mut self.buf, rest);
        front.truncate(n);
        front.shrink_to_fit();
        self.end = left;
        front
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let have = self.fill_buf()?;
            let n = have.len().min(out.len());
            out[..n].copy_from_slice(&have[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            // A buffer grown for one large frame is let go past 8 MiB.
            if self.buf.len() < 2 * INPUT_CHUNK || self.buf.len() > 8 << 20 {
                self.buf = vec![0; 2 * INPUT_CHUNK];
            }
            self.pos = 0;
            self.end = 0;
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

/// An output buffer of at most `limit` bytes over a `Vec`'s spare capacity,
/// so a frame decodes into a recycled buffer without zeroing it first and
/// never past the size its member declares.
struct Bounded<'a> {
    vec: &'a mut Vec<u8>,
    limit: usize,
}

// SAFETY: `capacity` never exceeds the vector's, and `filled_until` is
// called by zstd with at most `capacity` initialized bytes.
unsafe impl zstd::zstd_safe::WriteBuf for Bounded<'_> {
    fn as_slice(&self) -> &[u8] {
        self.vec.as_slice()
    }
    fn capacity(&self) -> usize {
        self.vec.capacity().min(self.limit)
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.vec.as_mut_ptr()
    }
    unsafe fn filled_until(&mut self, n: usize) {
        // SAFETY: the caller initialized `n` bytes, n <= capacity().
        unsafe { self.vec.set_len(n) }
    }
}

thread_local! {
    /// Each thread's decoder for [`decode_frame`], used again for every frame.
    static DECODER: std::cell::RefCell<Option<Decoder<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Decodes `frame`, one whole zstd frame taken by [`Frames::take_frame`],
/// into `out` (empty, with room for `size` bytes), exactly as [`Frames`]
/// decodes as it streams: with libzstd's streaming decoder under the
/// window limit, no output room until the header is consumed (never the
/// one-pass decoder, whose checks differ), and never past `size` bytes.
///
/// # Errors
/// libzstd's error; `UnexpectedEof` when the frame ends early or decodes
/// to more than `size` bytes; `InvalidData` when bytes follow it.
pub(super) fn decode_frame(frame: &[u8], out: &mut Vec<u8>, size: usize, window_log_max: u32) -> io::Result<()> {
    DECODER.with(|d| {
        let mut d = d.borrow_mut();
        let decoder = match &mut *d {
            Some(decoder) => decoder,
            None => d.insert(Decoder::new()?),
        };
        decoder.reinit()?;
        decoder.set_parameter(DParameter::WindowLogMax(window_log_max))?;
        // The header alone first, with no output room (as `Frames` does).
        let header = header_len(frame).unwrap_or(frame.len()).min(frame.len());
        let mut src = InBuffer::around(&frame[..header]);
        let mut hint = decoder.run(&mut src, &mut OutBuffer::around(&mut [][..]))?;
        let read = src.pos();
        let mut src = InBuffer::around(frame);
        src.set_pos(read);
        let wrong_size = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                FrameError::ContentSize {
                    frame: 0,
                    declared: size as u64,
                },
            )
        };
        while hint != 0 {
            let before = (src.pos(), out.len());
            hint = {
                let pos = out.len();
                let mut bounded = Bounded {
                    vec: &mut *out,
                    limit: size,
                };
                // (zstd sets the vector's length as it fills it.)
                decoder.run(&mut src, &mut OutBuffer::around_pos(&mut bounded, pos))?
            };
            if hint != 0 && (src.pos(), out.len()) == before {
                // No room left (it decodes past its size), or no input left
                // (the walk saw every block: it decodes short of its size).
                return Err(wrong_size());
            }
        }
        if out.len() != size {
            return Err(wrong_size());
        }
        if src.pos() != frame.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bytes follow the zstd frame",
            ));
        }
        Ok(())
    })
}

/// The decompressed archive: one or more zstd frames read from `input`.
/// `read` returns `Ok(0)` only at the end of the input after a complete
/// frame; the input ending inside a frame is `UnexpectedEof`.
pub(super) struct Frames<R> {
    input: Input<R>,
    decoder: Decoder<'static>,
    state: State,
    /// Whether frames may be handed on (the window limit is the store's).
    can_hand_on: bool,
    /// libzstd may hold output of the current frame not handed out yet
    /// (its last call filled the room it was given).
    holds_output: bool,
}

impl<R: Read> Frames<R> {
    /// Reads frames from `input`, refusing a frame whose window is larger
    /// than 2^`window_log_max` bytes before allocating it.
    pub(super) fn new(input: R, window_log_max: u32) -> io::Result<Self> {
        let mut decoder = Decoder::new()?;
        decoder.set_parameter(DParameter::WindowLogMax(window_log_max))?;
        Ok(Frames {
            input: Input::new(input),
            decoder,
            state: State::new(1u64 << window_log_max.min(63)),
            can_hand_on: window_log_max <= STORE_WINDOW_LOG,
            holds_output: false,
        })
    }

    /// Whether a frame may be handed on to the store ([`STORE_WINDOW_LOG`]).
    pub(super) fn can_hand_on(&self) -> bool {
        self.can_hand_on
    }

    /// When the next bytes are one whole zstd frame that holds exactly the
    /// `size` bytes of a file member about to be read, consumes that frame
    /// without decoding it and returns it, for decoding elsewhere
    /// (`read_parallel`); else `None`, with nothing consumed, and the
    /// member is read through [`Read`] as usual.
    ///
    /// Such a frame starts here (no frame is half read), has a well-formed
    /// header (no dictionary, reserved bits clear, a window within the
    /// limit) that declares `size` as its content size, and its blocks
    /// (RFC 8878 §3.1.1.2: none reserved, none holding more than the block
    /// maximum of min(window, 128 KiB), no empty compressed block, raw and
    /// RLE ones within `size`) and checksum end within `max` bytes before
    /// the input does. Whatever fails to fit is left to the streaming
    /// decoder, so every refusal of a damaged frame is the one [`Read`]
    /// gives; what the walk cannot see (the content of compressed blocks)
    /// the decoder elsewhere checks ([`decode_frame`], as [`Read`] decodes),
    /// and the member's BLAKE3 after it.
    ///
    /// # Errors
    /// Reading the input.
    pub(super) fn take_frame(&mut self, size: u64, max: usize) -> io::Result<Option<Vec<u8>>> {
        if self.state.in_frame || size == 0 {
            return Ok(None);
        }
        let head = self.input.peek(MAX_HEADER)?;
        if head.len() < 6 || head[..4] != FRAME_MAGIC {
            return Ok(None);
        }
        let fhd = head[4];
        let single_segment = fhd & 0x20 != 0;
        // Unused and reserved bits, or a dictionary.
        if fhd & 0x1b != 0 {
            return Ok(None);
        }
        let fcs_len = match (fhd >> 6, single_segment) {
            (0, false) => return Ok(None), // no content size
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let fcs_at = 5 + usize::from(!single_segment);
        let mut at = fcs_at + fcs_len;
        let Some(window) = frame_window(head) else {
            return Ok(None);
        };
        if head.len() < at || window > self.state.window_max {
            return Ok(None);
        }
        let mut v = [0u8; 8];
        v[..fcs_len].copy_from_slice(&head[fcs_at..at]);
        let declared = u64::from_le_bytes(v) + if fcs_len == 2 { 256 } else { 0 };
        if declared != size {
            return Ok(None);
        }
        let checksum = fhd & 0x04 != 0;
        // RFC 8878 §3.1.1.2.4: no block holds more than this, compressed or not.
        let block_max = window.min(MAX_BLOCK as u64) as usize;
        let mut plain = 0u64;
        loop {
            if at + 3 > max {
                return Ok(None);
            }
            let b = self.input.peek(at + 3)?;
            if b.len() < at + 3 {
                return Ok(None);
            }
            let h = BlockHeader::parse(&b[at..at + 3]);
            let BlockHeader { last, kind, size: len } = h;
            // A reserved block type, a block past the maximum, or an empty
            // compressed block (which holds at least its literals header):
            // not a plain frame.
            if kind == 3 || len > block_max || (kind == 2 && len == 0) || (last && len == 0) {
                return Ok(None);
            }
            if kind != 2 {
                plain += len as u64;
                if plain > size {
                    return Ok(None);
                }
            }
            at += h.wire_len();
            if last {
                break;
            }
        }
        if checksum {
            at += 4;
        }
        if at > max || self.input.peek(at)?.len() < at {
            return Ok(None);
        }
        let frame = self.input.take_front(at);
        self.state.frames += 1;
        Ok(Some(frame))
    }
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            // While libzstd holds output it is given no input: the input is
            // neither waited for (a pipe) nor found to end before all it
            // holds is out, so a cut package is refused where its decodable
            // bytes end, whatever the caller's buffer.
            let draining = self.state.header_done() && self.holds_output;
            let input: &[u8] = if draining {
                &[]
            } else if !self.state.in_frame || self.state.head_len < 4 {
                // A frame's magic number, looked at whole however it arrives
                // ([`State::check_start`]): libzstd refuses a wrong one as soon
                // as it has one byte, with its own error. (What is there is
                // looked at first: a prefix of no magic number is refused
                // without waiting for the rest.)
                let there = self.input.fill_buf()?;
                self.state.check_start(there)?;
                self.input.peek(4)?
            } else {
                self.input.fill_buf()?
            };
            if input.is_empty() && !draining {
                return match (self.state.in_frame, self.state.frames) {
                    (true, _) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the zstd stream ends inside a frame",
                    )),
                    (false, 0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the zstd stream is empty")),
                    (false, _) => Ok(0),
                };
            }
            if !draining {
                self.state.check_start(input)?;
            }
            let header_done = self.state.header_done();
            // Until the frame's header is consumed, no more input than the
            // header and no output room: libzstd decodes a whole frame in one
            // pass when the call that reads its header holds all of it and
            // has room for its content (always, for an empty frame), and
            // that pass checks other things than the streaming one (block
            // sizes against the window; empty compressed blocks). Every frame
            // is decoded the same way, however the input arrives and
            // whatever the caller's buffer (`decode_frame`).
            //
            // After it, one block (or the checksum) at a time, and only once
            // libzstd has handed out all it made of the blocks before: the
            // next block is read, and found damaged, in the call that asks
            // for its first byte, whatever the caller's buffer and however
            // the input arrives ([`Frames::body_limit`]).
            let (limit, room) = if !header_done {
                (self.state.header_left(input), &mut [][..])
            } else if draining {
                (0, &mut *buf)
            } else {
                (self.body_limit()?, &mut *buf)
            };
            let room_len = room.len();
            let (used, made, ended) = self.run_once(limit, room)?;
            // (libzstd stops short of the room only when it has nothing more
            // to hand out until it is given input.)
            self.holds_output = header_done && !ended && made == room_len;
            if !ended && self.state.in_frame && self.state.declared == Some(self.state.frame_out) {
                // All the frame declares is out: its end is read now, before
                // these bytes are handed on, so a frame holding more (or a
                // bad checksum) is found with the member it belongs to,
                // however the input arrives (as `decode_frame` finds it).
                self.finish_frame()?;
            }
            if made > 0 {
                return Ok(made);
            }
            // (A call given no input to draw out what libzstd held that made
            // nothing: all was out, the next call is given the next block.)
            if used == 0 && !ended && !draining {
                return Err(io::Error::other("the zstd decoder made no progress"));
            }
        }
    }
}

impl<R: Read> Frames<R> {
    /// One call of the decoder on at most `limit` bytes of the buffered
    /// (non-empty) input, into `out`, with the frame bookkeeping
    /// ([`State::note`]): the bytes it used, the bytes it made, and whether
    /// the frame ended.
    fn run_once(&mut self, limit: usize, out: &mut [u8]) -> io::Result<(usize, usize, bool)> {
        let input: &[u8] = if limit == 0 { &[] } else { self.input.fill_buf()? };
        let input = &input[..input.len().min(limit)];
        let mut src = InBuffer::around(input);
        let mut dst = OutBuffer::around(out);
        let hint = self.decoder.run(&mut src, &mut dst)?;
        let (used, made) = (src.pos(), dst.pos());
        let noted = self.state.note(&input[..used], made, hint == 0);
        self.input.consume(used);
        noted?;
        if hint == 0 {
            self.decoder.reinit()?;
            self.holds_output = false;
        }
        Ok((used, made, hint == 0))
    }

    /// How much of the input the decoder may be given next, inside a
    /// frame's body: the rest of the current block, or of the checksum,
    /// which is buffered whole first (at most [`MAX_UNIT`] bytes of it).
    /// 0 once the frame's last block (and checksum) are consumed. With
    /// [`Frames::read`] giving it no input while it holds output, libzstd
    /// never sees the next block, or the checksum, in the call that hands
    /// out the previous block's last bytes: it reads them, and finds what is
    /// wrong with them, in the first call after all before is out, whether
    /// or not the input had arrived (a pipe, a refill) and whatever the
    /// caller's buffer; so a damaged frame is refused at the same member
    /// however the input arrives.
    ///
    /// # Errors
    /// Reading the input.
    fn body_limit(&mut self) -> io::Result<usize> {
        if self.state.body == Body::Next {
            let b = self.input.peek(3)?;
            if b.len() < 3 {
                return Ok(b.len()); // the input ends inside a block header
            }
            let h = BlockHeader::parse(b);
            self.state.body = Body::Block {
                left: h.wire_len(),
                last: h.last,
            };
        }
        let left = match self.state.body {
            Body::Block { left, .. } | Body::Checksum { left } => left,
            Body::Done => 0,
            Body::Next => unreachable!("a block header was just looked at"),
        };
        let limit = left.min(MAX_UNIT);
        self.input.peek(limit)?;
        Ok(limit)
    }

    /// Reads the rest of a frame whose declared content is all out: its
    /// last block's end and checksum. A byte more, held by libzstd already
    /// or decoded from what follows, is a [`FrameError::ContentSize`] error
    /// at once; the input ending before the frame's end is left for the
    /// next read to report.
    fn finish_frame(&mut self) -> io::Result<()> {
        if self.holds_output {
            // (`note` refuses a byte of it, whether or not the input goes on.)
            self.run_once(0, &mut [0u8; 1])?;
            self.holds_output = false;
        }
        loop {
            if self.input.fill_buf()?.is_empty() {
                return Ok(());
            }
            let mut scratch = [0u8; 1];
            let limit = self.body_limit()?;
            let (used, _, ended) = self.run_once(limit, &mut scratch)?;
            if ended {
                return Ok(());
            }
            if used == 0 {
                return Err(io::Error::other("the zstd decoder made no progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(data, 3).unwrap()
    }

    fn read_all(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut f = Frames::new(io::BufReader::with_capacity(7, bytes), 27)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn concatenated_frames_decode_to_the_concatenation() {
        let mut bytes = frame(b"hello, ");
        bytes.extend(frame(b""));
        bytes.extend(frame(&b"world".repeat(1000)));
        let mut want = b"hello, ".to_vec();
        want.extend(b"world".repeat(1000));
        assert_eq!(read_all(&bytes).unwrap(), want);
    }

    #[test]
    fn skippable_frames_garbage_and_truncation_are_refused() {
        let mut skippable = frame(b"a");
        skippable.extend([0x5a, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, b'x']);
        let e = read_all(&skippable).unwrap_err();
        assert!(
            matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(FrameError::Skippable { after: 1 })
            ),
            "{e}"
        );
        let mut garbage = frame(b"a");
        garbage.extend(b"garbage");
        let e = read_all(&garbage).unwrap_err();
        assert!(
            matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(FrameError::NotAFrame { after: 1 })
            ),
            "{e}"
        );
        let whole = frame(&b"abc".repeat(500));
        for cut in [0, 1, 3, whole.len() - 1] {
            let e = read_all(&whole[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
    }

    /// libzstd skips its window limit when it decodes a whole frame in one
    /// pass (when the output has room for all of it); this reader never
    /// lets it, and its own header check refuses such a frame anyway.
    #[test]
    fn a_window_past_the_limit_is_refused_even_when_the_output_fits() {
        let body = vec![0u8; 10 << 20];
        let mut f = zstd::bulk::compress(&body, 1).unwrap();
        assert_eq!(f[4] & 0x20, 0, "not single-segment: a window descriptor follows");
        f[5] = (31 - 10) << 3; // a 2 GiB window
        let mut r = Frames::new(io::BufReader::with_capacity(1 << 20, &f[..]), 27).unwrap();
        let mut out = vec![0u8; body.len()];
        let e = r.read_exact(&mut out).unwrap_err();
        assert!(
            matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(FrameError::WindowTooLarge { frame: 0, .. })
            ) || e.to_string().contains("Frame requires too much memory"),
            "{e}"
        );
        let mut state = State::new(1 << 27);
        let e = state.note(&f[..6], 0, false).unwrap_err();
        assert!(
            matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(FrameError::WindowTooLarge { frame: 0, .. })
            ),
            "{e}"
        );
        // Within the limit, the same frame reads.
        let ok = zstd::bulk::compress(&body, 1).unwrap();
        let mut r = Frames::new(io::BufReader::with_capacity(1 << 20, &ok[..]), 27).unwrap();
        r.read_exact(&mut out).unwrap();
        assert_eq!(frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05]), Some(5));
        assert_eq!(
            frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x01]),
            Some(256 + 256)
        );
        assert_eq!(frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00]), Some(1024));
        assert_eq!(frame_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00]), None);
    }

    #[test]
    fn a_whole_frame_holding_exactly_the_member_is_taken_undecoded() {
        let body = b"member data ".repeat(30_000); // several blocks
        let data = zstd::bulk::compress(&body, 1).unwrap();
        let mut bytes = frame(&[7u8; 512]);
        bytes.extend(&data);
        bytes.extend(frame(&[0u8; 1024]));
        let mut f = Frames::new(io::BufReader::with_capacity(5, &bytes[..]), 27).unwrap();
        let mut h = [0u8; 512];
        f.read_exact(&mut h).unwrap();
        let size = body.len() as u64;
        // Not a frame of this size, or not within the bound: left.
        assert_eq!(f.take_frame(size - 1, usize::MAX).unwrap(), None);
        assert_eq!(f.take_frame(size, data.len() - 1).unwrap(), None);
        assert_eq!(f.take_frame(size, data.len()).unwrap().as_deref(), Some(&data[..]));
        // The stream goes on after it.
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, vec![0u8; 1024]);
    }

    #[test]
    fn a_frame_that_is_cut_shared_or_too_wide_is_left_to_the_decoder() {
        let body = b"member data ".repeat(3000);
        let data = zstd::bulk::compress(&body, 1).unwrap();
        let size = body.len() as u64;
        let take = |bytes: &[u8]| {
            let mut f = Frames::new(bytes, 27).unwrap();
            let got = f.take_frame(size, usize::MAX).unwrap();
            // Whatever was left reads (or fails) from the frame's first byte.
            let mut out = Vec::new();
            let read = f.read_to_end(&mut out).map(|_| out);
            (got, read)
        };
        let (got, read) = take(&data[..data.len() - 1]);
        assert_eq!(got, None);
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut more = body.clone();
        more.push(b'!');
        let (got, read) = take(&frame(&more));
        assert_eq!((got, read.unwrap()), (None, more));
        let mut wide = data.clone();
        assert_eq!(wide[4] & 0x20, 0x20, "single segment: the window is the content size");
        wide[4] &= !0x20;
        wide.insert(5, (28 - 10) << 3); // a window descriptor of 2^28 bytes
        let (got, read) = take(&wide);
        assert_eq!(got, None);
        assert!(read.is_err());
        // Without the content size, a frame is never taken.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &body).unwrap();
        let (got, read) = take(&enc.finish().unwrap());
        assert_eq!((got, read.unwrap()), (None, body));
    }

    /// A frame by hand: header bytes after the magic, then `blocks` as
    /// (type, content) where an RLE block's content is its byte repeated
    /// `len` times, then `tail` (a checksum).
    fn by_hand(header: &[u8], blocks: &[(u32, &[u8], usize)], tail: &[u8]) -> Vec<u8> {
        let mut f = FRAME_MAGIC.to_vec();
        f.extend_from_slice(header);
        for (i, (kind, bytes, len)) in blocks.iter().enumerate() {
            let h = u32::from(i + 1 == blocks.len()) | kind << 1 | (*len as u32) << 3;
            f.extend_from_slice(&h.to_le_bytes()[..3]);
            f.extend_from_slice(bytes);
        }
        f.extend_from_slice(tail);
        f
    }

    /// Every header encoding and block kind the walk must count right:
    /// each frame is taken whole, and the bytes after it still read.
    #[test]
    fn the_walk_takes_frames_of_every_shape() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let cases: Vec<(&str, Vec<u8>, u64)> = vec![
            // single segment, 1-byte content size
            (
                "1-byte size",
                by_hand(&[0x20, 200], &[(0, &data[..200], 200)], &[]),
                200,
            ),
            // 2-byte content size: value + 256
            (
                "2-byte size",
                by_hand(&[0x40, 10 << 3, 44, 0], &[(0, &data, 300)], &[]),
                300,
            ),
            (
                "4-byte size",
                by_hand(&[0x80, 10 << 3, 44, 1, 0, 0], &[(0, &data, 300)], &[]),
                300,
            ),
            (
                "8-byte size",
                by_hand(&[0xc0, 10 << 3, 44, 1, 0, 0, 0, 0, 0, 0], &[(0, &data, 300)], &[]),
                300,
            ),
            // RLE blocks: one byte each, counted by their length
            ("RLE", by_hand(&[0x20, 250], &[(1, &[9], 200), (1, &[8], 50)], &[]), 250),
            (
                "checksum",
                by_hand(&[0x24, 200], &[(0, &data[..200], 200)], &[1, 2, 3, 4]),
                200,
            ),
        ];
        for (name, frame, size) in cases {
            let mut bytes = frame.clone();
            bytes.extend(zstd::bulk::compress(b"after", 1).unwrap());
            let mut f = Frames::new(&bytes[..], 27).unwrap();
            assert_eq!(
                f.take_frame(size, usize::MAX).unwrap().as_deref(),
                Some(&frame[..]),
                "{name}"
            );
            let mut rest = Vec::new();
            f.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"after", "{name}");
        }
        // What the walk leaves: a dictionary, reserved bits, a reserved block
        // type, a block past the window, an empty compressed block, raw bytes
        // past the content size, no last block.
        let left: Vec<(&str, Vec<u8>)> = vec![
            ("dictionary", by_hand(&[0x21, 1, 200], &[(0, &data[..200], 200)], &[])),
            ("reserved bit", by_hand(&[0x28, 200], &[(0, &data[..200], 200)], &[])),
            ("unused bit", by_hand(&[0x30, 200], &[(0, &data[..200], 200)], &[])),
            ("reserved block", by_hand(&[0x20, 200], &[(3, &data[..200], 200)], &[])),
            // (a 1 KiB window, and a compressed block of 1100 bytes)
            (
                "block past the window",
                by_hand(&[0x80, 0, 200, 0, 0, 0], &[(2, &[0; 1100], 1100)], &[]),
            ),
            (
                "empty compressed block",
                by_hand(&[0x20, 200], &[(0, &data[..200], 200), (2, &[], 0)], &[]),
            ),
            (
                "past the size",
                by_hand(&[0x20, 200], &[(0, &data[..200], 200), (0, &data[..1], 1)], &[]),
            ),
        ];
        for (name, frame) in left {
            let mut f = Frames::new(&frame[..], 27).unwrap();
            assert_eq!(f.take_frame(200, usize::MAX).unwrap(), None, "{name}");
        }
        let mut endless = by_hand(&[0x20, 200], &[(0, &data[..100], 100)], &[]);
        endless[6] &= !1; // not the last block
        let mut f = Frames::new(&endless[..], 27).unwrap();
        assert_eq!(f.take_frame(200, usize::MAX).unwrap(), None, "no last block");
    }

    /// A run taken from the input is the same whether it is copied out or
    /// handed out as the (grown) buffer, and what follows still reads.
    #[test]
    fn taking_from_the_input_copies_or_hands_out_the_buffer() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for (skip, n) in [(0, 100), (0, 2_000_000), (10, 2_000_000), (0, INPUT_CHUNK + 1)] {
            let mut input = Input::new(&bytes[..]);
            input.peek(skip).unwrap();
            input.consume(skip);
            assert!(input.peek(n).unwrap().len() >= n);
            let taken = input.take_front(n);
            assert_eq!(taken, bytes[skip..skip + n], "skip {skip}, n {n}");
            let mut rest = Vec::new();
            input.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, bytes[skip + n..], "skip {skip}, n {n}");
        }
    }
}

#[cfg(test)]
mod frame_edge_tests {
    use super::*;

    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all<R: Read>(r: R) -> Result<Vec<u8>, String> {
        let mut f = Frames::new(r, 27).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).map(|_| out).map_err(|e| e.to_string())
    }

    /// Content size 0: libzstd's one-pass shortcut would fire even with no
    /// output room (0 >= 0) were the whole frame in one call's input; the
    /// verdict must not depend on how the input arrives.
    #[test]
    fn an_empty_frame_reads_the_same_however_the_input_arrives() {
        let a = zstd::bulk::compress(b"a", 1).unwrap();
        let b = zstd::bulk::compress(b"b", 1).unwrap();
        // content size 0, one empty compressed last block
        let empty_cblock = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x05, 0x00, 0x00];
        // content size 0, a 5-byte raw block, an empty raw last block
        // (not single-segment: a 1 KiB window, a 4-byte content size of 0)
        let mut lying = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x00, 0, 0, 0, 0];
        lying.extend_from_slice(&((5u32 << 3).to_le_bytes()[..3]));
        lying.extend_from_slice(b"HELLO");
        lying.extend_from_slice(&1u32.to_le_bytes()[..3]);
        let mut diffs = Vec::new();
        for (name, f) in [
            ("empty compressed block", empty_cblock),
            ("5 bytes in a 0-byte frame", lying),
        ] {
            let bytes = [&a[..], &f, &b].concat();
            let whole = all(&bytes[..]);
            let short = all(Chunks(&bytes, 1));
            if whole != short {
                diffs.push(name);
            }
        }
        assert!(diffs.is_empty(), "verdict depends on input chunking: {diffs:?}");
    }

    /// A frame declaring 200 bytes, with only an empty raw last block
    /// (libzstd does not compare the content size then): the walk leaves
    /// it, and both `Frames` and `decode_frame` refuse it.
    #[test]
    fn a_frame_ending_short_of_its_declared_size_is_refused_by_both_decoders() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let mut p = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, 200];
        p.extend_from_slice(&1u32.to_le_bytes()[..3]);
        let bytes = [&p[..], &zstd::bulk::compress(&data, 1).unwrap()].concat();
        let mut f = Frames::new(&bytes[..], 27).unwrap();
        let taken = f.take_frame(200, usize::MAX).unwrap();
        assert_eq!(taken, None, "the walk leaves a frame whose last block is empty");
        let mut out = Vec::with_capacity(200);
        let r = decode_frame(&p, &mut out, 200, 27);
        assert!(all(&bytes[..]).is_err(), "Frames refuses it");
        assert!(r.is_err(), "decode_frame refuses it");
    }

    /// The last block of a frame without a checksum or content size
    /// decodes to far more than a read's buffer: read out whole, in many
    /// calls given no input (for such a block libzstd also keeps the
    /// frame's last input byte until all is out).
    #[test]
    fn what_the_last_block_holds_is_read_out_in_small_reads() {
        for data in [b"z".repeat(300_000), b"line of text\n".repeat(20_000)] {
            for level in [1, 19] {
                let mut enc = zstd::stream::Encoder::new(Vec::new(), level).unwrap();
                enc.include_checksum(false).unwrap();
                enc.include_contentsize(false).unwrap();
                io::Write::write_all(&mut enc, &data).unwrap();
                let bytes = enc.finish().unwrap();
                let mut f = Frames::new(&bytes[..], 27).unwrap();
                let mut out = Vec::new();
                let mut buf = [0u8; 100];
                loop {
                    match f.read(&mut buf).unwrap() {
                        0 => break,
                        n => out.extend_from_slice(&buf[..n]),
                    }
                }
                assert!(out == data, "level {level}");
            }
        }
    }
}

/// Valid streams of every shape libzstd writes decode to their content
/// however the input arrives and whatever the caller's reads (a review's
/// generator).
#[cfg(test)]
mod valid_streams {
    use super::*;
    use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
    use zstd::zstd_safe::{CCtx, CParameter, InBuffer as In, OutBuffer as Out};

    /// xorshift64: reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Reads of 1 to `max` bytes, at random.
    struct Chunks<'a>(&'a [u8], usize, Rng);
    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self
                .0
                .len()
                .min(out.len())
                .min(1 + self.2.below(self.1 as u64) as usize);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Empty, short or long content of random bytes, runs and text.
    fn content(rng: &mut Rng) -> Vec<u8> {
        let len = match rng.below(5) {
            0 => 0,
            1 => rng.below(50) as usize,
            2 => rng.below(5000) as usize,
            _ => rng.below(700_000) as usize,
        };
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            let run = (1 + rng.below(20_000) as usize).min(len - v.len());
            match rng.below(3) {
                0 => v.extend((0..run).map(|_| rng.next() as u8)),
                1 => v.extend(std::iter::repeat_n(rng.next() as u8, run)),
                _ => v.extend((0..run).map(|i| b"some text, repeated "[i % 20])),
            }
        }
        v
    }

    /// `f` with a dictionary id field of `len` bytes, all zero (no dictionary).
    fn with_zero_dict_id(f: &[u8], len: u8) -> Vec<u8> {
        let at = 5 + usize::from(f[4] & 0x20 == 0);
        let mut out = f[..4].to_vec();
        out.push(f[4] | [0, 1, 2, 2, 3][usize::from(len)]);
        out.extend_from_slice(&f[5..at]);
        out.extend(std::iter::repeat_n(0u8, usize::from(len)));
        out.extend_from_slice(&f[at..]);
        out
    }

    /// A frame of `data`: a random level, window, checksum and content-size
    /// flag, compressed in one call (single-segment when it fits) or
    /// streamed in pieces with flushes (many small blocks).
    fn frame(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
        let mut c = CCtx::create();
        let level = [1, 3, 9, 19, -5][rng.below(5) as usize];
        c.set_parameter(CParameter::CompressionLevel(level)).unwrap();
        c.set_parameter(CParameter::ChecksumFlag(rng.below(2) == 0)).unwrap();
        c.set_parameter(CParameter::ContentSizeFlag(rng.below(2) == 0)).unwrap();
        c.set_parameter(CParameter::WindowLog(10 + rng.below(12) as u32))
            .unwrap();
        if rng.below(3) == 0 {
            c.set_parameter(CParameter::TargetCBlockSize(1340 + rng.below(4000) as u32))
                .unwrap();
        }
        let mut out = vec![0u8; zstd::zstd_safe::compress_bound(data.len()) + 64];
        let n = if rng.below(2) == 0 {
            c.compress2(&mut out[..], data).unwrap()
        } else {
            if rng.below(2) == 0 {
                c.set_pledged_src_size(Some(data.len() as u64)).unwrap();
            }
            let mut o = Out::around(&mut out[..]);
            let mut pos = 0;
            while pos < data.len() {
                let step = (1 + rng.below(100_000) as usize).min(data.len() - pos);
                let mut i = In::around(&data[pos..pos + step]);
                while i.pos() < step {
                    c.compress_stream2(&mut o, &mut i, ZSTD_EndDirective::ZSTD_e_continue)
                        .unwrap();
                }
                pos += step;
                if rng.below(4) == 0 {
                    while c
                        .compress_stream2(&mut o, &mut In::around(&[][..]), ZSTD_EndDirective::ZSTD_e_flush)
                        .unwrap()
                        != 0
                    {}
                }
            }
            while c
                .compress_stream2(&mut o, &mut In::around(&[][..]), ZSTD_EndDirective::ZSTD_e_end)
                .unwrap()
                != 0
            {}
            o.pos()
        };
        out.truncate(n);
        if rng.below(4) == 0 {
            out = with_zero_dict_id(&out, [1, 2, 4][rng.below(3) as usize]);
        }
        out
    }

    #[test]
    fn random_valid_streams_decode_however_they_arrive_and_are_read() {
        for seed in 1..=40u64 {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1234_5678_9abc_def1));
            let (mut bytes, mut want) = (Vec::new(), Vec::new());
            for _ in 0..1 + rng.below(4) {
                let data = content(&mut rng);
                bytes.extend(frame(&mut rng, &data));
                want.extend(data);
            }
            assert_eq!(zstd::stream::decode_all(&bytes[..]).unwrap(), want, "seed {seed}");
            for _ in 0..3 {
                let chunk = [1, 7, 1000, 300_000][rng.below(4) as usize];
                let room = [1, 13, 512, 8192, 200_000][rng.below(5) as usize];
                if room == 1 && want.len() > 300_000 {
                    continue;
                }
                let mut f = Frames::new(Chunks(&bytes, chunk, Rng(seed + 7)), 27).unwrap();
                let (mut got, mut buf) = (Vec::new(), vec![0u8; room]);
                loop {
                    let ask = 1 + rng.below(room as u64) as usize;
                    let n = f
                        .read(&mut buf[..ask])
                        .unwrap_or_else(|e| panic!("seed {seed}, {chunk}-byte input, reads of {room}: {e}"));
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(got == want, "seed {seed}, {chunk}-byte input, reads of {room}");
            }
        }
    }
}

/// A review's cases for a frame's edges: output held past the declared
/// size, and a wrong byte after a frame on an input that stalls.
#[cfg(test)]
mod edges {
    use super::*;

    /// A frame of a 1 KiB window declaring `declared` bytes, of 1000-byte raw
    /// blocks (the last one marked last), the input cut after block `cut`.
    fn frame(declared: u32, blocks: usize, cut: usize) -> Vec<u8> {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x80, 0];
        f.extend_from_slice(&declared.to_le_bytes());
        for i in 0..blocks.min(cut + 1) {
            let h = u32::from(i + 1 == blocks) | 1000 << 3;
            f.extend_from_slice(&h.to_le_bytes()[..3]);
            f.extend((0..1000).map(|j| (j * 7 + i) as u8));
        }
        f
    }

    /// What reading `reads` bytes after each other gives: "ok N" or the error.
    fn reads(bytes: &[u8], reads: &[usize]) -> Vec<String> {
        let mut f = Frames::new(bytes, 27).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut v = Vec::new();
        for &r in reads {
            match f.read_exact(&mut buf[..r]) {
                Ok(()) => v.push(format!("ok {r}")),
                Err(e) => {
                    v.push(format!("err {e}"));
                    break;
                }
            }
        }
        v
    }

    /// A frame holding more than it declares is refused in the read that
    /// reaches the declared size, whether or not the input goes on after
    /// the blocks libzstd holds (before, a cut input let the declared bytes
    /// out and refused the next read).
    #[test]
    fn output_held_past_the_declared_size_is_refused_at_once_cut_or_not() {
        let declares = "err a zstd frame does not hold the 4500 bytes it declares";
        for cut in [4, 9] {
            assert_eq!(
                reads(&frame(4500, 7, cut), &[4500, 10]),
                [declares],
                "cut after block {cut}"
            );
        }
    }

    /// An input that hands out its bytes, then stalls (an error standing
    /// for a read that never returns).
    struct Stalls<'a>(&'a [u8]);
    impl Read for Stalls<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("stalled"));
            }
            let n = self.0.len().min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// After a frame, bytes that start no magic number are refused at once,
    /// not waited on; a prefix of one is waited on.
    #[test]
    fn a_wrong_byte_after_a_frame_is_refused_without_waiting_for_more() {
        let frame = zstd::bulk::compress(b"hello", 3).unwrap();
        for (tail, refused) in [
            (&[0x00u8][..], true),
            (&[0x00, 0x00, 0x00], true),
            (&[0x28, 0x00], true),
            (&[0x5f, 0x2a, 0x00], true),
            (&[0x50], false),
            (&[0x28, 0xb5], false),
            (&[], false),
        ] {
            let bytes = [&frame[..], tail].concat();
            let mut out = Vec::new();
            let e = Frames::new(Stalls(&bytes), 27)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap_err();
            let not_a_frame = matches!(
                e.get_ref().and_then(|e| e.downcast_ref()),
                Some(FrameError::NotAFrame { after: 1 })
            );
            assert_eq!(not_a_frame, refused, "{tail:x?}: {e}");
            if !refused {
                assert_eq!(e.to_string(), "stalled", "{tail:x?}");
            }
        }
    }
}
