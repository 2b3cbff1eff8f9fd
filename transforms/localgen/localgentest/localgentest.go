// Package localgentest writes tiny random Llama model directories (config.json,
// model.safetensors and a small trained tokenizer.json) for tests of in-process generation.
package localgentest

import (
	"path/filepath"
	"testing"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
)

// TinyModelDir writes a random 2-layer Llama (hidden 32) whose tokenizer was trained on a few
// recipe-like sentences with the ChatML specials, and returns its directory and config.
func TinyModelDir(t testing.TB) (string, model.Config) {
	t.Helper()
	dir := t.TempDir()
	corpus := []string{
		`{"title":"Garlic Tofu","cuisine":"Korean","servings":2,"ingredients":[{"name":"tofu","quantity":"200 g"}],"steps":["Cook."],"dietary_tags":[]}`,
		"I have tofu, garlic and kimchi. What can I cook tonight?",
		"You are a helpful cooking assistant that writes recipes.",
	}
	tok, err := tokenizer.Train(corpus, 400, []string{"<|im_start|>", "<|im_end|>", "<|pad|>"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	c := model.Config{HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, IntermediateSize: 64,
		VocabSize: tok.VocabSize(), RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 2048, TieWordEmbeddings: true}
	if err := model.WriteModelDir(dir, c, model.InitRandom(c, 1, safetensors.F32)); err != nil {
		t.Fatal(err)
	}
	return dir, c
}
