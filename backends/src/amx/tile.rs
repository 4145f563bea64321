//! The AMX instructions the kernels use, behind one trait ([`TileUnit`]): the hardware's
//! (`asm!` with the AMX mnemonics, [`Hw`]) and a software model of the same instructions
//! ([`Model`]), so the tile layout, the packing and the loop logic run — and are tested against
//! the scalar specifications — on CPUs without AMX too; only [`Hw`]'s few wrappers need the
//! hardware.
//!
//! The tiles the kernels configure (palette 1): `C0`–`C3` (tmm0–3) hold 16 × 16 i32 sums (16
//! rows of 64 bytes); `A` and `A2` (tmm4, tmm6) 16 token rows of `K` activation bytes; `B`
//! (tmm5) a panel block's weights, `K / 4` rows of 64 bytes — row `j` holds the 16 weight
//! rows' bytes `4j .. 4j + 4` (the layout `tdpb*d` takes, which is the int8 panels' quads).

/// Tokens per group: the most rows an A or C tile holds (a kernel's group of tokens).
pub const GROUP: usize = 16;

/// Tile registers, as the kernels name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    C0 = 0,
    C1 = 1,
    C2 = 2,
    C3 = 3,
    A = 4,
    B = 5,
    A2 = 6,
    B2 = 7,
}

/// The sum tiles, in order.
pub const C: [T; 4] = [T::C0, T::C1, T::C2, T::C3];

/// Activation bytes per A row (`K`): a whole 32-value block, or a 16-value half (the halves
/// form sums each half apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum K {
    Block = 32,
    Half = 16,
}

/// The 64-byte tile configuration `ldtilecfg` reads.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config([u8; 64]);

impl Config {
    /// C tiles `m` × 64 bytes, A tiles `m` × `K` bytes (`m` ≤ 16 tokens), B `K / 4` × 64
    /// bytes.
    pub const fn new(k: K, m: u8) -> Config {
        assert!(m >= 1 && m <= 16, "1 to 16 rows of tokens");
        let k = k as u16;
        let mut c = [0u8; 64];
        c[0] = 1; // palette 1
        let shapes: [(u16, u8); 8] = [
            (64, m),
            (64, m),
            (64, m),
            (64, m),
            (k, m),
            (64, (k / 4) as u8),
            (k, m),
            (64, (k / 4) as u8),
        ];
        let mut t = 0;
        while t < shapes.len() {
            let (colsb, rows) = shapes[t];
            c[16 + 2 * t] = colsb as u8;
            c[16 + 2 * t + 1] = (colsb >> 8) as u8;
            c[48 + t] = rows;
            t += 1;
        }
        Config(c)
    }

    /// Bytes per row and rows of tile `t`.
    pub fn shape(&self, t: T) -> (usize, usize) {
        let i = t as usize;
        let colsb = u16::from_le_bytes([self.0[16 + 2 * i], self.0[16 + 2 * i + 1]]) as usize;
        (colsb, self.0[48 + i] as usize)
    }
}

/// The instructions, as the kernels use them.
///
/// # Safety
/// Implementations read and write memory through the raw pointers given: callers guarantee
/// every row of a load is readable and every row of a store writable, at the configured shape.
pub unsafe trait TileUnit {
    /// Configure the tiles (`ldtilecfg`).
    fn configure(&mut self, cfg: &'static Config);
    /// `t ← 0` (`tilezero`).
    fn zero(&mut self, t: T);
    /// Tile `t`'s rows from `base`, `stride` bytes apart (`tileloadd`).
    ///
    /// # Safety
    /// Each of the configured rows' bytes must be readable.
    unsafe fn load(&mut self, t: T, base: *const u8, stride: usize);
    /// Tile `t`'s rows to `base`, `stride` bytes apart (`tilestored`).
    ///
    /// # Safety
    /// Each of the configured rows' bytes must be writable.
    unsafe fn store(&mut self, t: T, base: *mut u8, stride: usize);
    /// `c[m][n] += Σ_k a[m][k] · b[k / 4][4n + k % 4]` over bytes of `a` (signed when
    /// `A_SIGNED`, else unsigned) and `b` (likewise), sums in i32 (`tdpbssd`, `tdpbsud`,
    /// `tdpbusd`, `tdpbuud`).
    fn dp<const A_SIGNED: bool, const B_SIGNED: bool>(&mut self, c: T, a: T, b: T);
}

/// AMX itself. Made only with the tier's token ([`super::Amx`]), which proves the CPU has
/// AMX-TILE/INT8 and Linux granted the tile state.
pub struct Hw {
    _token: super::Amx,
}

impl Hw {
    pub fn new(token: super::Amx) -> Hw {
        Hw { _token: token }
    }
}

// SAFETY: `Hw` exists only where the token does (AMX-TILE/INT8 present, the tile state granted);
// loads and stores touch exactly the rows the callers vouch for.
unsafe impl TileUnit for Hw {
    /// Loads the configuration only when the thread's tiles hold another: the tiles stay
    /// configured between calls (no `tilerelease`), since `ldtilecfg` and `tilerelease` cost
    /// ≈ 230 cycles together, 6 % of a 64-token panel's steps. Linux saves and restores a
    /// thread's tile state (configuration included) across context switches.
    #[inline(always)]
    fn configure(&mut self, cfg: &'static Config) {
        // The configurations are statics: the thread's loaded one is known by its address.
        thread_local!(static LOADED: std::cell::Cell<*const Config> = const { std::cell::Cell::new(std::ptr::null()) });
        LOADED.with(|loaded| {
            if !std::ptr::eq(loaded.get(), cfg) {
                // SAFETY: the token proves AMX; `cfg` is a valid 64-byte palette-1 configuration.
                unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) }
                loaded.set(cfg);
            }
        })
    }

    #[inline(always)]
    fn zero(&mut self, t: T) {
        // SAFETY: the token proves AMX; the tile is configured.
        unsafe {
            match t {
                T::C0 => std::arch::asm!("tilezero tmm0", options(nostack, nomem)),
                T::C1 => std::arch::asm!("tilezero tmm1", options(nostack, nomem)),
                T::C2 => std::arch::asm!("tilezero tmm2", options(nostack, nomem)),
                T::C3 => std::arch::asm!("tilezero tmm3", options(nostack, nomem)),
                other => unreachable!("the kernels zero only C tiles, not {other:?}"),
            }
        }
    }

    #[inline(always)]
    unsafe fn load(&mut self, t: T, base: *const u8, stride: usize) {
        // SAFETY: the token proves AMX; the caller vouches for the rows' bytes.
        unsafe {
            match t {
                T::A => {
                    std::arch::asm!("tileloadd tmm4, [{b} + {s}*1]", b = in(reg) base, s = in(reg) stride, options(nostack, readonly))
                }
                T::B => {
                    std::arch::asm!("tileloadd tmm5, [{b} + {s}*1]", b = in(reg) base, s = in(reg) stride, options(nostack, readonly))
                }
                T::A2 => {
                    std::arch::asm!("tileloadd tmm6, [{b} + {s}*1]", b = in(reg) base, s = in(reg) stride, options(nostack, readonly))
                }
                T::B2 => {
                    std::arch::asm!("tileloadd tmm7, [{b} + {s}*1]", b = in(reg) base, s = in(reg) stride, options(nostack, readonly))
                }
                other => unreachable!("the kernels load only A, A2, B and B2, not {other:?}"),
            }
        }
    }

    #[inline(always)]
    unsafe fn store(&mut self, t: T, base: *mut u8, stride: usize) {
        // SAFETY: the token proves AMX; the caller vouches for the rows' bytes.
        unsafe {
            match t {
                T::C0 => {
                    std::arch::asm!("tilestored [{b} + {s}*1], tmm0", b = in(reg) base, s = in(reg) stride, options(nostack))
                }
                T::C1 => {
                    std::arch::asm!("tilestored [{b} + {s}*1], tmm1", b = in(reg) base, s = in(reg) stride, options(nostack))
                }
                T::C2 => {
                    std::arch::asm!("tilestored [{b} + {s}*1], tmm2", b = in(reg) base, s = in(reg) stride, options(nostack))
                }
                T::C3 => {
                    std::arch::asm!("tilestored [{b} + {s}*1], tmm3", b = in(reg) base, s = in(reg) stride, options(nostack))
                }
                other => unreachable!("the kernels store only C tiles, not {other:?}"),
            }
        }
    }

    #[inline(always)]
    fn dp<const A_SIGNED: bool, const B_SIGNED: bool>(&mut self, c: T, a: T, b: T) {
        macro_rules! dp {
            ($op:literal) => {
                // SAFETY: the token proves AMX; the tiles are configured with agreeing shapes.
                unsafe {
                    match (c, a, b) {
                        (T::C0, T::A, T::B) => {
                            std::arch::asm!(concat!($op, " tmm0, tmm4, tmm5"), options(nostack, nomem))
                        }
                        (T::C1, T::A, T::B) => {
                            std::arch::asm!(concat!($op, " tmm1, tmm4, tmm5"), options(nostack, nomem))
                        }
                        (T::C2, T::A, T::B) => {
                            std::arch::asm!(concat!($op, " tmm2, tmm4, tmm5"), options(nostack, nomem))
                        }
                        (T::C3, T::A, T::B) => {
                            std::arch::asm!(concat!($op, " tmm3, tmm4, tmm5"), options(nostack, nomem))
                        }
                        (T::C0, T::A2, T::B) => {
                            std::arch::asm!(concat!($op, " tmm0, tmm6, tmm5"), options(nostack, nomem))
                        }
                        (T::C1, T::A2, T::B) => {
                            std::arch::asm!(concat!($op, " tmm1, tmm6, tmm5"), options(nostack, nomem))
                        }
                        (T::C2, T::A2, T::B) => {
                            std::arch::asm!(concat!($op, " tmm2, tmm6, tmm5"), options(nostack, nomem))
                        }
                        (T::C3, T::A2, T::B) => {
                            std::arch::asm!(concat!($op, " tmm3, tmm6, tmm5"), options(nostack, nomem))
                        }
                        (T::C0, T::A, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm0, tmm4, tmm7"), options(nostack, nomem))
                        }
                        (T::C1, T::A, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm1, tmm4, tmm7"), options(nostack, nomem))
                        }
                        (T::C2, T::A, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm2, tmm4, tmm7"), options(nostack, nomem))
                        }
                        (T::C3, T::A, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm3, tmm4, tmm7"), options(nostack, nomem))
                        }
                        (T::C0, T::A2, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm0, tmm6, tmm7"), options(nostack, nomem))
                        }
                        (T::C1, T::A2, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm1, tmm6, tmm7"), options(nostack, nomem))
                        }
                        (T::C2, T::A2, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm2, tmm6, tmm7"), options(nostack, nomem))
                        }
                        (T::C3, T::A2, T::B2) => {
                            std::arch::asm!(concat!($op, " tmm3, tmm6, tmm7"), options(nostack, nomem))
                        }
                        other => unreachable!("no product into {other:?}"),
                    }
                }
            };
        }
        match (A_SIGNED, B_SIGNED) {
            (true, true) => dp!("tdpbssd"),
            (true, false) => dp!("tdpbsud"),
            (false, true) => dp!("tdpbusd"),
            (false, false) => dp!("tdpbuud"),
        }
    }
}

/// The same instructions in software: eight tiles of 16 rows × 64 bytes and the configured
/// shapes, each instruction as the ISA reference defines it (rows past the configured ones
/// zero, sums wrapping in i32).
pub struct Model {
    tiles: [[[u8; 64]; 16]; 8],
    cfg: Option<Config>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            tiles: [[[0; 64]; 16]; 8],
            cfg: None,
        }
    }
}

impl Model {
    fn shape(&self, t: T) -> (usize, usize) {
        self.cfg.expect("tiles used before ldtilecfg").shape(t)
    }

    fn i32_at(&self, t: T, m: usize, n: usize) -> i32 {
        let row = &self.tiles[t as usize][m];
        i32::from_le_bytes(row[4 * n..4 * n + 4].try_into().expect("4 bytes"))
    }
}

// SAFETY: the model reads and writes only the rows the callers vouch for, at the configured shape.
unsafe impl TileUnit for Model {
    fn configure(&mut self, cfg: &'static Config) {
        *self = Model::default();
        self.cfg = Some(*cfg);
    }

    fn zero(&mut self, t: T) {
        self.shape(t);
        self.tiles[t as usize] = [[0; 64]; 16];
    }

    unsafe fn load(&mut self, t: T, base: *const u8, stride: usize) {
        let (colsb, rows) = self.shape(t);
        let tile = &mut self.tiles[t as usize];
        *tile = [[0; 64]; 16];
        for (r, row) in tile.iter_mut().enumerate().take(rows) {
            // SAFETY: the caller vouches for `colsb` bytes at each row.
            let src = unsafe { std::slice::from_raw_parts(base.add(r * stride), colsb) };
            row[..colsb].copy_from_slice(src);
        }
    }

    unsafe fn store(&mut self, t: T, base: *mut u8, stride: usize) {
        let (colsb, rows) = self.shape(t);
        for (r, row) in self.tiles[t as usize].iter().enumerate().take(rows) {
            // SAFETY: the caller vouches for `colsb` bytes at each row.
            let dst = unsafe { std::slice::from_raw_parts_mut(base.add(r * stride), colsb) };
            dst.copy_from_slice(&row[..colsb]);
        }
    }

    fn dp<const A_SIGNED: bool, const B_SIGNED: bool>(&mut self, c: T, a: T, b: T) {
        let ((a_cols, m_rows), (b_cols, k_rows), (c_cols, c_rows)) = (self.shape(a), self.shape(b), self.shape(c));
        assert!(
            m_rows == c_rows && b_cols == c_cols && a_cols == 4 * k_rows,
            "tile shapes A {a_cols}×{m_rows}, B {b_cols}×{k_rows}, C {c_cols}×{c_rows} do not agree"
        );
        let byte = |v: u8, signed: bool| if signed { v as i8 as i32 } else { v as i32 };
        for m in 0..m_rows {
            for n in 0..c_cols / 4 {
                let mut sum = self.i32_at(c, m, n);
                for k in 0..a_cols {
                    let x = byte(self.tiles[a as usize][m][k], A_SIGNED);
                    let w = byte(self.tiles[b as usize][k / 4][4 * n + k % 4], B_SIGNED);
                    sum = sum.wrapping_add(x * w);
                }
                self.tiles[c as usize][m][4 * n..4 * n + 4].copy_from_slice(&sum.to_le_bytes());
            }
        }
    }
}
