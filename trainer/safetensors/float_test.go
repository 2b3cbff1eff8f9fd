package safetensors

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
)

func TestFloat32ToBF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3f80},
		{"negative", -2.5, 0xc020},
		{"pi rounds down", math.Pi, 0x4049},
		{"tie to even (down)", math.Float32frombits(0x3f808000), 0x3f80},
		{"tie to even (up)", math.Float32frombits(0x3f818000), 0x3f82},
		{"above tie", math.Float32frombits(0x3f808001), 0x3f81},
		{"large", 3e38, 0x7f62},
		{"max float32 overflows to Inf", math.MaxFloat32, 0x7f80},
		{"-max float32 overflows to -Inf", -math.MaxFloat32, 0xff80},
		{"+Inf", float32(math.Inf(1)), 0x7f80},
		{"-Inf", float32(math.Inf(-1)), 0xff80},
		{"float32 subnormal kept", math.Float32frombits(0x00010000), 0x0001},
		{"tiny subnormal rounds to zero", math.Float32frombits(0x00000001), 0x0000},
		{"-tiny subnormal rounds to -0", math.Float32frombits(0x80000001), 0x8000},
		{"NaN is canonical", float32(math.NaN()), 0x7fc0},
		{"negative NaN loses its sign", math.Float32frombits(0xffc00001), 0x7fc0},
		{"signalling NaN stays NaN", math.Float32frombits(0x7f800001), 0x7fc0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Float32ToBF16(tt.in); got != tt.want {
				t.Errorf("Float32ToBF16(%g [%08x]) = %04x, want %04x", tt.in, math.Float32bits(tt.in), got, tt.want)
			}
		})
	}
}

func TestFloat32ToF16(t *testing.T) {
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"negative", -2.5, 0xc100},
		{"max half", 65504, 0x7bff},
		{"just below the overflow tie", 65519.996, 0x7bff},
		{"overflow tie rounds to Inf", 65520, 0x7c00},
		{"large overflows to Inf", 1e6, 0x7c00},
		{"large negative overflows to -Inf", -1e6, 0xfc00},
		{"+Inf", float32(math.Inf(1)), 0x7c00},
		{"-Inf", float32(math.Inf(-1)), 0xfc00},
		{"smallest normal", 0x1p-14, 0x0400},
		{"largest subnormal", 1023 * 0x1p-24, 0x03ff},
		{"subnormal rounds up into normal", 1023.5 * 0x1p-24, 0x0400},
		{"smallest subnormal", 0x1p-24, 0x0001},
		{"negative subnormal", -3 * 0x1p-24, 0x8003},
		{"subnormal tie to even (down)", 2.5 * 0x1p-24, 0x0002},
		{"subnormal tie to even (up)", 3.5 * 0x1p-24, 0x0004},
		{"half the smallest subnormal ties to 0", 0x1p-25, 0x0000},
		{"just above half rounds up", math.Float32frombits(0x33000001), 0x0001},
		{"underflow to -0", -0x1p-30, 0x8000},
		{"float32 subnormal to 0", math.Float32frombits(0x00000001), 0x0000},
		{"NaN is quiet 0x7E00", float32(math.NaN()), 0x7e00},
		{"negative NaN keeps its sign", math.Float32frombits(0xffc00001), 0xfe00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Float32ToF16(tt.in); got != tt.want {
				t.Errorf("Float32ToF16(%g [%08x]) = %04x, want %04x", tt.in, math.Float32bits(tt.in), got, tt.want)
			}
		})
	}
}

// TestHalfRoundTripExhaustive widens every 16-bit pattern and narrows it back: each
// non-NaN BF16 and F16 value must survive unchanged and each NaN must stay NaN.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if f := BF16ToFloat32(h); f != f {
			if back := BF16ToFloat32(Float32ToBF16(f)); back == back {
				t.Errorf("BF16 NaN %04x came back as %g", h, back)
			}
		} else if back := Float32ToBF16(f); back != h {
			t.Errorf("BF16 %04x -> %g -> %04x", h, f, back)
		}
		if f := F16ToFloat32(h); f != f {
			if back := F16ToFloat32(Float32ToF16(f)); back == back {
				t.Errorf("F16 NaN %04x came back as %g", h, back)
			}
		} else if back := Float32ToF16(f); back != h {
			t.Errorf("F16 %04x -> %g -> %04x", h, f, back)
		}
	}
}

func TestF16ToFloat32(t *testing.T) {
	tests := []struct {
		in   uint16
		want float32
	}{
		{0x3c00, 1},
		{0xc000, -2},
		{0x7bff, 65504},
		{0x0400, 0x1p-14},
		{0x0001, 0x1p-24},
		{0x03ff, 1023 * 0x1p-24},
		{0x8001, -0x1p-24},
		{0x7c00, float32(math.Inf(1))},
		{0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := F16ToFloat32(tt.in); got != tt.want {
			t.Errorf("F16ToFloat32(%04x) = %g, want %g", tt.in, got, tt.want)
		}
	}
	if got := F16ToFloat32(0x7e00); got == got {
		t.Errorf("F16ToFloat32(0x7e00) = %g, want NaN", got)
	}
}

// TestFloatConversionsMatchPyTorch compares against testdata/float_conversions.json,
// written by testdata/gen_float_conversions.py with PyTorch (BF16) and numpy (F16).
func TestFloatConversionsMatchPyTorch(t *testing.T) {
	b, err := os.ReadFile("testdata/float_conversions.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Version int `json:"version"`
		Narrow  []struct {
			F32  string `json:"f32"`
			BF16 string `json:"bf16"`
			F16  string `json:"f16"`
		} `json:"narrow"`
		Widen []struct {
			Bits      string `json:"bits"`
			F16ToF32  string `json:"f16_to_f32"`
			BF16ToF32 string `json:"bf16_to_f32"`
		} `json:"widen"`
	}
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	if fx.Version != 1 || len(fx.Narrow) < 100 || len(fx.Widen) < 100 {
		t.Fatalf("fixture version %d with %d/%d records; regenerate it", fx.Version, len(fx.Narrow), len(fx.Widen))
	}
	hex := func(s string) uint64 {
		t.Helper()
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, r := range fx.Narrow {
		f := math.Float32frombits(uint32(hex(r.F32)))
		if got, want := Float32ToBF16(f), uint16(hex(r.BF16)); got != want {
			t.Errorf("Float32ToBF16(%s = %g) = %04x, PyTorch says %04x", r.F32, f, got, want)
		}
		if got, want := Float32ToF16(f), uint16(hex(r.F16)); got != want {
			t.Errorf("Float32ToF16(%s = %g) = %04x, numpy says %04x", r.F32, f, got, want)
		}
	}
	for _, r := range fx.Widen {
		h := uint16(hex(r.Bits))
		if r.F16ToF32 != "" {
			if got, want := math.Float32bits(F16ToFloat32(h)), uint32(hex(r.F16ToF32)); got != want {
				t.Errorf("F16ToFloat32(%04x) = %08x, numpy says %08x", h, got, want)
			}
		}
		if r.BF16ToF32 != "" {
			if got, want := math.Float32bits(BF16ToFloat32(h)), uint32(hex(r.BF16ToF32)); got != want {
				t.Errorf("BF16ToFloat32(%04x) = %08x, PyTorch says %08x", h, got, want)
			}
		}
	}
}
