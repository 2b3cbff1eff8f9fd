// Package safetensors reads and writes the Hugging Face safetensors format
// (https://github.com/huggingface/safetensors) for the floating-point dtypes a Llama
// checkpoint uses: F32, BF16 and F16.
//
// It is hand-written because no usable offline reader exists for Go: go-huggingface reads
// safetensors only through its hub client, and this project never talks to the hub.
//
// # Format
//
// A file is three parts:
//
//	[8 bytes]  N, the header length, unsigned little-endian
//	[N bytes]  a UTF-8 JSON object: {"__metadata__": {string: string}, NAME: {"dtype": "F32",
//	           "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ...}
//	[rest]     the data buffer; each tensor's raw little-endian, row-major bytes lie at
//	           [begin, end) relative to the start of this buffer
//
// Read enforces what the reference implementation enforces, with an error naming the
// offending tensor: the header is at most 100,000,000 bytes and starts with '{'; the
// tensors, ordered by offset, tile the data buffer exactly from 0 to its end (no gaps, no
// overlaps, no trailing bytes); end - begin equals elements × dtype size. It also rejects
// duplicate keys and dtypes other than F32, BF16 and F16, and, like the reference, ignores
// unknown fields inside a tensor's record.
//
// Write produces the bytes the reference serializer (safetensors.torch.save_file) produces:
// tensors ordered by descending dtype size, then by name (so for a single-dtype file simply
// by name), compact JSON with "__metadata__" first and tensors in offset order, and the
// header padded with spaces to a multiple of 8 bytes so every tensor's data is aligned to
// its element size.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is a safetensors element type as spelled in the header.
type DType string

// The dtypes this package supports.
const (
	F32  DType = "F32"
	BF16 DType = "BF16"
	F16  DType = "F16"
)

// Size returns the size in bytes of one element, or 0 for an unsupported dtype.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// Supported reports whether this package can read, write and convert d.
func (d DType) Supported() bool { return d.Size() > 0 }

// Tensor is one named tensor. Data holds its elements as raw little-endian bytes in row-major
// order, len(Data) == NumElements() × DType.Size().
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements returns the product of the shape (1 for a scalar, whose shape is empty).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// check reports a tensor whose dtype, shape or data length is inconsistent.
func (t Tensor) check() error {
	if !t.DType.Supported() {
		return fmt.Errorf("tensor %q: unsupported dtype %q (supported: F32, BF16, F16)", t.Name, t.DType)
	}
	n, err := numElements(t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if want := n * t.DType.Size(); len(t.Data) != want {
		return fmt.Errorf("tensor %q: %s %v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// numElements multiplies out a shape, rejecting negative dimensions and overflow.
func numElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v overflows", shape)
		}
		n *= d
	}
	return n, nil
}

// Float32s decodes the elements as float32. BF16 and F16 widen exactly (every value,
// including subnormals, infinities and NaN payloads, is representable in float32).
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float32, n)
	b := t.Data
	switch t.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case BF16:
		for i := range out {
			out[i] = BF16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case F16:
		for i := range out {
			out[i] = F16ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return out, nil
}

// FromFloat32 builds a tensor of the given dtype from float32 values, rounding to nearest
// even for BF16 and F16 (see Float32ToBF16 and Float32ToF16 for Inf/NaN/overflow handling).
func FromFloat32(name string, shape []int, data []float32, dtype DType) (Tensor, error) {
	if !dtype.Supported() {
		return Tensor{}, fmt.Errorf("tensor %q: unsupported dtype %q (supported: F32, BF16, F16)", name, dtype)
	}
	n, err := numElements(shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if n != len(data) {
		return Tensor{}, fmt.Errorf("tensor %q: shape %v has %d elements, got %d values", name, shape, n, len(data))
	}
	b := make([]byte, n*dtype.Size())
	switch dtype {
	case F32:
		for i, v := range data {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range data {
			binary.LittleEndian.PutUint16(b[2*i:], Float32ToBF16(v))
		}
	case F16:
		for i, v := range data {
			binary.LittleEndian.PutUint16(b[2*i:], Float32ToF16(v))
		}
	}
	return Tensor{Name: name, DType: dtype, Shape: append([]int(nil), shape...), Data: b}, nil
}
