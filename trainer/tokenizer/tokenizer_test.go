package tokenizer

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// roundTripCases are edge cases for Encode→Decode; the HF fixture covers the same ground for ids.
var roundTripCases = []struct{ name, text string }{
	{"empty", ""},
	{"one space", " "},
	{"leading spaces", "   leading"},
	{"trailing spaces", "trailing   "},
	{"multiple inner spaces", "a  b   c    d"},
	{"newlines", "line1\nline2\n\nline4\r\nline5\n"},
	{"only newlines", "\n\n\n"},
	{"tabs", "\tcol1\tcol2\t\t"},
	{"digits in threes", "1234567"},
	{"numbers and decimals", "Bake at 180°C for 25–30 min; 1.5 kg, 1/2 cup, ½ tsp."},
	{"contractions", "don't I'll WE'RE they've she'd you're it's I'M"},
	{"accents", "Crème brûlée, purée, naïve café, jalapeño"},
	{"CJK", "麻婆豆腐とラーメン、김치찌개"},
	{"emoji", "🍅🥑 and 👩‍🍳 (zero-width joiner) ❤️"},
	{"punctuation runs", "Wait... what?!?! --- ok;;; (yes) [no] {maybe}"},
	{"json", `{"title": "Soup", "servings": 4, "tags": ["vegan"]}`},
	{"non-breaking space", "10\u00a0g\u2009salt"},
	{"special tokens as text", "<|im_start|>user\nHi<|im_end|>\n"},
	{"partial special", "<|im_start|im_end|> <|im_"},
	{"long word", strings.Repeat("abc", 400)},
	{"long whitespace", strings.Repeat(" ", 300) + "x" + strings.Repeat("\n", 50)},
	{"invalid utf-8 bytes", "ok \xff\xfe bad \xc3 cut"},
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tok := trainedForTest(t)
	for _, tc := range roundTripCases {
		for _, allow := range []bool{true, false} {
			ids := tok.Encode(tc.text, allow)
			if got := string(tok.DecodeBytes(ids)); got != tc.text {
				t.Errorf("%s (allowSpecial=%v): DecodeBytes(Encode(%q)) = %q", tc.name, allow, tc.text, got)
			}
			for _, id := range ids {
				if id < 0 || id >= tok.VocabSize() {
					t.Errorf("%s: id %d outside [0, %d)", tc.name, id, tok.VocabSize())
				}
			}
		}
	}
}

func TestEncodeEmpty(t *testing.T) {
	tok := trainedForTest(t)
	if got := tok.Encode("", true); got == nil || len(got) != 0 {
		t.Errorf("Encode(\"\") = %#v, want an empty non-nil slice", got)
	}
	if got := tok.Decode(nil); got != "" {
		t.Errorf("Decode(nil) = %q, want empty", got)
	}
}

func TestSpecialTokens(t *testing.T) {
	tok := trainedForTest(t)
	start, _ := tok.TokenID("<|im_start|>")
	end, _ := tok.TokenID("<|im_end|>")
	text := "<|im_start|>user\nHi<|im_end|>"

	withSpecial := tok.Encode(text, true)
	if withSpecial[0] != start || withSpecial[len(withSpecial)-1] != end {
		t.Errorf("Encode(allowSpecial) = %v, want it to start with %d and end with %d", withSpecial, start, end)
	}
	assertIDs(t, "inner text", withSpecial[1:len(withSpecial)-1], tok.Encode("user\nHi", true))

	plain := tok.Encode(text, false)
	for _, id := range plain {
		if tok.IsSpecial(id) {
			t.Errorf("Encode(allowSpecial=false) = %v contains special id %d", plain, id)
		}
	}
	if got := tok.Decode(plain); got != text {
		t.Errorf("Decode(plain) = %q, want %q", got, text)
	}
	if got := tok.DecodeSkipSpecial(withSpecial); got != "user\nHi" {
		t.Errorf("DecodeSkipSpecial = %q, want %q", got, "user\nHi")
	}
	// The regex must not see across a special token: "a<|im_end|>b" is a, special, b.
	assertIDs(t, "adjacent", tok.Encode("a<|im_end|>b", true), append(append(tok.Encode("a", true), end), tok.Encode("b", true)...))
}

func TestVocabAccessors(t *testing.T) {
	tok := trainedForTest(t)
	nSpecial := len(specialsForTest)
	if got, want := tok.VocabSize(), 500; got != want {
		t.Errorf("VocabSize() = %d, want %d", got, want)
	}
	for i, s := range specialsForTest {
		id, ok := tok.TokenID(s)
		if want := tok.VocabSize() - nSpecial + i; !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d, true", s, id, ok, want)
		}
		if got, _ := tok.Token(id); got != s {
			t.Errorf("Token(%d) = %q, want %q", id, got, s)
		}
	}
	if id, ok := tok.TokenID("!"); !ok || id != 0 {
		t.Errorf("TokenID(\"!\") = %d, %v; want 0 (the first byte token)", id, ok)
	}
	if id, ok := tok.TokenID("Ġ"); !ok || id != 220 {
		t.Errorf("TokenID(\"Ġ\") = %d, %v; want 220 (as in GPT-2 and Llama 3)", id, ok)
	}
	bos, ok := tok.BOS()
	if want, _ := tok.TokenID("<|begin_of_text|>"); !ok || bos != want {
		t.Errorf("BOS() = %d, %v; want %d", bos, ok, want)
	}
	eos, ok := tok.EOS()
	if want, _ := tok.TokenID("<|end_of_text|>"); !ok || eos != want {
		t.Errorf("EOS() = %d, %v; want %d", eos, ok, want)
	}
	if _, ok := tok.TokenID("<|nope|>"); ok {
		t.Error("TokenID of an unknown token reported ok")
	}
	if _, ok := tok.Token(-1); ok {
		t.Error("Token(-1) reported ok")
	}
}

func TestLossyUTF8(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"\xc3", "\ufffd"},
		{"\xc3a", "\ufffda"},
		{"\xe2\x82", "\ufffd"},                 // truncated 3-byte sequence: one replacement
		{"\xf0\x9f\x8d", "\ufffd"},             // truncated 4-byte sequence: one replacement
		{"\xf0\x9f\x8d\x85", "🍅"},              // complete
		{"\xff\xfe", "\ufffd\ufffd"},           // never-valid bytes: one each
		{"\xe0\x80\x80", "\ufffd\ufffd\ufffd"}, // overlong: E0 must be followed by A0..BF
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate
		{"a\x80b", "a\ufffdb"},
	} {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const bpeOK = `"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}`
	const preOK = `"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`
	const decOK = `"decoder": {"type": "ByteLevel"}`
	for _, tc := range []struct {
		name, json, wantErr string
		unsupported         bool
	}{
		{"not json", `{`, "parse tokenizer.json", false},
		{"no model", `{}`, "no model", false},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}, ` + preOK + `, ` + decOK + `}`, `model type "WordPiece"`, true},
		{"unigram", `{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}, ` + preOK + `, ` + decOK + `}`, "", true},
		{"byte fallback", `{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0}, "merges": []}, ` + preOK + `, ` + decOK + `}`, "byte_fallback", true},
		{"normalizer", `{` + bpeOK + `, "normalizer": {"type": "NFC"}, ` + preOK + `, ` + decOK + `}`, `normalizer "NFC"`, true},
		{"no pre-tokenizer", `{` + bpeOK + `, ` + decOK + `}`, "no pre_tokenizer", true},
		{"metaspace", `{` + bpeOK + `, "pre_tokenizer": {"type": "Metaspace"}, ` + decOK + `}`, `"Metaspace"`, true},
		{"split only", `{` + bpeOK + `, "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"}, ` + decOK + `}`, "no ByteLevel", true},
		{"bad behavior", `{` + bpeOK + `, "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Odd"}, ` + decOK + `}`, `behavior "Odd"`, false},
		{"bad regex", `{` + bpeOK + `, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}, ` + decOK + `}`, "compile pattern", false},
		{"wrong decoder", `{` + bpeOK + `, ` + preOK + `, "decoder": {"type": "Metaspace"}}`, `decoder "Metaspace"`, true},
		{"merge part missing", `{"model": {"type": "BPE", "vocab": {"a": 0, "ab": 2}, "merges": ["a b"]}, ` + preOK + `, ` + decOK + `}`, `"b" is not in the vocab`, false},
		{"merge result missing", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}, ` + preOK + `, ` + decOK + `}`, `"ab" is not in the vocab`, false},
		{"bad merge", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b c"]}, ` + preOK + `, ` + decOK + `}`, "two space-separated", false},
		{"duplicate id", `{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}, ` + preOK + `, ` + decOK + `}`, "share id 0", false},
		{"added id gap", `{` + bpeOK + `, ` + preOK + `, ` + decOK + `, "added_tokens": [{"id": 7, "content": "<s>", "special": true}]}`, "Hugging Face would assign 3", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if got := errors.Is(err, ErrUnsupported); got != tc.unsupported {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v, want %v", err, got, tc.unsupported)
			}
		})
	}
}

// Encode caches merged words; what it returns must still be the caller's to modify.
func TestEncodeResultIsCallersOwn(t *testing.T) {
	tok := trainedForTest(t)
	first := tok.Encode("simmer the lentils", true)
	want := slices.Clone(first)
	for i := range first {
		first[i] = -1
	}
	assertIDs(t, "second Encode", tok.Encode("simmer the lentils", true), want)
}
