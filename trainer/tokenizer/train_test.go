package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestTrainDeterministic(t *testing.T) {
	a, err := trainedForTest(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// Same documents in another order: word counts, hence the merges, do not change.
	shuffled := slices.Clone(recipeCorpus)
	slices.Reverse(shuffled)
	tok, err := Train(shuffled, 500, specialsForTest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("training on the same corpus in another order gave a different tokenizer.json")
	}
}

func TestTrainCompresses(t *testing.T) {
	tok := trainedForTest(t)
	if got, want := tok.NumMerges(), 500-256-len(specialsForTest); got < want {
		t.Errorf("NumMerges() = %d, want at least %d", got, want)
	}
	var nBytes, nTokens int
	for _, doc := range recipeCorpus {
		nBytes += len(doc)
		nTokens += len(tok.Encode(doc, true))
	}
	// 256 byte tokens alone would give 1 byte per token.
	if ratio := float64(nBytes) / float64(nTokens); ratio < 2.2 {
		t.Errorf("training corpus: %.2f bytes per token (%d bytes, %d tokens), want ≥ 2.2", ratio, nBytes, nTokens)
	}
	// Held-out recipe text compresses too, if less.
	held := "Simmer the lentils with garlic and coconut milk for 20 minutes, then season with lime juice."
	if ids := tok.Encode(held, true); float64(len(held))/float64(len(ids)) < 2 {
		t.Errorf("held-out sentence: %d bytes in %d tokens, want ≥ 2 bytes per token", len(held), len(ids))
	}
	// A frequent word is a single token; the specials are never learned as text.
	if ids := tok.Encode(" the", true); len(ids) != 1 {
		t.Errorf("Encode(\" the\") = %v, want one token", ids)
	}
	for _, s := range []string{"<|im", "im_start", "_start|>"} {
		if _, ok := tok.TokenID(s); ok {
			t.Errorf("vocab contains %q, a piece of a special token", s)
		}
	}
}

func TestTrainLayout(t *testing.T) {
	tok := trainedForTest(t)
	// Byte tokens first, in the order of their byte-level characters.
	for id := 0; id < 256; id++ {
		s, _ := tok.Token(id)
		if got := []rune(s); len(got) != 1 || got[0] != byteToRune[byteOrder[id]] {
			t.Fatalf("Token(%d) = %q, want the byte character %q", id, s, byteToRune[byteOrder[id]])
		}
	}
	// Merged tokens next, then the specials.
	for id := 256; id < tok.VocabSize()-len(specialsForTest); id++ {
		if s, ok := tok.Token(id); !ok || len([]rune(s)) < 2 || tok.IsSpecial(id) {
			t.Errorf("Token(%d) = %q, %v; want a merged token", id, s, ok)
		}
	}
	for i, a := range tok.AddedTokens() {
		if a.Content != specialsForTest[i] || !a.Special || a.Normalized || a.ID != tok.VocabSize()-len(specialsForTest)+i {
			t.Errorf("AddedTokens()[%d] = %+v", i, a)
		}
	}
}

func TestTrainErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vocabSize int
		specials  []string
		want      string
	}{
		{"vocab too small", 257, []string{"<a>", "<b>"}, "below 256 bytes + 2 specials"},
		{"empty special", 300, []string{""}, "empty special"},
		{"duplicate special", 300, []string{"<a>", "<a>"}, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Train(recipeCorpus, tc.vocabSize, tc.specials)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Train error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tok := trainedForTest(t)
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil { // a directory gets tokenizer.json
		t.Fatal(err)
	}
	loaded, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.VocabSize() != tok.VocabSize() || loaded.NumMerges() != tok.NumMerges() {
		t.Errorf("loaded VocabSize/NumMerges = %d/%d, want %d/%d",
			loaded.VocabSize(), loaded.NumMerges(), tok.VocabSize(), tok.NumMerges())
	}
	for _, tc := range roundTripCases {
		for _, allow := range []bool{true, false} {
			assertIDs(t, tc.name, loaded.Encode(tc.text, allow), tok.Encode(tc.text, allow))
		}
	}
	for _, doc := range recipeCorpus {
		assertIDs(t, doc, loaded.Encode(doc, true), tok.Encode(doc, true))
	}
	// Saving what was loaded gives the same file.
	again := filepath.Join(t.TempDir(), "sub", "tok.json")
	if err := loaded.Save(again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, FileName))
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("Load then Save changed tokenizer.json")
	}
}

// TestSaveFormat checks the fields Hugging Face reads.
func TestSaveFormat(t *testing.T) {
	data, err := trainedForTest(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Version      string           `json:"version"`
		AddedTokens  []map[string]any `json:"added_tokens"`
		PreTokenizer struct {
			Type          string           `json:"type"`
			PreTokenizers []map[string]any `json:"pretokenizers"`
		} `json:"pre_tokenizer"`
		Decoder map[string]any `json:"decoder"`
		Model   struct {
			Type         string         `json:"type"`
			IgnoreMerges *bool          `json:"ignore_merges"`
			ByteFallback *bool          `json:"byte_fallback"`
			Vocab        map[string]int `json:"vocab"`
			Merges       []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("tokenizer.json: %v", err)
	}
	if f.Version != "1.0" || f.Model.Type != "BPE" || f.Decoder["type"] != "ByteLevel" {
		t.Errorf("version/model/decoder = %q/%q/%v, want 1.0/BPE/ByteLevel", f.Version, f.Model.Type, f.Decoder["type"])
	}
	if f.Model.IgnoreMerges == nil || *f.Model.IgnoreMerges || f.Model.ByteFallback == nil || *f.Model.ByteFallback {
		t.Error("model must spell out ignore_merges false and byte_fallback false")
	}
	if len(f.Model.Merges) == 0 || strings.Count(f.Model.Merges[0], " ") != 1 {
		t.Errorf("merges = %q..., want \"a b\" strings", f.Model.Merges[:min(3, len(f.Model.Merges))])
	}
	if pts := f.PreTokenizer.PreTokenizers; f.PreTokenizer.Type != "Sequence" || len(pts) != 2 ||
		pts[0]["type"] != "Split" || pts[0]["pattern"].(map[string]any)["Regex"] != Llama3Pattern ||
		pts[0]["behavior"] != "Isolated" || pts[1]["type"] != "ByteLevel" || pts[1]["use_regex"] != false {
		t.Errorf("pre_tokenizer = %+v, want Llama 3's Sequence[Split, ByteLevel]", f.PreTokenizer)
	}
	if len(f.AddedTokens) != len(specialsForTest) || f.AddedTokens[0]["special"] != true {
		t.Errorf("added_tokens = %v", f.AddedTokens)
	}
	if bytes.Contains(data, []byte(`\u003c`)) {
		t.Error("tokenizer.json HTML-escapes '<'; write it as serde_json does")
	}
}

func TestTrainFromFiles(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "recipes.txt")
	if err := os.WriteFile(txt, []byte(strings.Join(recipeCorpus[:20], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	var rows bytes.Buffer
	for _, doc := range recipeCorpus[20:] {
		row, _ := json.Marshal(map[string]any{"id": "x", "prompt": doc, "chosen": doc, "meta": map[string]any{"n": 1, "tags": []string{"vegan"}}})
		rows.Write(row)
		rows.WriteByte('\n')
	}
	jsonl := filepath.Join(dir, "pairs.jsonl")
	if err := os.WriteFile(jsonl, rows.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := TrainFromFiles([]string{txt, jsonl}, 400, specialsForTest)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.VocabSize(); got != 400 {
		t.Errorf("VocabSize() = %d, want 400", got)
	}
	// JSONL strings are training text: the tag "vegan", a string of its own in every row,
	// became a token.
	if ids := tok.Encode("vegan", true); len(ids) != 1 {
		t.Errorf("Encode(\"vegan\") = %v, want one token", ids)
	}
	docs, err := readCorpusFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * len(recipeCorpus[20:]); len(docs) != want { // id, prompt, chosen, tag
		t.Errorf("readCorpusFile: %d strings, want %d", len(docs), want)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"a\": 1}\n{oops\n"), 0o644)
	if _, err := TrainFromFiles([]string{bad}, 300, nil); err == nil || !strings.Contains(err.Error(), "JSON value 2") {
		t.Errorf("TrainFromFiles(bad JSONL) error = %v, want one naming value 2", err)
	}
	if _, err := TrainFromFiles([]string{filepath.Join(dir, "missing.txt")}, 300, nil); err == nil {
		t.Error("TrainFromFiles(missing file) succeeded")
	}
	// Files with nothing to learn from: an empty text file, JSON without a non-empty string.
	empty, noStrings := filepath.Join(dir, "empty.txt"), filepath.Join(dir, "numbers.jsonl")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(noStrings, []byte("{\"a\": 1}\n[\"\"]\n"), 0o644)
	if _, err := TrainFromFiles([]string{empty, noStrings}, 300, nil); err == nil || !strings.Contains(err.Error(), "no text in "+empty) {
		t.Errorf("TrainFromFiles(empty files) error = %v, want one naming the files", err)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok := trainedForTest(t)
	want := make([][]int, len(recipeCorpus))
	for i, doc := range recipeCorpus {
		want[i] = tok.Encode(doc, true)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i, doc := range recipeCorpus {
				if got := tok.Encode(doc, true); !slices.Equal(got, want[i]) {
					t.Errorf("concurrent Encode(%q) = %v, want %v", doc, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkEncode(b *testing.B) {
	tok, err := Train(recipeCorpus, 500, specialsForTest)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Join(recipeCorpus, "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, true)
	}
}

func BenchmarkTrain(b *testing.B) {
	var corpus []string
	for i := 0; i < 20; i++ {
		corpus = append(corpus, recipeCorpus...)
	}
	for b.Loop() {
		if _, err := Train(corpus, 2000, specialsForTest); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTrainSeparateSpaces: no learned token starts with a space, a word has the same ids
// after a space as after punctuation, and the file encodes the same after a reload.
func TestTrainSeparateSpaces(t *testing.T) {
	tok, err := Train(recipeCorpus, 500, specialsForTest, SeparateSpaces())
	if err != nil {
		t.Fatal(err)
	}
	b, err := tok.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	space := string(byteToRune[' '])
	for tokText := range f.Model.Vocab {
		if len(tokText) > len(space) && strings.HasPrefix(tokText, space) {
			t.Errorf("learned token %q starts with a space", tokText)
		}
	}
	word := tok.Encode("the", true)
	if len(word) != 1 {
		t.Fatalf("Encode(the) = %v, want one token (a frequent word)", word)
	}
	spaceID, _ := tok.TokenID(space)
	for _, text := range []string{" the", `"the`} {
		ids := tok.Encode(text, true)
		if got := ids[len(ids)-1]; got != word[0] || (text[0] == ' ' && (len(ids) != 2 || ids[0] != spaceID)) {
			t.Errorf("Encode(%q) = %v, want the word's token %d after a separate space or quote", text, ids, word[0])
		}
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range recipeCorpus {
		assertIDs(t, doc, loaded.Encode(doc, true), tok.Encode(doc, true))
	}
	// Without the option the same corpus learns space-led words.
	plain := trainedForTest(t)
	if ids := plain.Encode(" the", true); len(ids) != 1 {
		t.Errorf("default training: Encode(\" the\") = %v, want one space-led token", ids)
	}
}
