//! A small deterministic generator for tests and benches across the workspace (reproducible
//! failures, no dependency).

/// xorshift64: fast, deterministic, good enough for test data.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[-1, 1]` (to 1e-4).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() % 20_001) as f32 / 10_000.0 - 1.0
    }

    /// `n` values from [`XorShift::unit`].
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}
