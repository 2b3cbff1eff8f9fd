package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// goldenFile is a safetensors file written out byte by byte from the format's definition:
// metadata {"format":"pt"}, tensor "b" F32 [2] = {1, -2} and tensor "a" BF16 [2, 1] =
// {1, 0.5}. The F32 tensor comes first although "a" < "b": the reference serializer orders
// by descending dtype size before name. The 142-byte JSON is padded with 2 spaces to 144.
func goldenFile() []byte {
	var b []byte
	b = append(b, 144, 0, 0, 0, 0, 0, 0, 0) // header length, u64 little-endian
	b = append(b, `{"__metadata__":{"format":"pt"},`+
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
		`"a":{"dtype":"BF16","shape":[2,1],"data_offsets":[8,12]}}`+
		`  `...)
	b = append(b, 0x00, 0x00, 0x80, 0x3f) // b[0] = 1.0  (0x3F800000)
	b = append(b, 0x00, 0x00, 0x00, 0xc0) // b[1] = -2.0 (0xC0000000)
	b = append(b, 0x80, 0x3f)             // a[0] = 1.0  (bf16 0x3F80)
	b = append(b, 0x00, 0x3f)             // a[1] = 0.5  (bf16 0x3F00)
	return b
}

func TestGoldenBytes(t *testing.T) {
	golden := goldenFile()
	if (len(golden)-12-8)%8 != 0 {
		t.Fatalf("test bug: golden header is not 8-byte aligned")
	}
	f, err := Read(bytes.NewReader(golden), int64(len(golden)))
	if err != nil {
		t.Fatalf("Read(golden): %v", err)
	}
	if want := map[string]string{"format": "pt"}; !reflect.DeepEqual(f.Metadata, want) {
		t.Errorf("Metadata = %v, want %v", f.Metadata, want)
	}
	checkValues(t, f.Tensors["b"], F32, []int{2}, []float32{1, -2})
	checkValues(t, f.Tensors["a"], BF16, []int{2, 1}, []float32{1, 0.5})

	// Write must reproduce the file exactly, whatever order the tensors come in.
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		var ts []Tensor
		for _, n := range order {
			ts = append(ts, f.Tensors[n])
		}
		var buf bytes.Buffer
		if err := Write(&buf, ts, f.Metadata); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), golden) {
			t.Errorf("Write(%v) =\n%q\nwant\n%q", order, buf.Bytes(), golden)
		}
	}
}

// TestGoldenNoPadding covers a header whose JSON is already a multiple of 8 bytes (64),
// so no padding is added, and a file without metadata.
func TestGoldenNoPadding(t *testing.T) {
	var golden []byte
	golden = append(golden, 64, 0, 0, 0, 0, 0, 0, 0)
	golden = append(golden, `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`...)
	for _, v := range []float32{0, 1, 2, 3, 4, 5} {
		golden = binary.LittleEndian.AppendUint32(golden, math.Float32bits(v))
	}
	tn, err := FromFloat32("attn.0", []int{1, 2, 3}, []float32{0, 1, 2, 3, 4, 5}, F32)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, []Tensor{tn}, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), golden) {
		t.Errorf("Write =\n%q\nwant\n%q", buf.Bytes(), golden)
	}
	f, err := Read(bytes.NewReader(golden), int64(len(golden)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Metadata) != 0 {
		t.Errorf("Metadata = %v, want empty", f.Metadata)
	}
	checkValues(t, f.Tensors["attn.0"], F32, []int{1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})
}

func TestGoldenEmpty(t *testing.T) {
	want := []byte("\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
	var buf bytes.Buffer
	if err := Write(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Write(empty) = %q, want %q", buf.Bytes(), want)
	}
	f, err := Read(bytes.NewReader(want), int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 0 {
		t.Errorf("got %d tensors, want 0", len(f.Tensors))
	}

	// Metadata only: 35 bytes of JSON padded with 5 spaces to 40.
	want = []byte("\x28\x00\x00\x00\x00\x00\x00\x00" + `{"__metadata__":{"framework":"pt"}}` + "     ")
	buf.Reset()
	if err := Write(&buf, nil, map[string]string{"framework": "pt"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Write(metadata only) = %q, want %q", buf.Bytes(), want)
	}
}

func TestRoundTripEachDType(t *testing.T) {
	values := []float32{0, 1, -1, 0.5, -3.25, 100, 1.0 / 1024, -16384}
	for _, dt := range []DType{F32, BF16, F16} {
		t.Run(string(dt), func(t *testing.T) {
			tensors := []Tensor{
				mustFromFloat32(t, "m.weight", []int{2, 4}, values, dt),
				mustFromFloat32(t, "scalar", nil, []float32{7}, dt),
				mustFromFloat32(t, "empty", []int{0, 3}, nil, dt),
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			meta := map[string]string{"format": "pt", "note": `quotes " and \ and <html> & é`}
			if err := WriteFile(path, tensors, meta); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Metadata, meta) {
				t.Errorf("Metadata = %v, want %v", f.Metadata, meta)
			}
			if got, want := f.Names(), []string{"empty", "m.weight", "scalar"}; !reflect.DeepEqual(got, want) {
				t.Errorf("Names() = %v, want %v", got, want)
			}
			// Every value above is exactly representable in all three dtypes.
			checkValues(t, f.Tensors["m.weight"], dt, []int{2, 4}, values)
			checkValues(t, f.Tensors["scalar"], dt, []int{}, []float32{7})
			checkValues(t, f.Tensors["empty"], dt, []int{0, 3}, []float32{})
			for _, want := range tensors {
				if got := f.Tensors[want.Name]; !bytes.Equal(got.Data, want.Data) {
					t.Errorf("%s: data = %x, want %x", want.Name, got.Data, want.Data)
				}
			}
			// Rewriting what was read is byte-identical.
			orig, _ := os.ReadFile(path)
			var buf bytes.Buffer
			var again []Tensor
			for _, n := range f.Names() {
				again = append(again, f.Tensors[n])
			}
			if err := Write(&buf, again, f.Metadata); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				t.Errorf("rewrite differs from the original file")
			}
		})
	}
}

func TestWriteMixedDTypesAlignsData(t *testing.T) {
	tensors := []Tensor{
		mustFromFloat32(t, "a.f16", []int{3}, []float32{1, 2, 3}, F16),
		mustFromFloat32(t, "b.bf16", []int{1}, []float32{1}, BF16),
		mustFromFloat32(t, "c.f32", []int{1}, []float32{1}, F32),
		mustFromFloat32(t, "d.f32", []int{2}, []float32{1, 2}, F32),
	}
	var buf bytes.Buffer
	if err := Write(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b)
	hdr := string(b[8 : 8+n])
	// Offset order: F32 tensors by name, then BF16, then F16.
	wantOrder := []string{`"c.f32"`, `"d.f32"`, `"b.bf16"`, `"a.f16"`}
	last := -1
	for _, k := range wantOrder {
		i := strings.Index(hdr, k)
		if i <= last {
			t.Fatalf("header %s: %s not in order %v", hdr, k, wantOrder)
		}
		last = i
	}
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, f.Tensors["a.f16"], F16, []int{3}, []float32{1, 2, 3})
	checkValues(t, f.Tensors["d.f32"], F32, []int{2}, []float32{1, 2})
}

func TestWriteErrors(t *testing.T) {
	ok := mustFromFloat32(t, "w", []int{2}, []float32{1, 2}, F32)
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"duplicate", []Tensor{ok, ok}, nil, `duplicate tensor "w"`},
		{"short data", []Tensor{{Name: "x", DType: F32, Shape: []int{3}, Data: make([]byte, 8)}}, nil, `tensor "x": F32 [3] needs 12 bytes, has 8`},
		{"dtype", []Tensor{{Name: "x", DType: "I64", Shape: []int{1}, Data: make([]byte, 8)}}, nil, `tensor "x": unsupported dtype "I64"`},
		{"negative dim", []Tensor{{Name: "x", DType: F32, Shape: []int{-1}}}, nil, "negative dimension"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{0}}}, nil, `may not be named "__metadata__"`},
		{"bad utf8", []Tensor{{Name: "\xff", DType: F32, Shape: []int{0}}}, nil, "not valid UTF-8"},
		{"bad meta utf8", nil, map[string]string{"k": "\xff"}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tt.tensors, tt.meta)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write error = %v, want one containing %q", err, tt.want)
			}
			path := filepath.Join(t.TempDir(), "x.safetensors")
			if err := WriteFile(path, tt.tensors, tt.meta); err == nil {
				t.Errorf("WriteFile succeeded, want an error")
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
				t.Errorf("WriteFile left %d files behind", len(ents))
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	for i := range 2 {
		tn := mustFromFloat32(t, "w", []int{1}, []float32{float32(i)}, F32)
		if err := WriteFile(path, []Tensor{tn}, nil); err != nil {
			t.Fatal(err)
		}
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, f.Tensors["w"], F32, []int{1}, []float32{1})
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir has %d entries, want only model.safetensors (no temp files)", len(ents))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
}

// rawFile builds a file from a header string (padded to 8 bytes) and a data buffer.
func rawFile(header string, data []byte) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestReadCorrupt(t *testing.T) {
	good := goldenFile()
	withLen := func(n uint64) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	f32 := func(name, shape, offs string) string {
		return `"` + name + `":{"dtype":"F32","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "shorter than the 8-byte header length"},
		{"truncated length", good[:5], "shorter than the 8-byte header length"},
		{"truncated header", good[:40], "header length 144 exceeds the 32 bytes after the length prefix"},
		{"absurd header length", withLen(1 << 40), "exceeds the 100000000-byte limit"},
		{"header length past EOF", withLen(200), "header length 200 exceeds the 156 bytes"},
		{"truncated data", good[:len(good)-1], `tensor "a" data_offsets [8 12] run past the end of the 11-byte data buffer`},
		{"trailing bytes", append(bytes.Clone(good), 0), "tensors cover 12 bytes but the data buffer has 13"},
		{"not JSON", rawFile("not json", nil), "header is not a JSON object"},
		{"JSON array", rawFile("[]", nil), "header is not a JSON object"},
		{"bad JSON", rawFile(`{"a":`, nil), "safetensors: header"},
		{"invalid UTF-8", rawFile("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"garbage after object", rawFile(`{} x`, nil), "unexpected bytes after the JSON object"},
		{"unknown dtype", rawFile(`{"x.weight":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)),
			`tensor "x.weight" has dtype "I64"; only F32, BF16 and F16 are supported`},
		{"missing dtype", rawFile(`{"x":{"shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "x": missing dtype`},
		{"missing shape", rawFile(`{"x":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), `tensor "x": missing shape`},
		{"offsets out of range", rawFile("{"+f32("x", "[4]", "[0,16]")+"}", make([]byte, 8)), `tensor "x" data_offsets [0 16] run past the end of the 8-byte data buffer`},
		{"offsets vs shape", rawFile("{"+f32("x", "[3]", "[0,8]")+"}", make([]byte, 8)), `tensor "x": F32 [3] needs 12 bytes but data_offsets [0 8] span 8`},
		{"overlap", rawFile("{"+f32("x", "[2]", "[0,8]")+","+f32("y", "[2]", "[4,12]")+"}", make([]byte, 12)), `tensor "y" data_offsets [4 12] overlap tensor "x"`},
		{"duplicate offsets", rawFile("{"+f32("x", "[2]", "[0,8]")+","+f32("y", "[2]", "[0,8]")+"}", make([]byte, 8)), "overlap"},
		{"gap", rawFile("{"+f32("x", "[1]", "[4,8]")+"}", make([]byte, 8)), `tensor "x" data_offsets [4 8] leave a gap after byte 0`},
		{"end before begin", rawFile("{"+f32("x", "[0]", "[8,4]")+"}", make([]byte, 8)), "end before they begin"},
		{"negative offset", rawFile("{"+f32("x", "[1]", "[-4,0]")+"}", nil), `tensor "x"`},
		{"three offsets", rawFile("{"+f32("x", "[1]", "[0,4,8]")+"}", make([]byte, 4)), "data_offsets must be [begin, end]"},
		{"negative dim", rawFile("{"+f32("x", "[-1]", "[0,0]")+"}", nil), "negative dimension"},
		{"shape overflow", rawFile("{"+f32("x", "[4294967296,4294967296]", "[0,0]")+"}", nil), "overflows"},
		{"duplicate tensor", rawFile("{"+f32("x", "[1]", "[0,4]")+","+f32("x", "[1]", "[4,8]")+"}", make([]byte, 8)), `duplicate key "x"`},
		{"metadata not strings", rawFile(`{"__metadata__":{"n":1}}`, nil), "__metadata__ must map strings to strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err == nil {
				t.Fatalf("Read succeeded with %d tensors, want an error containing %q", len(f.Tensors), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read error = %q, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReadFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(path, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadFile error = %v, want it to name %s", err, path)
	}
}

func TestReadIgnoresUnknownFieldsAndNullMetadata(t *testing.T) {
	file := rawFile(`{"__metadata__":null,"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"future":true}}`, make([]byte, 4))
	f, err := Read(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata == nil || len(f.Metadata) != 0 {
		t.Errorf("Metadata = %#v, want an empty map", f.Metadata)
	}
	checkValues(t, f.Tensors["x"], F32, []int{1}, []float32{0})
}

func TestFromFloat32Errors(t *testing.T) {
	if _, err := FromFloat32("x", []int{2, 2}, []float32{1, 2, 3}, F32); err == nil || !strings.Contains(err.Error(), "shape [2 2] has 4 elements, got 3 values") {
		t.Errorf("length mismatch: err = %v", err)
	}
	if _, err := FromFloat32("x", []int{1}, []float32{1}, "F64"); err == nil || !strings.Contains(err.Error(), `unsupported dtype "F64"`) {
		t.Errorf("bad dtype: err = %v", err)
	}
	bad := Tensor{Name: "x", DType: BF16, Shape: []int{2}, Data: []byte{1, 2, 3}}
	if _, err := bad.Float32s(); err == nil || !strings.Contains(err.Error(), "needs 4 bytes, has 3") {
		t.Errorf("Float32s on short data: err = %v", err)
	}
}

func mustFromFloat32(t *testing.T, name string, shape []int, data []float32, dt DType) Tensor {
	t.Helper()
	tn, err := FromFloat32(name, shape, data, dt)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func checkValues(t *testing.T, tn Tensor, dt DType, shape []int, want []float32) {
	t.Helper()
	if tn.DType != dt {
		t.Errorf("%s: dtype = %s, want %s", tn.Name, tn.DType, dt)
	}
	if !reflect.DeepEqual(tn.Shape, shape) {
		t.Errorf("%s: shape = %#v, want %#v", tn.Name, tn.Shape, shape)
	}
	got, err := tn.Float32s()
	if err != nil {
		t.Fatalf("%s: Float32s: %v", tn.Name, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: values = %v, want %v", tn.Name, got, want)
	}
}
