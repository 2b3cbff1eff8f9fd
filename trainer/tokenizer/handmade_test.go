package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/handmade/tokenizer.json is written by hand to pin Hugging Face's BPE semantics where
// they differ from tiktoken's: ids are not merge ranks (byte ids run backwards, 255 for '!'
// down to 0), and the merges are, by rank,
//
//	0 "a b"→ab(263)  1 "b c"→bc(259)  2 "a bc"→abc(256)  3 "c d"→cd(260)
//	4 "Ġ a"→Ġa(261)  5 "ab cd"→abcd(262)  6 "Ġ abcd"→Ġabcd(257)
//
// plus "Ġabc"(258), which no merge produces. Byte ids: a 191, b 190, c 189, d 188, x 168,
// space 35. The expected ids below are derived by hand and agree with hf_expected.json.
func loadHandmade(t *testing.T, ignoreMerges bool) *Tokenizer {
	t.Helper()
	data, err := os.ReadFile("testdata/handmade/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if ignoreMerges {
		data = []byte(strings.Replace(string(data), `"ignore_merges": false`, `"ignore_merges": true`, 1))
	}
	tok, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMergeRankSemantics(t *testing.T) {
	for _, tc := range []struct {
		text         string
		want         []int
		ignoreMerges []int // when it differs with ignore_merges true
		why          string
	}{
		{"abc", []int{263, 189}, []int{256}, "(a,b) rank 0 wins over (b,c) rank 1; (ab,c) is no merge, so abc is never reached — tiktoken would give [256]"},
		{"bcd", []int{259, 188}, nil, "(b,c) rank 1 before (c,d) rank 3; (bc,d) is no merge"},
		{"abcd", []int{262}, nil, "ab, then cd, then (ab,cd) rank 5"},
		{" abcd", []int{257}, nil, "ab (rank 0) makes the queued (Ġ,a) stale; cd, abcd, then (Ġ,abcd) rank 6"},
		{" abc", []int{35, 263, 189}, []int{258}, "only ignore_merges reaches Ġabc, a vocab entry no merge builds"},
		{"xbc", []int{168, 259}, nil, "x has no merges"},
		{"aaaa", []int{191, 191, 191, 191}, nil, "no (a,a) merge"},
	} {
		for _, ignore := range []bool{false, true} {
			want := tc.want
			if ignore && tc.ignoreMerges != nil {
				want = tc.ignoreMerges
			}
			got := loadHandmade(t, ignore).Encode(tc.text, true)
			if !slices.Equal(got, want) {
				t.Errorf("ignore_merges=%v Encode(%q) = %v, want %v: %s", ignore, tc.text, got, want, tc.why)
			}
		}
	}
}

// TestAddedTokenOptions follows AddedVocabulary::find_matches by hand: "hello world" (264,
// normalized), "<x>" (265, lstrip+rstrip), "dd" (266, single_word), specials <|im_start|> (267)
// and <|im_end|> (268), and "Ġabc" (258), an added token that keeps its vocab id.
func TestAddedTokenOptions(t *testing.T) {
	tok := loadHandmade(t, false)
	for _, tc := range []struct {
		text         string
		allowSpecial bool
		want         []int
	}{
		{"a  <x>  b", true, []int{191, 265, 190}}, // the spaces on both sides are swallowed
		{"dd", true, []int{266}},                  // alone: a single word
		{"add", true, []int{191, 188, 188}},       // inside a word: not matched
		{"dd!", true, []int{266, 255}},            // punctuation is not a word character
		{"_dd", true, []int{193, 188, 188}},       // '_' is (\w)
		{"hello world!", true, []int{264, 255}},   // a whole added token with a space
		{"Ġabc", true, []int{258}},                // matched in raw text, vocab id
		{"<|im_start|>x<|im_end|>", true, []int{267, 168, 268}},
		{"<|im_start|>", false, []int{228, 164, 183, 179, 193, 173, 172, 191, 174, 172, 164, 226}}, // < | im _start | >
	} {
		if got := tok.Encode(tc.text, tc.allowSpecial); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, %v) = %v, want %v", tc.text, tc.allowSpecial, got, tc.want)
		}
	}
	// Decode: "hello world" has a character outside the byte alphabet (' '), so its UTF-8 is
	// used as is; "Ġabc" is all byte characters, so Ġ decodes to a space.
	if got := tok.Decode([]int{264, 258}); got != "hello world abc" {
		t.Errorf("Decode = %q, want %q", got, "hello world abc")
	}
}

// TestMergesAsPairs loads the handmade tokenizer with merges written as [a, b] pairs, the format
// of tokenizers ≥ 0.20, and expects the same ids.
func TestMergesAsPairs(t *testing.T) {
	data, err := os.ReadFile("testdata/handmade/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	model := doc["model"].(map[string]any)
	var pairs [][]string
	for _, m := range model["merges"].([]any) {
		pairs = append(pairs, strings.Split(m.(string), " "))
	}
	model["merges"] = pairs
	data, _ = json.Marshal(doc)
	tok, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadHandmade(t, false)
	for _, s := range []string{"abc", " abcd", "bcd abc", "hello world <x> dd"} {
		assertIDs(t, s, tok.Encode(s, true), ref.Encode(s, true))
	}
}
