package safetensors

import "math"

// BF16ToFloat32 widens a bfloat16 (the top 16 bits of a float32) exactly.
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBF16 narrows f to bfloat16 rounding to nearest, ties to even, as PyTorch's
// tensor.to(torch.bfloat16) does: finite values too large for bfloat16 round to ±Inf,
// ±Inf stay ±Inf, and every NaN becomes the canonical quiet NaN 0x7FC0 (PyTorch's choice;
// the sign and payload are dropped). Subnormals need no special case: bfloat16 has float32's
// exponent range, so rounding the mantissa is all there is.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return 0x7fc0
	}
	// Adding 0x7FFF plus the lowest kept bit rounds to nearest even; a carry out of the
	// mantissa correctly bumps the exponent (and the largest finite values to Inf).
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToFloat32 widens an IEEE 754 half-precision value exactly, subnormals included;
// NaN keeps its sign and payload (shifted into the float32 mantissa).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0: // ±0
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant × 2^-24; normalize into a float32 normal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToF16 narrows f to IEEE 754 half precision rounding to nearest, ties to even, as
// numpy and PyTorch do: magnitudes that round above 65504 become ±Inf, ±Inf stay ±Inf,
// values below half the smallest subnormal (2^-25) become ±0, values in between become
// subnormals, and NaN becomes the quiet NaN 0x7E00 with its sign kept (payload dropped).
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: value = m × 2^-24 with m = (1.mant) × 2^(exp-127+24), i.e. the
		// 24-bit significand shifted right by 14-e. float32 subnormals (exp == 0) are far
		// below 2^-25 and land in the shift >= 25 case.
		shift := uint(14 - e)
		if shift >= 25 {
			return sign
		}
		full := mant | 0x800000
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // m == 0x400 is the smallest normal, which the bit layout encodes correctly
		}
		return sign | uint16(m)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is right, and 0x7BFF+1 is Inf
	}
	return sign | uint16(h)
}
