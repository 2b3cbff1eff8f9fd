package tokenizer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The Hugging Face fixture: testdata/<name>/tokenizer.json for each tokenizer in
// testdata/cases.json, and testdata/hf_expected.json with the ids and texts Hugging Face
// tokenizers (the Rust library, through its official Node binding) gives for every case.
// Regenerate with
//
//	go test ./trainer/tokenizer -run TestHuggingFaceFixture -update
//	node trainer/tokenizer/testdata/gen_fixture.cjs   (see the script for its one dependency)
var update = flag.Bool("update", false, "rewrite the generated tokenizer.json files under testdata")

type fixtureCases struct {
	Tokenizers []string   `json:"tokenizers"`
	Encode     []string   `json:"encode"`
	Decode     [][]string `json:"decode"`
}

type fixtureExpected struct {
	Generator  string                      `json:"generator"`
	Tokenizers map[string]expectedForTokzr `json:"tokenizers"`
}

type expectedForTokzr struct {
	Encode []struct {
		Text               string `json:"text"`
		IDs                []int  `json:"ids"`
		IDsNoSpecial       []int  `json:"ids_no_special"`
		Decoded            string `json:"decoded"`
		DecodedSkipSpecial string `json:"decoded_skip_special"`
	} `json:"encode"`
	Decode []struct {
		Items []string `json:"items"`
		IDs   []int    `json:"ids"`  // null when a named token is not in this tokenizer
		Text  *string  `json:"text"` // null likewise
	} `json:"decode"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// variant rewrites a tokenizer.json's top-level and model fields.
func variant(t *testing.T, base []byte, top map[string]any, model map[string]any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range top {
		doc[k] = v
	}
	m := doc["model"].(map[string]any)
	for k, v := range model {
		m[k] = v
	}
	tok, err := Parse(mustJSON(t, doc))
	if err != nil {
		t.Fatalf("variant does not parse: %v", err)
	}
	out, err := tok.MarshalJSON() // our writer, so variants also exercise Save's format
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFixtureTokenizers(t *testing.T) {
	t.Helper()
	trained, err := trainedForTest(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	handmade, err := os.ReadFile("testdata/handmade/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"trained":        trained,
		"trained_llama3": variant(t, trained, nil, map[string]any{"ignore_merges": true}),
		"trained_gpt2": variant(t, trained, map[string]any{
			"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		}, nil),
		// Every Split behaviour, a literal pattern and invert, before ByteLevel.
		"trained_splits": variant(t, trained, map[string]any{
			"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithNext", "invert": false},
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\d`}, "behavior": "Contiguous", "invert": false},
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `[aeiou]+`}, "behavior": "MergedWithPrevious", "invert": false},
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `[,;]`}, "behavior": "Removed", "invert": false},
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\p{L}+`}, "behavior": "Isolated", "invert": true},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
			}},
		}, nil),
		"handmade_ignore_merges": variant(t, handmade, nil, map[string]any{"ignore_merges": true}),
	}
	for name, data := range files {
		path := filepath.Join("testdata", name, FileName)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixtureIDs resolves a decode case: "0x…" is one byte token per byte, "#n" a raw id, anything
// else a token spelled as in the vocabulary; ok is false when such a token does not exist.
func fixtureIDs(t *testing.T, tok *Tokenizer, items []string) (ids []int, ok bool) {
	t.Helper()
	for _, it := range items {
		switch {
		case strings.HasPrefix(it, "0x"):
			raw, err := hex.DecodeString(it[2:])
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range raw {
				id, ok := tok.TokenID(string(byteToRune[b]))
				if !ok {
					t.Fatalf("no token for byte %#x", b)
				}
				ids = append(ids, id)
			}
		case strings.HasPrefix(it, "#"):
			id, err := strconv.Atoi(it[1:])
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		default:
			id, ok := tok.TokenID(it)
			if !ok {
				return nil, false
			}
			ids = append(ids, id)
		}
	}
	return ids, true
}

func TestHuggingFaceFixture(t *testing.T) {
	if *update {
		writeFixtureTokenizers(t)
	}
	var cases fixtureCases
	readJSON(t, "testdata/cases.json", &cases)
	var want fixtureExpected
	readJSON(t, "testdata/hf_expected.json", &want)
	for _, name := range cases.Tokenizers {
		t.Run(name, func(t *testing.T) {
			tok, err := LoadDir(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			exp, ok := want.Tokenizers[name]
			if !ok || len(exp.Encode) != len(cases.Encode) || len(exp.Decode) != len(cases.Decode) {
				t.Fatalf("hf_expected.json is stale for %s: regenerate it", name)
			}
			for i, e := range exp.Encode {
				if e.Text != cases.Encode[i] {
					t.Fatalf("hf_expected.json case %d is %q, cases.json has %q: regenerate it", i, e.Text, cases.Encode[i])
				}
				got := tok.Encode(e.Text, true)
				assertIDs(t, strconv.Quote(e.Text), got, e.IDs)
				assertIDs(t, strconv.Quote(e.Text)+" without specials", tok.Encode(e.Text, false), e.IDsNoSpecial)
				if d := tok.Decode(e.IDs); d != e.Decoded {
					t.Errorf("Decode(%v) = %q, want %q", e.IDs, d, e.Decoded)
				}
				if d := tok.DecodeSkipSpecial(e.IDs); d != e.DecodedSkipSpecial {
					t.Errorf("DecodeSkipSpecial(%v) = %q, want %q", e.IDs, d, e.DecodedSkipSpecial)
				}
			}
			for i, d := range exp.Decode {
				ids, ok := fixtureIDs(t, tok, cases.Decode[i])
				if ok != (d.Text != nil) {
					t.Errorf("decode case %v: tokens found here %v, by Hugging Face %v", cases.Decode[i], ok, d.Text != nil)
					continue
				}
				if !ok {
					continue
				}
				assertIDs(t, "decode case "+strings.Join(cases.Decode[i], ","), ids, d.IDs)
				if got := tok.Decode(ids); got != *d.Text {
					t.Errorf("Decode(%v) = %q, want %q", ids, got, *d.Text)
				}
			}
		})
	}
}

// TestTrainReproducesFixture pins Train and Save: the committed trained tokenizer.json is what
// they produce today, byte for byte.
func TestTrainReproducesFixture(t *testing.T) {
	got, err := trainedForTest(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/trained/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Train+MarshalJSON differs from testdata/trained/tokenizer.json (%d vs %d bytes); if intended, run with -update and regenerate hf_expected.json", len(got), len(want))
	}
}
