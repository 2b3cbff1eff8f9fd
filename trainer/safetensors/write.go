package safetensors

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Write serializes tensors and metadata in the safetensors format. The output is
// deterministic and byte-identical to the reference serializer's: tensors ordered by
// descending dtype size, then by name (by name alone when all share a dtype), compact JSON,
// "__metadata__" first with its keys sorted (the reference leaves their order to a hash
// map; it is only deterministic there for a single key such as {"format": "pt"}), and the
// header padded with spaces to a multiple of 8 bytes. A nil or empty metadata map writes no
// "__metadata__" entry. Tensor names must be unique, valid UTF-8 and not "__metadata__".
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr, ordered, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	bw.Write(lenBuf[:])
	bw.Write(hdr)
	for _, t := range ordered {
		bw.Write(t.Data)
	}
	if err := bw.Flush(); err != nil { // bufio.Writer keeps the first error
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// WriteFile writes a safetensors file atomically: to a temporary file in the same
// directory, synced, then renamed over path, so readers never see a partial file.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) (err error) {
	if _, _, err := encodeHeader(tensors, metadata); err != nil { // fail before creating anything
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Write(tmp, tensors, metadata); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// encodeHeader validates the tensors, orders them as the reference serializer does and
// returns the padded JSON header.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, []Tensor, error) {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		switch {
		case t.Name == metadataKey:
			return nil, nil, fmt.Errorf("safetensors: a tensor may not be named %q", metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, nil, fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, nil, fmt.Errorf("safetensors: duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
		if err := t.check(); err != nil {
			return nil, nil, fmt.Errorf("safetensors: %w", err)
		}
	}
	ordered := slices.Clone(tensors)
	slices.SortFunc(ordered, func(a, b Tensor) int {
		if c := cmp.Compare(dtypeRank(b.DType), dtypeRank(a.DType)); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name) // byte order, as Rust's String ordering
	})

	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("safetensors: metadata %q: %q is not valid UTF-8", k, v)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		writeString(&h, metadataKey)
		h.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	var off uint64
	for i, t := range ordered {
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		writeString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, string(t.DType))
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := off + uint64(len(t.Data))
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the %d-byte limit readers enforce", h.Len(), MaxHeaderSize)
	}
	return h.Bytes(), ordered, nil
}

// dtypeRank orders dtypes as the reference's Dtype enum does (by increasing alignment,
// F16 < BF16 < F32); the serializer puts higher ranks first.
func dtypeRank(d DType) int {
	switch d {
	case F16:
		return 1
	case BF16:
		return 2
	case F32:
		return 3
	}
	return 0
}

// writeString writes s as a JSON string escaped exactly as serde_json does: only '"', '\\'
// and control characters are escaped (unlike encoding/json, which also escapes <, >, & and
// U+2028/U+2029), so headers match the reference byte for byte.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
