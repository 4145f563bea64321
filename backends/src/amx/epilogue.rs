//! What follows a block's integer sums: the block's scales applied in f32, in the operations and
//! order of the scalar specifications — per token `t` and weight row `r`,
//! `acc[t][r] += (s[t][r] as f32) · (scale[r] · dx[t])` (the integer sum converted, the two
//! scales' product rounded first, then the product, then the add: no fused multiply-add), and
//! for the offset form `acc[t][r] += offset[r] · sx[t]`. [`Scalar`] is that text; [`Avx512`]
//! computes it 16 rows at a time, its accumulators in registers.

use std::arch::x86_64::*;

use super::tile::GROUP;
use crate::fast::pack::PANEL;

/// A token group's f32 accumulators and how a block's sums enter them.
pub trait Epilogue {
    /// Accumulators for `n` tokens, zero.
    fn start(n: usize) -> Self;
    /// `acc[t][r] += (c[t][r] as f32) · (sc[r] · dx(t))`.
    fn scaled(&mut self, c: &[[i32; PANEL]; GROUP], sc: &[f32; PANEL], dx: impl Fn(usize) -> f32);
    /// The same for sums in byte planes: `s = 256 · hi + lo` (exact in i32).
    fn scaled_planes(
        &mut self,
        hi: &[[i32; PANEL]; GROUP],
        lo: &[[i32; PANEL]; GROUP],
        sc: &[f32; PANEL],
        dx: impl Fn(usize) -> f32,
    );
    /// `acc[t][r] += off[r] · sx(t)`.
    fn offset(&mut self, off: &[f32; PANEL], sx: impl Fn(usize) -> f32);
    /// The `n` tokens' accumulators into `out`.
    fn finish(&self, out: &mut [[f32; PANEL]]);
}

/// The specification's operations, one value at a time.
pub struct Scalar {
    acc: [[f32; PANEL]; GROUP],
    n: usize,
}

impl Scalar {
    fn add(&mut self, s: impl Fn(usize, usize) -> i32, sc: &[f32; PANEL], dx: impl Fn(usize) -> f32) {
        for (t, acc) in self.acc.iter_mut().enumerate().take(self.n) {
            let dx = dx(t);
            for (r, (a, &sc)) in acc.iter_mut().zip(sc).enumerate() {
                *a += s(t, r) as f32 * (sc * dx);
            }
        }
    }
}

impl Epilogue for Scalar {
    fn start(n: usize) -> Scalar {
        Scalar {
            acc: [[0.0; PANEL]; GROUP],
            n,
        }
    }

    fn scaled(&mut self, c: &[[i32; PANEL]; GROUP], sc: &[f32; PANEL], dx: impl Fn(usize) -> f32) {
        self.add(|t, r| c[t][r], sc, dx)
    }

    fn scaled_planes(
        &mut self,
        hi: &[[i32; PANEL]; GROUP],
        lo: &[[i32; PANEL]; GROUP],
        sc: &[f32; PANEL],
        dx: impl Fn(usize) -> f32,
    ) {
        self.add(|t, r| (hi[t][r] << 8) + lo[t][r], sc, dx)
    }

    fn offset(&mut self, off: &[f32; PANEL], sx: impl Fn(usize) -> f32) {
        for (t, acc) in self.acc.iter_mut().enumerate().take(self.n) {
            let sx = sx(t);
            for (a, &o) in acc.iter_mut().zip(off) {
                *a += o * sx;
            }
        }
    }

    fn finish(&self, out: &mut [[f32; PANEL]]) {
        out.copy_from_slice(&self.acc[..self.n]);
    }
}

/// The same with AVX-512F: a token's 16 rows in one register. Only made inside functions
/// compiled with AVX-512F (the tier's token proves it), so its methods may use it.
pub struct Avx512 {
    acc: [__m512; GROUP],
    n: usize,
}

/// `$body` for each of the group's tokens `$t` and accumulators `$acc`: a whole group as a
/// loop of constant length, so the compiler keeps the 16 accumulators in registers across the
/// steps. A macro, not a method taking a closure: a closure is its own function without the
/// AVX-512 target features, and where it was not inlined (groups of fewer than 16 tokens) every
/// intrinsic in it became a call — a short query ran 3× slower.
macro_rules! each {
    ($self:ident, |$t:ident, $acc:ident| $body:block) => {
        if $self.n == GROUP {
            for ($t, $acc) in $self.acc.iter_mut().enumerate() $body
        } else {
            for ($t, $acc) in $self.acc.iter_mut().enumerate().take($self.n) $body
        }
    };
}

impl Epilogue for Avx512 {
    #[inline(always)]
    fn start(n: usize) -> Avx512 {
        Avx512 {
            // SAFETY: made only inside code compiled for AVX-512F (see the type's docs).
            acc: [unsafe { _mm512_setzero_ps() }; GROUP],
            n,
        }
    }

    #[inline(always)]
    fn scaled(&mut self, c: &[[i32; PANEL]; GROUP], sc: &[f32; PANEL], dx: impl Fn(usize) -> f32) {
        // SAFETY: AVX-512F (see the type's docs); each row of `c` is 16 i32, `sc` 16 f32.
        let scv = unsafe { _mm512_loadu_ps(sc.as_ptr()) };
        each!(self, |t, acc| {
            // SAFETY: as above.
            unsafe {
                let v = _mm512_loadu_si512(c[t].as_ptr() as *const __m512i);
                let s = _mm512_mul_ps(scv, _mm512_set1_ps(dx(t)));
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
            }
        })
    }

    #[inline(always)]
    fn scaled_planes(
        &mut self,
        hi: &[[i32; PANEL]; GROUP],
        lo: &[[i32; PANEL]; GROUP],
        sc: &[f32; PANEL],
        dx: impl Fn(usize) -> f32,
    ) {
        // SAFETY: AVX-512F (see the type's docs); rows of 16 i32, 16 scales.
        let scv = unsafe { _mm512_loadu_ps(sc.as_ptr()) };
        each!(self, |t, acc| {
            // SAFETY: as above.
            unsafe {
                let h = _mm512_loadu_si512(hi[t].as_ptr() as *const __m512i);
                let l = _mm512_loadu_si512(lo[t].as_ptr() as *const __m512i);
                let v = _mm512_add_epi32(_mm512_slli_epi32::<8>(h), l);
                let s = _mm512_mul_ps(scv, _mm512_set1_ps(dx(t)));
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
            }
        })
    }

    #[inline(always)]
    fn offset(&mut self, off: &[f32; PANEL], sx: impl Fn(usize) -> f32) {
        // SAFETY: AVX-512F (see the type's docs).
        let o = unsafe { _mm512_loadu_ps(off.as_ptr()) };
        // SAFETY: as above.
        each!(self, |t, acc| {
            // SAFETY: as above.
            unsafe { *acc = _mm512_add_ps(*acc, _mm512_mul_ps(o, _mm512_set1_ps(sx(t)))) }
        })
    }

    #[inline(always)]
    fn finish(&self, out: &mut [[f32; PANEL]]) {
        for (o, a) in out.iter_mut().zip(&self.acc).take(self.n) {
            // SAFETY: AVX-512F (see the type's docs); 16 floats into a row of 16.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), *a) };
        }
    }
}
