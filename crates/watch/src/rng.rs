//! The randomness noise is drawn from: the ChaCha20 keystream under a key from the
//! operating system's generator (ring's ChaCha20-Poly1305 sealing a block of zeros, one
//! nonce per block; the tag is discarded), read 64 bits at a time — a stream cipher's
//! keystream cannot be predicted without the key. One system call per stream, none per
//! answer, one cipher call per 32 words.

use ring::aead::{self, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// A source of uniform 64-bit words.
pub trait Random {
    fn next_u64(&mut self) -> u64;

    /// A uniform number in the open interval (0, 1): 53 random bits, never 0.
    fn open_unit(&mut self) -> f64 {
        loop {
            let bits = self.next_u64() >> 11;
            if bits != 0 {
                return bits as f64 * (1.0 / (1u64 << 53) as f64);
            }
        }
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.open_unit(), self.open_unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Words of keystream per cipher call.
const BLOCK_WORDS: usize = 32;

/// ChaCha20 keystream, [`BLOCK_WORDS`] words per nonce.
pub struct KeyedStream {
    key: LessSafeKey,
    counter: u64,
    block: [u64; BLOCK_WORDS],
    used: usize,
}

impl std::fmt::Debug for KeyedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedStream")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the random stream could not be keyed (the operating system's generator failed)")]
pub struct RandomUnavailable;

impl KeyedStream {
    /// A stream keyed by 32 bytes from the operating system.
    pub fn from_system() -> Result<Self, RandomUnavailable> {
        let mut seed = [0u8; 32];
        SystemRandom::new().fill(&mut seed).map_err(|_| RandomUnavailable)?;
        Self::from_seed(&seed)
    }

    /// A stream from a fixed seed (tests, replays): the same seed gives the same
    /// stream. The seed is hashed into the key, so any length will do.
    pub fn from_seed(seed: &[u8]) -> Result<Self, RandomUnavailable> {
        let digest = ring::digest::digest(&ring::digest::SHA256, seed);
        let key = UnboundKey::new(&CHACHA20_POLY1305, digest.as_ref()).map_err(|_| RandomUnavailable)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            counter: 0,
            block: [0; BLOCK_WORDS],
            used: BLOCK_WORDS,
        })
    }

    fn refill(&mut self) {
        let mut bytes = [0u8; BLOCK_WORDS * 8];
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.counter.to_le_bytes());
        self.counter = self.counter.wrapping_add(1);
        // Sealing zeros leaves the keystream in the buffer.
        let _ =
            self.key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut bytes);
        for (word, chunk) in self.block.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        self.used = 0;
    }
}

impl Random for KeyedStream {
    fn next_u64(&mut self) -> u64 {
        if self.used == BLOCK_WORDS {
            self.refill();
        }
        let word = self.block[self.used];
        self.used += 1;
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_look_uniform() {
        let (mut a, mut b) = (
            KeyedStream::from_seed(b"seed").unwrap(),
            KeyedStream::from_seed(b"seed").unwrap(),
        );
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut other = KeyedStream::from_seed(b"other").unwrap();
        assert_ne!(xs[0], other.next_u64());
        // Mean of 100 000 uniforms within 0.005 of 1/2; every one inside (0, 1).
        let n = 100_000;
        let sum: f64 = (0..n)
            .map(|_| {
                let u = a.open_unit();
                assert!(u > 0.0 && u < 1.0);
                u
            })
            .sum();
        assert!((sum / f64::from(n) - 0.5).abs() < 0.005);
        assert!(KeyedStream::from_system().is_ok());
    }
}
