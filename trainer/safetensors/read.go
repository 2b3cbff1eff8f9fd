package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header Read accepts, the reference implementation's limit.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// File is the content of a safetensors file (or of a sharded checkpoint, see ReadModelDir).
type File struct {
	Tensors  map[string]Tensor
	Metadata map[string]string // the header's "__metadata__"; empty when absent
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ReadFile reads and validates a safetensors file.
func ReadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// headerEntry is one tensor's header record as written in the file.
type headerEntry struct {
	name    string
	DType   DType    `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets []uint64 `json:"data_offsets"`
}

// Read parses and validates a safetensors file of the given size (see the package doc for
// what is validated) and reads every tensor into memory.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file is %d bytes, shorter than the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d-byte limit (not a safetensors file?)", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d bytes after the length prefix (truncated file?)", n, size-8)
	}
	hdr := make([]byte, n)
	if err := readFull(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	entries, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	dataStart := 8 + int64(n)
	dataLen := uint64(size - dataStart)
	if err := validateLayout(entries, dataLen); err != nil {
		return nil, err
	}
	f := &File{Tensors: make(map[string]Tensor, len(entries)), Metadata: meta}
	for _, e := range entries {
		data := make([]byte, e.Offsets[1]-e.Offsets[0])
		if err := readFull(r, data, dataStart+int64(e.Offsets[0])); err != nil {
			return nil, fmt.Errorf("safetensors: reading tensor %q: %w", e.name, err)
		}
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = int(d)
		}
		f.Tensors[e.name] = Tensor{Name: e.name, DType: e.DType, Shape: shape, Data: data}
	}
	return f, nil
}

// parseHeader decodes the JSON header, rejecting duplicate keys (which encoding/json would
// silently collapse) and anything but F32/BF16/F16 tensors.
func parseHeader(hdr []byte) ([]headerEntry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("safetensors: header is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(hdr, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, errors.New("safetensors: header is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	meta := map[string]string{}
	seen := map[string]bool{}
	var entries []headerEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: header: %w", err)
		}
		name := tok.(string) // object keys are always strings
		if seen[name] {
			return nil, nil, fmt.Errorf("safetensors: header: duplicate key %q", name)
		}
		seen[name] = true
		if name == metadataKey {
			if err := dec.Decode(&meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors: header: %s must map strings to strings: %w", metadataKey, err)
			}
			continue
		}
		e := headerEntry{name: name}
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("safetensors: header: tensor %q: %w", name, err)
		}
		if err := e.check(); err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if meta == nil { // "__metadata__": null
		meta = map[string]string{}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	if rest := bytes.TrimLeft(hdr[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, fmt.Errorf("safetensors: header: unexpected bytes after the JSON object: %q", truncate(rest, 20))
	}
	return entries, meta, nil
}

// check validates one header record on its own.
func (e headerEntry) check() error {
	switch {
	case e.DType == "":
		return fmt.Errorf("safetensors: tensor %q: missing dtype", e.name)
	case !e.DType.Supported():
		return fmt.Errorf("safetensors: tensor %q has dtype %q; only F32, BF16 and F16 are supported", e.name, e.DType)
	case e.Shape == nil:
		return fmt.Errorf("safetensors: tensor %q: missing shape", e.name)
	case len(e.Offsets) != 2:
		return fmt.Errorf("safetensors: tensor %q: data_offsets must be [begin, end], got %v", e.name, e.Offsets)
	case e.Offsets[1] < e.Offsets[0]:
		return fmt.Errorf("safetensors: tensor %q: data_offsets %v end before they begin", e.name, e.Offsets)
	}
	nbytes := uint64(e.DType.Size())
	for _, d := range e.Shape {
		if d < 0 {
			return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", e.name, e.Shape)
		}
		if d != 0 && nbytes > (1<<62)/uint64(d) {
			return fmt.Errorf("safetensors: tensor %q: shape %v overflows", e.name, e.Shape)
		}
		nbytes *= uint64(d)
	}
	if got := e.Offsets[1] - e.Offsets[0]; got != nbytes {
		return fmt.Errorf("safetensors: tensor %q: %s %v needs %d bytes but data_offsets %v span %d", e.name, e.DType, e.Shape, nbytes, e.Offsets, got)
	}
	return nil
}

// validateLayout checks that the tensors, in offset order, tile [0, dataLen) exactly, and
// sorts entries into that order.
func validateLayout(entries []headerEntry, dataLen uint64) error {
	slices.SortFunc(entries, func(a, b headerEntry) int {
		if c := cmpU64(a.Offsets[0], b.Offsets[0]); c != 0 {
			return c
		}
		return cmpU64(a.Offsets[1], b.Offsets[1])
	})
	var pos uint64
	for i, e := range entries {
		begin, end := e.Offsets[0], e.Offsets[1]
		switch {
		case begin < pos:
			return fmt.Errorf("safetensors: tensor %q data_offsets %v overlap tensor %q (which ends at %d)", e.name, e.Offsets, entries[i-1].name, pos)
		case begin > pos:
			return fmt.Errorf("safetensors: tensor %q data_offsets %v leave a gap after byte %d of the data buffer", e.name, e.Offsets, pos)
		case end > dataLen:
			return fmt.Errorf("safetensors: tensor %q data_offsets %v run past the end of the %d-byte data buffer (truncated file?)", e.name, e.Offsets, dataLen)
		}
		pos = end
	}
	if pos != dataLen {
		return fmt.Errorf("safetensors: tensors cover %d bytes but the data buffer has %d", pos, dataLen)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readFull reads exactly len(buf) bytes at off; io.ReaderAt may return io.EOF alongside a
// full read at the end of the input.
func readFull(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
