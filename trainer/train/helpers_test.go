package train

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/compute"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
	"github.com/pantrypilot/recipe-dpo/trainer/tokenizer"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

var (
	backendOnce sync.Once
	testBackend compute.Backend
	backendErr  error
)

// backend is the backend of $GOMLX_BACKEND (the pure-Go one in tests), shared by all tests.
func backend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() { testBackend, backendErr = NewBackend("") })
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return testBackend
}

// onGoBackend reports whether the tests run on the pure-Go backend. Its reruns of the same
// training are bit-identical, which the byte-equality checks (kill and resume, parallel
// personas, the reference cache on disk or in memory, gs://) rely on. XLA's are not guaranteed
// to be: it compiles each run's programs anew and picks GPU kernels per program, and on an
// H100 (2026-12-06) TestFullDPO, which compares two runs' model bytes, failed.
func onGoBackend(t testing.TB) bool { return isGoBackend(backend(t)) }

// requireBitIdenticalReruns skips a test whose point is byte equality between runs (see
// onGoBackend) on a backend that does not promise it.
func requireBitIdenticalReruns(t *testing.T) {
	t.Helper()
	if !onGoBackend(t) {
		t.Skipf("byte-identical reruns are the pure-Go backend's property; this is %s", backend(t).String())
	}
}

// testEnv runs on the shared backend and logs through t.
func testEnv(t testing.TB) Env {
	return Env{Backend: backend(t), Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// Specials of the test tokenizer, as `trainer tokenizer train` adds them.
var testSpecials = []string{"<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"}

var (
	dishes = []string{"stew", "noodles", "rice", "soup", "tacos", "salad", "curry", "dumplings"}
	good   = []string{"gochujang", "chili", "kimchi", "pepper flakes"}
	bad    = []string{"butter", "cream", "plain bread", "mild cheese"}
)

// syntheticExamples is a learnable preference: the chosen recipe of every prompt is spicy, the
// rejected one bland, with the same dish.
func syntheticExamples(persona string, n int) []schemas.DPOExample {
	out := make([]schemas.DPOExample, n)
	for i := range out {
		dish := dishes[i%len(dishes)]
		out[i] = schemas.DPOExample{
			ID:        fmt.Sprintf("%s-%03d", persona, i),
			PersonaID: persona,
			Prompt:    chatml.Prompt("You write recipes.", fmt.Sprintf("A %s for dinner, number %d.", dish, i)),
			Chosen:    chatml.Completion(fmt.Sprintf("%s with %s and %s.", dish, good[i%len(good)], good[(i+1)%len(good)])),
			Rejected:  chatml.Completion(fmt.Sprintf("%s with %s and %s.", dish, bad[i%len(bad)], bad[(i+1)%len(bad)])),
		}
	}
	return out
}

// fixture is a run root with DPO shards and a tiny random model with its tokenizer.
type fixture struct {
	root, modelDir, outDir string
	cfg                    model.Config
}

// tinyShape is hidden 32, 2 layers, 4 heads over 2 key/value heads.
func tinyShape(vocab int) model.Config {
	return model.Config{
		ModelType: "llama", HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		IntermediateSize: 64, VocabSize: vocab, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 256,
		TieWordEmbeddings: true,
	}
}

// newFixture writes n examples per persona and a tiny model whose tokenizer is trained on them.
func newFixture(t testing.TB, n int, personas ...string) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{root: filepath.Join(dir, "run"), modelDir: filepath.Join(dir, "model"), outDir: filepath.Join(dir, "run", "trained_models")}
	var corpus []string
	for _, p := range personas {
		exs := syntheticExamples(p, n)
		if _, err := shards.Write(context.Background(), shards.PersonaDir(fx.root, shards.DirDPOFormatted, p), exs, 0, schemas.ShardInfo{}); err != nil {
			t.Fatal(err)
		}
		for _, e := range exs {
			corpus = append(corpus, e.Prompt, e.Chosen, e.Rejected)
		}
	}
	tok := writeTokenizer(t, corpus, fx.modelDir)
	fx.cfg = tinyShape(tok.VocabSize())
	writeModel(t, fx.modelDir, fx.cfg, 1)
	return fx
}

// writeTokenizer trains a 320-token tokenizer on corpus and saves it as dir/tokenizer.json.
func writeTokenizer(t testing.TB, corpus []string, dir string) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Train(corpus, 320, testSpecials)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(filepath.Join(dir, tokenizer.FileName)); err != nil {
		t.Fatal(err)
	}
	return tok
}

// writeModel writes a random model directory (weights std 0.02 as transformers initialises).
func writeModel(t testing.TB, dir string, c model.Config, seed int64) {
	t.Helper()
	if err := model.WriteModelDir(dir, c, model.InitRandom(c, seed, safetensors.F32)); err != nil {
		t.Fatal(err)
	}
}

// config is a fast run on the fixture: 2 pairs × 1 accumulation, 1 epoch, lr 1e-3, no warm-up.
func (fx *fixture) config(persona string) Config {
	c := DefaultConfig()
	c.Persona = persona
	c.DataRoot = fx.root
	c.ModelDir = fx.modelDir
	c.OutputDir = fx.outDir
	c.LearningRate = 1e-3
	c.Epochs = 1
	c.BatchSize = 2
	c.GradAccum = 1
	c.WarmupRatio = 0
	c.MaxLength = 96
	c.MaxPromptLength = 64
	c.PadTo = 8
	c.LoggingSteps = 1
	c.SaveSteps = 5
	c.LoRAR = 4
	c.LoRAAlpha = 8
	return c
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
