//! Fixed-point arithmetic for the integer path: one requantization function, rounding shifts,
//! saturation, an integer square root and a base-2 exponential by table. Everything here is
//! integer arithmetic with fully specified results, so the same inputs give the same bits on
//! every target (x86, Cortex-M0/M3/M4, RISC-V).
//!
//! The one rounding policy used everywhere is **round half up** (towards +infinity):
//! `round(v / 2^s) = floor(v / 2^s + 1/2)`, computed as `(v + 2^(s-1)) >> s` with an arithmetic
//! shift. It is what CMSIS-NN's `arm_nn_requantize` computes when built with
//! `CMSIS_NN_USE_SINGLE_ROUNDING`.

/// Smallest shift [`requantize`] accepts.
pub const SHIFT_MIN: i32 = -31;
/// Largest shift [`requantize`] accepts.
pub const SHIFT_MAX: i32 = 30;

/// Multiplies `val` by the real number `multiplier * 2^(shift - 31)` and rounds half up:
///
/// ```text
/// requantize(val, m, s) = floor(val * m / 2^(31 - s) + 1/2)
/// ```
///
/// `multiplier` is a Q31 number (the host makes it with `quantize_multiplier`, feature `std`) and
/// `shift` is in [`SHIFT_MIN`]`..=`[`SHIFT_MAX`] (positive shifts scale up). The result is the
/// exact rounded value, saturated to `i32`. It is bit for bit CMSIS-NN's
/// `arm_nn_requantize(val, multiplier, shift)` built with `CMSIS_NN_USE_SINGLE_ROUNDING`
/// (the 64-bit product shifted right by `30 - shift`, truncated to 32 bits, then
/// `(r + 1) >> 1`) wherever that 32-bit intermediate does not overflow, i.e. whenever
/// `|result| < 2^30`; beyond, CMSIS-NN wraps and this saturates. Shifts outside the range are
/// clamped to it (blobs are checked at load, so this never happens on a loaded model).
///
/// ```
/// use tinylens::fixed::requantize;
/// // 2^30 is 0.5 in Q31: halving, ties rounded up.
/// assert_eq!(requantize(5, 1 << 30, 0), 3);
/// assert_eq!(requantize(-5, 1 << 30, 0), -2);
/// ```
#[inline]
pub fn requantize(val: i32, multiplier: i32, shift: i32) -> i32 {
    let total = 31 - shift.clamp(SHIFT_MIN, SHIFT_MAX); // 1..=62
    let product = widening_mul(val, multiplier);
    if total < 32 {
        // Scales of 1/2 and more: the plain formula.
        return round_shift_saturate(product, total);
    }
    // Scales below 1/2, the common case, in 32-bit words: |product| <= 2^62, so the result
    // fits in 31 bits and needs no saturation. With `hi`, `lo` the words of the product and
    // k = total - 32, floor((hi 2^32 + lo) / 2^total + 1/2) is (hi + 2^(k-1)) >> k for k >= 1
    // (`lo / 2^32 < 1` cannot carry past the floor), and hi + (lo >= 2^31) for k = 0.
    let (hi, lo) = ((product >> 32) as i32, product as u32);
    let k = total - 32;
    if k == 0 {
        hi + (lo >> 31) as i32
    } else {
        (hi + (1 << (k - 1))) >> k
    }
}

/// `a * b`, exactly: one long multiply where the core has it, [`widening_mul_by_halves`] on
/// ARMv6-M (Cortex-M0/M0+), which has none and where the compiler would call a general
/// 64 x 64 routine. (ARMv6-M is the ARM profile without 32-bit atomics: stable Rust exposes
/// no `v7` or `thumb2` target feature to test for directly.)
#[inline]
pub fn widening_mul(a: i32, b: i32) -> i64 {
    if cfg!(all(target_arch = "arm", not(target_has_atomic = "32"))) {
        widening_mul_by_halves(a, b)
    } else {
        a as i64 * b as i64
    }
}

/// `a * b`, exactly, from four 16 x 16 products that each fit a 32-bit register (with
/// `a = ah 2^16 + al`, `al` in `0..2^16`: `ah bh 2^32 + (ah bl + al bh) 2^16 + al bl`).
#[inline]
pub fn widening_mul_by_halves(a: i32, b: i32) -> i64 {
    let (ah, al) = (a >> 16, a & 0xffff);
    let (bh, bl) = (b >> 16, b & 0xffff);
    let high = (ah * bh) as i64; // |.| <= 2^30
    let middle = (ah * bl) as i64 + (al * bh) as i64; // each |.| < 2^31
    let low = (al as u32 * bl as u32) as i64; // < 2^32
    (high << 32) + (middle << 16) + low
}

/// [`requantize`] in one 64-bit formula, the plain version it is tested against:
/// `((val * multiplier) >> (total - 1)) + 1) >> 1` with `total = 31 - shift`, saturated.
pub fn requantize_reference(val: i32, multiplier: i32, shift: i32) -> i32 {
    let total = 31 - shift.clamp(SHIFT_MIN, SHIFT_MAX); // 1..=62
    round_shift_saturate(val as i64 * multiplier as i64, total)
}

/// `round(product / 2^total)`, half up, saturated to `i32` (`total` in `1..=62`).
#[inline]
fn round_shift_saturate(product: i64, total: i32) -> i32 {
    let r = ((product >> (total - 1)) + 1) >> 1;
    r.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The `(multiplier, shift)` of a real scale for [`requantize`] (host only: the kernel never
/// computes float): `real ~= multiplier * 2^(shift - 31)` with `multiplier` in
/// `[2^30, 2^31)`, rounded to nearest. Zero gives `(0, 0)`; values too small for
/// [`SHIFT_MIN`] keep fewer bits of multiplier. `None` when `real` is negative, not finite,
/// or too large (`>= 2^30`): the caller reports which tensor overflows.
#[cfg(any(test, feature = "std"))]
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !(real.is_finite() && real >= 0.0) {
        return None;
    }
    if real == 0.0 || real < f64::MIN_POSITIVE {
        return Some((0, 0));
    }
    // real = frac * 2^exp, frac in [0.5, 1)
    let bits = real.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    let mut mult = (frac * (1u64 << 31) as f64).round() as i64;
    if mult == 1i64 << 31 {
        mult = 1 << 30;
        exp += 1;
    }
    if exp > SHIFT_MAX {
        return None;
    }
    if exp < SHIFT_MIN {
        let drop = (SHIFT_MIN - exp) as u32;
        mult = if drop >= 32 {
            0
        } else {
            (mult + (1 << (drop - 1))) >> drop
        };
        exp = SHIFT_MIN;
    }
    Some((mult as i32, exp))
}

/// `round(v / 2^s)`, ties up, for 64-bit values (`s` in `1..=62`; `s = 0` returns `v`).
#[inline]
pub fn round_shift_i64(v: i64, s: u32) -> i64 {
    if s == 0 {
        v
    } else {
        v.saturating_add(1i64 << (s - 1)) >> s
    }
}

/// Clamps to the `i16` range.
#[inline]
pub fn saturate_i16(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// [`saturate_i16`] of a 64-bit value (LayerNorm's products).
#[inline]
pub fn saturate_i16_wide(v: i64) -> i16 {
    v.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Clamps to the `i8` range.
#[inline]
pub fn saturate_i8(v: i32) -> i8 {
    v.clamp(i8::MIN as i32, i8::MAX as i32) as i8
}

/// `floor(sqrt(n))`, exactly, by the bit-by-bit method (no division, no float).
pub fn isqrt_u64(n: u64) -> u64 {
    let mut rest = n;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > n {
        bit >>= 2;
    }
    while bit != 0 {
        if rest >= root + bit {
            rest -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// Fractional bits of the exponent [`exp2_neg_q15`] takes: it reads `u` as `u / 256`.
pub const EXP2_FRAC_BITS: u32 = 8;

/// `round(2^15 * 2^(-f/256))` for `f` in `0..256`: the fractional part of a base-2
/// exponential in Q15. A host test checks every entry against `f64::exp2`.
pub const EXP2_NEG_Q15: [u16; 256] = [
    32768, 32679, 32591, 32503, 32415, 32327, 32240, 32153, 32066, 31979, 31893, 31806, 31720,
    31635, 31549, 31464, 31379, 31294, 31209, 31125, 31041, 30957, 30873, 30790, 30706, 30623,
    30541, 30458, 30376, 30293, 30212, 30130, 30048, 29967, 29886, 29805, 29725, 29644, 29564,
    29484, 29405, 29325, 29246, 29167, 29088, 29009, 28931, 28852, 28774, 28697, 28619, 28542,
    28464, 28388, 28311, 28234, 28158, 28082, 28006, 27930, 27855, 27779, 27704, 27629, 27554,
    27480, 27406, 27332, 27258, 27184, 27110, 27037, 26964, 26891, 26818, 26746, 26674, 26601,
    26530, 26458, 26386, 26315, 26244, 26173, 26102, 26031, 25961, 25891, 25821, 25751, 25681,
    25612, 25543, 25474, 25405, 25336, 25268, 25199, 25131, 25063, 24995, 24928, 24860, 24793,
    24726, 24659, 24593, 24526, 24460, 24394, 24328, 24262, 24196, 24131, 24066, 24001, 23936,
    23871, 23806, 23742, 23678, 23614, 23550, 23486, 23423, 23359, 23296, 23233, 23170, 23108,
    23045, 22983, 22921, 22859, 22797, 22735, 22674, 22613, 22552, 22491, 22430, 22369, 22309,
    22248, 22188, 22128, 22068, 22009, 21949, 21890, 21831, 21772, 21713, 21654, 21595, 21537,
    21479, 21421, 21363, 21305, 21247, 21190, 21133, 21076, 21019, 20962, 20905, 20849, 20792,
    20736, 20680, 20624, 20568, 20513, 20457, 20402, 20347, 20292, 20237, 20182, 20127, 20073,
    20019, 19965, 19911, 19857, 19803, 19750, 19696, 19643, 19590, 19537, 19484, 19431, 19379,
    19326, 19274, 19222, 19170, 19118, 19066, 19015, 18963, 18912, 18861, 18810, 18759, 18708,
    18658, 18607, 18557, 18507, 18457, 18407, 18357, 18308, 18258, 18209, 18160, 18110, 18061,
    18013, 17964, 17915, 17867, 17819, 17770, 17722, 17674, 17627, 17579, 17531, 17484, 17437,
    17390, 17343, 17296, 17249, 17202, 17156, 17109, 17063, 17017, 16971, 16925, 16879, 16834,
    16788, 16743, 16697, 16652, 16607, 16562, 16518, 16473, 16428,
];

/// `2^(-u/256)` in Q15 (`32768` is 1.0): the table entry of the fractional part, shifted
/// right (truncating) by the integer part. Zero once `u/256 >= 16`.
#[inline]
pub fn exp2_neg_q15(u: u32) -> u32 {
    let whole = u >> EXP2_FRAC_BITS;
    if whole >= 16 {
        0
    } else {
        (EXP2_NEG_Q15[(u & 0xff) as usize] as u32) >> whole
    }
}

/// Integer softmax over attention scores, in the spirit of CMSIS-NN's `arm_softmax_s8`:
///
/// ```text
/// t_j = requantize(s_j - max_k s_k, multiplier, shift)   (<= 0: log2 units, Q8)
/// e_j = 2^(t_j / 256)                                     (Q15, by table)
/// p_j = round(e_j * 2^15 / sum_k e_k)                     (Q15, round half up)
/// ```
///
/// `(multiplier, shift)` turn raw `q . k` dot products into `log2(e) * score` with
/// 8 fractional bits: it folds the query and key scales, `1 / sqrt(d_head)` and `log2 e`
/// into one number computed on the host.
///
/// `scores`: `[n]` raw dot products, `pattern`: `[n]` Q15 probabilities (the largest score
/// gets at least one part in n).
pub fn softmax_q15(scores: &[i32], multiplier: i32, shift: i32, pattern: &mut [u16]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let mut sum = 0u32;
    for (p, &s) in pattern.iter_mut().zip(scores) {
        let t = requantize(s.saturating_sub(max), multiplier, shift).min(0);
        let e = exp2_neg_q15(t.unsigned_abs());
        *p = e as u16;
        sum += e;
    }
    let sum = sum.max(1);
    for p in pattern.iter_mut() {
        *p = (((*p as u32) << 15) + sum / 2)
            .checked_div(sum)
            .unwrap_or(0) as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_table_matches_f64() {
        for (f, &v) in EXP2_NEG_Q15.iter().enumerate() {
            let exact = (32768.0 * (-(f as f64) / 256.0).exp2()).round();
            assert_eq!(v as f64, exact, "f = {f}: table {v}, exact {exact}");
        }
    }

    #[test]
    fn isqrt_small_values() {
        for n in 0..10_000u64 {
            let r = isqrt_u64(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "n = {n}: {r}");
        }
        assert_eq!(isqrt_u64(u64::MAX), u32::MAX as u64);
    }

    #[test]
    fn softmax_of_equal_scores_is_uniform() {
        let mut p = [0u16; 4];
        softmax_q15(&[7, 7, 7, 7], 1 << 30, 0, &mut p);
        assert_eq!(p, [8192; 4]);
        let mut one = [0u16; 1];
        softmax_q15(&[-5], 1 << 30, 0, &mut one);
        assert_eq!(one, [32768]);
    }
}

/// A real scale as a multiplier and a shift: `real = multiplier * 2^(shift - 31)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    /// Q31 multiplier.
    pub multiplier: i32,
    /// Power-of-two exponent, in [`SHIFT_MIN`]`..=`[`SHIFT_MAX`].
    pub shift: i32,
}

impl Requant {
    /// `requantize(v, multiplier, shift)`.
    #[inline]
    pub fn apply(self, v: i32) -> i32 {
        requantize(v, self.multiplier, self.shift)
    }

    /// Pair `i` of a list of (multiplier, shift) words; zero past its end.
    #[cfg_attr(not(feature = "int"), allow(dead_code))]
    pub(crate) fn from_pair(words: &[i32], i: usize) -> Requant {
        Requant {
            multiplier: words.get(2 * i).copied().unwrap_or(0),
            shift: words.get(2 * i + 1).copied().unwrap_or(0),
        }
    }
}
