package generate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
	llamacfg "github.com/pantrypilot/recipe-dpo/trainer/model"
)

var (
	backendOnce sync.Once
	testBackend compute.Backend
)

// backend returns the backend named by $GOMLX_BACKEND (the pure-Go one in tests).
func backend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() {
		b, err := compute.New()
		if err != nil {
			t.Fatalf("compute backend: %v", err)
		}
		testBackend = b
	})
	return testBackend
}

// tinyConfig is llama's test model: hidden 32, 2 layers, 4 heads over 2 key/value heads,
// vocabulary 97, llama3 rope scaling.
func tinyConfig() llamacfg.Config {
	return llamacfg.Config{
		ModelType: "llama", HiddenSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		IntermediateSize: 64, VocabSize: 97, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 1024,
		RopeScaling: &llamacfg.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 128},
	}
}

// randomWeights draws every matrix from N(0, std²) and norms from 1 + N(0, 0.1²): larger than
// InitWeights' 0.02 so the model's choices depend on the context.
func randomWeights(cfg llamacfg.Config, seed uint64, std float64) map[string]llama.Weight {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := map[string]llama.Weight{}
	for _, s := range llama.ExpectedWeights(cfg) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		w := llama.Weight{Shape: s.Shape, Data: make([]float32, n)}
		for j := range w.Data {
			if len(s.Shape) == 1 {
				w.Data[j] = float32(1 + 0.1*rng.NormFloat64())
			} else {
				w.Data[j] = float32(std * rng.NormFloat64())
			}
		}
		out[s.Name] = w
	}
	return out
}

// newTinyModel builds a store with random base weights and a LoRA adapter on every projection
// whose B factors are random too, so switching the adapter changes the outputs.
func newTinyModel(t testing.TB, cfg llamacfg.Config, dtype dtypes.DType) (*model.Store, *llama.Model) {
	t.Helper()
	lora := llama.LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.1,
		TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}
	m, err := llama.New(cfg, dtype, &lora)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	if err := llama.LoadWeights(store, cfg, dtype, randomWeights(cfg, 1, 0.3)); err != nil {
		t.Fatal(err)
	}
	if err := llama.AddLoRA(store, m, 2); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for _, s := range llama.LoRAWeightSpecs(cfg, lora) {
		if !strings.HasSuffix(s.Name, "lora_B.weight") {
			continue
		}
		data := make([]float64, s.Shape[0]*s.Shape[1])
		for j := range data {
			data[j] = 0.3 * rng.NormFloat64()
		}
		value := tensors.FromFlatDataAndDimensions(data, s.Shape...)
		if dtype == dtypes.Float32 {
			f := make([]float32, len(data))
			for j, x := range data {
				f[j] = float32(x)
			}
			value = tensors.FromFlatDataAndDimensions(f, s.Shape...)
		}
		if err := store.GetVariable(llama.VariablePath(s.Name)).SetValue(value); err != nil {
			t.Fatal(err)
		}
	}
	return store, m
}

// fakeTokenizer writes token i as "[i]" and reads such text back.
type fakeTokenizer struct{}

var fakeToken = regexp.MustCompile(`\[(\d+)\]`)

func (fakeTokenizer) Encode(text string, _ bool) []int {
	var ids []int
	for _, m := range fakeToken.FindAllStringSubmatch(text, -1) {
		id, _ := strconv.Atoi(m[1])
		ids = append(ids, id)
	}
	return ids
}

func (fakeTokenizer) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "[%d]", id)
	}
	return b.String()
}

// prompt writes ids as fakeTokenizer text.
func prompt(ids ...int) string { return fakeTokenizer{}.Decode(ids) }

// testPrompts are three prompts of different lengths (1, 5 and 11 tokens).
var testPrompts = []string{
	prompt(5),
	prompt(17, 3, 42, 8, 91),
	prompt(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
}

func newGenerator(t testing.TB) (*Generator, *model.Store, *llama.Model) {
	t.Helper()
	return newGeneratorFor(t, tinyConfig(), dtypes.Float32)
}

func newGeneratorFor(t testing.TB, cfg llamacfg.Config, dtype dtypes.DType) (*Generator, *model.Store, *llama.Model) {
	t.Helper()
	store, m := newTinyModel(t, cfg, dtype)
	g, err := New(backend(t), store, m, fakeTokenizer{})
	if err != nil {
		t.Fatal(err)
	}
	return g, store, m
}

// fullGreedy is the reference: greedy decoding of n tokens by running llama's full Logits over
// each row's whole sequence at every step (right-padded to a fixed length so one graph serves).
// It returns the tokens and the logits each token was chosen from.
func fullGreedy(t *testing.T, store *model.Store, m *llama.Model, adapter llama.Adapter, prompts [][]int, n int) (tokens [][]int, logits [][][]float32) {
	t.Helper()
	return fullGreedyPenalized(t, store, m, adapter, prompts, n, 0, 0)
}

// fullGreedyPenalized is fullGreedy choosing each token after subtracting the OpenAI penalties
// written out from their definition: presence once for every token id the row generated so
// far, plus frequency per occurrence. The returned logits are the unpenalized ones.
func fullGreedyPenalized(t *testing.T, store *model.Store, m *llama.Model, adapter llama.Adapter, prompts [][]int, n int,
	presence, frequency float64) (tokens [][]int, logits [][][]float32) {
	t.Helper()
	exec, err := llama.NewLogitsExec(backend(t), store, m, adapter)
	if err != nil {
		t.Fatal(err)
	}
	b, v := len(prompts), m.Config.VocabSize
	seqLen := 0
	seqs := make([][]int, b)
	for i, p := range prompts {
		seqs[i] = slices.Clone(p)
		seqLen = max(seqLen, len(p)+n)
	}
	tokens, logits = make([][]int, b), make([][][]float32, b)
	for range n {
		ids := make([]int32, b*seqLen)
		mask := make([]int32, b*seqLen)
		for i, s := range seqs {
			for j, id := range s {
				ids[i*seqLen+j], mask[i*seqLen+j] = int32(id), 1
			}
		}
		out := exec.MustCall(tensors.FromFlatDataAndDimensions(ids, b, seqLen), tensors.FromFlatDataAndDimensions(mask, b, seqLen))
		flat := float32s(out[0]) // [B, S, V]
		for i, s := range seqs {
			row := flat[(i*seqLen+len(s)-1)*v : (i*seqLen+len(s))*v]
			adjusted := slices.Clone(row)
			for id := range adjusted {
				occ := 0
				for _, prev := range tokens[i] {
					if prev == id {
						occ++
					}
				}
				if occ > 0 {
					adjusted[id] -= float32(presence + frequency*float64(occ))
				}
			}
			tok := argmax(adjusted)
			tokens[i] = append(tokens[i], tok)
			logits[i] = append(logits[i], row)
			seqs[i] = append(seqs[i], tok)
		}
	}
	return tokens, logits
}

// float32s copies a float32 or float64 tensor's values as float32.
func float32s(x *tensors.Tensor) []float32 {
	if x.DType() == dtypes.Float32 {
		return tensors.MustCopyFlatData[float32](x)
	}
	f64 := tensors.MustCopyFlatData[float64](x)
	out := make([]float32, len(f64))
	for i, v := range f64 {
		out[i] = float32(v)
	}
	return out
}

func encodeAll(prompts []string) [][]int {
	out := make([][]int, len(prompts))
	for i, p := range prompts {
		out[i] = fakeTokenizer{}.Encode(p, true)
	}
	return out
}

// TestCachedLogitsMatchFullRecomputation drives the prefill and decode executors directly and
// compares every step's logits with llama's full forward pass on the same sequences, for the
// test model in float32 with the adapter off and on, and with tied embeddings in float64.
func TestCachedLogitsMatchFullRecomputation(t *testing.T) {
	tied := tinyConfig()
	tied.TieWordEmbeddings = true
	const n = 14
	for _, tc := range []struct {
		name    string
		cfg     llamacfg.Config
		dtype   dtypes.DType
		adapter llama.Adapter
		tol     float64
	}{
		{"f32", tinyConfig(), dtypes.Float32, llama.AdapterOff, 1e-4},
		{"f32+lora", tinyConfig(), dtypes.Float32, llama.AdapterOn, 1e-4},
		{"f64+tied+lora", tied, dtypes.Float64, llama.AdapterOn, 1e-5}, // logits come back as float32
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, store, m := newGeneratorFor(t, tc.cfg, tc.dtype)
			adapter := tc.adapter
			prompts := encodeAll(testPrompts)
			wantTokens, wantLogits := fullGreedy(t, store, m, adapter, prompts, n)
			s, err := newSession(g, adapter, len(prompts), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			logits, err := s.prefill(prompts)
			if err != nil {
				t.Fatal(err)
			}
			for step := range n {
				for i := range prompts {
					for j, want := range wantLogits[i][step] {
						if got := logits[i][j]; math.Abs(float64(got-want)) > tc.tol*(1+math.Abs(float64(want))) {
							t.Fatalf("row %d step %d logit %d: got %g, want %g", i, step, j, got, want)
						}
					}
				}
				if step == n-1 {
					break
				}
				feed, positions := make([]int32, len(prompts)), make([]int32, len(prompts))
				for i, p := range prompts {
					feed[i], positions[i] = int32(wantTokens[i][step]), int32(len(p)+step)
				}
				if logits, err = s.step(feed, positions); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestGreedyMatchesFullRecomputation: greedy generation with the cache picks the tokens that
// argmax over llama's full logits picks, for a batch of prompts of different lengths, with
// the adapter off and on (which must differ).
func TestGreedyMatchesFullRecomputation(t *testing.T) {
	g, store, m := newGenerator(t)
	const n = 16
	var byAdapter [][][]int
	for _, adapter := range []llama.Adapter{llama.AdapterOff, llama.AdapterOn} {
		t.Run(fmt.Sprintf("adapter=%v", adapter), func(t *testing.T) {
			want, _ := fullGreedy(t, store, m, adapter, encodeAll(testPrompts), n)
			res, err := g.Generate(context.Background(), testPrompts, Options{MaxNewTokens: n, Adapter: adapter})
			if err != nil {
				t.Fatal(err)
			}
			var got [][]int
			for i, r := range res {
				if !slices.Equal(r.Tokens, want[i]) {
					t.Errorf("row %d: got tokens %v, want %v", i, r.Tokens, want[i])
				}
				if r.StopReason != StopReasonLength || r.CompletionTokens != n || r.PromptTokens != len(encodeAll(testPrompts)[i]) {
					t.Errorf("row %d: got reason %q, %d prompt and %d completion tokens; want length, %d and %d",
						i, r.StopReason, r.PromptTokens, r.CompletionTokens, len(encodeAll(testPrompts)[i]), n)
				}
				if r.Text != prompt(r.Tokens...) {
					t.Errorf("row %d: got text %q, want %q", i, r.Text, prompt(r.Tokens...))
				}
				got = append(got, r.Tokens)
			}
			byAdapter = append(byAdapter, got)
		})
	}
	if len(byAdapter) == 2 && slices.EqualFunc(byAdapter[0], byAdapter[1], slices.Equal) {
		t.Errorf("adapter on and off generated the same tokens %v: the adapter switch has no effect", byAdapter[0])
	}
}

// TestPenaltiesMatchReference: presence and frequency penalties in the cached decoder choose
// the tokens the full-recomputation reference chooses with the penalties written out, and
// they change what greedy decoding repeats.
func TestPenaltiesMatchReference(t *testing.T) {
	g, store, m := newGenerator(t)
	const n = 24
	prompts := encodeAll(testPrompts)
	plain, _ := fullGreedy(t, store, m, llama.AdapterOff, prompts, n)
	for _, pen := range []struct{ presence, frequency float64 }{{1.5, 0}, {0, 0.7}, {0.5, 0.5}} {
		t.Run(fmt.Sprintf("presence=%g,frequency=%g", pen.presence, pen.frequency), func(t *testing.T) {
			want, _ := fullGreedyPenalized(t, store, m, llama.AdapterOff, prompts, n, pen.presence, pen.frequency)
			res, err := g.Generate(context.Background(), testPrompts, Options{MaxNewTokens: n,
				PresencePenalty: pen.presence, FrequencyPenalty: pen.frequency})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !slices.Equal(r.Tokens, want[i]) {
					t.Errorf("row %d: got tokens %v, want %v", i, r.Tokens, want[i])
				}
			}
			if slices.EqualFunc(want, plain, slices.Equal) {
				t.Errorf("the penalties changed no token of %v: the test model does not exercise them", plain)
			}
		})
	}
}

// TestBatchedEqualsSingleRow: padding and batching do not change any row's output, greedy or
// sampled (the sampler streams are seeded per prompt index, so batches of 1 starting at the
// same index are compared via MaxBatch).
func TestBatchedEqualsSingleRow(t *testing.T) {
	g, _, _ := newGenerator(t)
	ctx := context.Background()
	for _, o := range []Options{
		{MaxNewTokens: 12},
		{MaxNewTokens: 12, Temperature: 0.9, TopP: 0.95, Seed: 7},
	} {
		t.Run(fmt.Sprintf("T=%g", o.Temperature), func(t *testing.T) {
			g.MaxBatch = 8
			batched, err := g.Generate(ctx, testPrompts, o)
			if err != nil {
				t.Fatal(err)
			}
			g.MaxBatch = 1
			single, err := g.Generate(ctx, testPrompts, o)
			g.MaxBatch = 8
			if err != nil {
				t.Fatal(err)
			}
			for i := range testPrompts {
				if !slices.Equal(batched[i].Tokens, single[i].Tokens) {
					t.Errorf("row %d: batched %v, alone %v", i, batched[i].Tokens, single[i].Tokens)
				}
			}
			if o.Temperature == 0 {
				for i, p := range testPrompts {
					alone, err := g.Generate(ctx, []string{p}, o)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(batched[i].Tokens, alone[0].Tokens) {
						t.Errorf("row %d: batched %v, alone %v", i, batched[i].Tokens, alone[0].Tokens)
					}
				}
			}
		})
	}
}

// TestGenerateRequestsEqualsSingleCalls: requests with their own temperature, top-p, length
// and seed, decoded together, complete exactly as each does in a single-prompt Generate call.
func TestGenerateRequestsEqualsSingleCalls(t *testing.T) {
	g, _, _ := newGenerator(t)
	ctx := context.Background()
	reqs := []Request{
		{Prompt: testPrompts[0], MaxNewTokens: 12, Temperature: 0.7, TopP: 1, Seed: 11},
		{Prompt: testPrompts[1], MaxNewTokens: 5, Seed: 12},
		{Prompt: testPrompts[2], MaxNewTokens: 12, Temperature: 0.9, TopP: 0.95, Seed: 13},
		{Prompt: testPrompts[0], MaxNewTokens: 9, Temperature: 0.9, TopP: 0.95, Seed: 14},
		{Prompt: testPrompts[1], MaxNewTokens: 12, PresencePenalty: 1, FrequencyPenalty: 0.5, Seed: 15},
		{Prompt: testPrompts[2], MaxNewTokens: 12, Temperature: 0.8, PresencePenalty: 0.8, Seed: 16},
	}
	shared := Options{StopTokens: []int{7}}
	for _, maxBatch := range []int{8, 3} {
		g.MaxBatch = maxBatch
		got, err := g.GenerateRequests(ctx, reqs, shared)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			o := shared
			o.MaxNewTokens, o.Temperature, o.TopP, o.Seed = r.MaxNewTokens, r.Temperature, r.TopP, r.Seed
			o.PresencePenalty, o.FrequencyPenalty = r.PresencePenalty, r.FrequencyPenalty
			alone, err := g.Generate(ctx, []string{r.Prompt}, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[i].Tokens, alone[0].Tokens) || got[i].StopReason != alone[0].StopReason {
				t.Errorf("MaxBatch %d, request %d: together %v (%s), alone %v (%s)", maxBatch, i, got[i].Tokens, got[i].StopReason, alone[0].Tokens, alone[0].StopReason)
			}
		}
	}
	g.MaxBatch = DefaultMaxBatch
	if _, err := g.GenerateRequests(ctx, []Request{{Prompt: testPrompts[0], MaxNewTokens: 0}}, shared); err == nil || !strings.Contains(err.Error(), "request 0") {
		t.Errorf("invalid request: got %v, want an error naming request 0", err)
	}
}

// TestSamplingIsSeeded: a seed fixes the samples, another seed changes them, and a tiny top-p
// is greedy decoding.
func TestSamplingIsSeeded(t *testing.T) {
	g, _, _ := newGenerator(t)
	ctx := context.Background()
	gen := func(o Options) [][]int {
		t.Helper()
		res, err := g.Generate(ctx, testPrompts, o)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]int
		for _, r := range res {
			out = append(out, r.Tokens)
		}
		return out
	}
	o := Options{MaxNewTokens: 16, Temperature: 1.5, Seed: 42}
	a, b := gen(o), gen(o)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Errorf("same seed: got %v and %v, want equal", a, b)
	}
	o.Seed = 43
	if c := gen(o); slices.EqualFunc(a, c, slices.Equal) {
		t.Errorf("seeds 42 and 43 both gave %v, want different samples", a)
	}
	greedy := gen(Options{MaxNewTokens: 16})
	if slices.EqualFunc(a, greedy, slices.Equal) {
		t.Errorf("temperature 1.5 gave the greedy tokens %v", a)
	}
	if got := gen(Options{MaxNewTokens: 16, Temperature: 1.5, TopP: 1e-9, Seed: 42}); !slices.EqualFunc(got, greedy, slices.Equal) {
		t.Errorf("top_p 1e-9: got %v, want the greedy %v", got, greedy)
	}
}

// TestStops: stop strings (within one token or across two), stop tokens and the length limit.
func TestStops(t *testing.T) {
	g, _, _ := newGenerator(t)
	ctx := context.Background()
	p := testPrompts[1]
	ref, err := g.Generate(ctx, []string{p}, Options{MaxNewTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	toks := ref[0].Tokens
	first := func(tok int) int { return slices.Index(toks, tok) }
	k := first(toks[4]) // the stop token's first occurrence

	for _, tc := range []struct {
		name       string
		o          Options
		wantTokens []int
		wantText   string
		wantReason string
	}{
		{"length", Options{MaxNewTokens: 5}, toks[:5], prompt(toks[:5]...), StopReasonLength},
		{"stop string", Options{MaxNewTokens: 12, StopStrings: []string{prompt(toks[4]), "never"}},
			toks[:k+1], prompt(toks[:k]...), StopReasonStop},
		{"stop string inside a token", Options{MaxNewTokens: 12, StopStrings: []string{fmt.Sprintf("%d]", toks[4])}},
			nil, "", StopReasonStop}, // checked below: cut inside the text
		{"stop string across tokens", Options{MaxNewTokens: 12, StopStrings: []string{prompt(toks[6:8]...)}},
			nil, "", StopReasonStop},
		{"stop token", Options{MaxNewTokens: 12, StopTokens: []int{toks[4]}},
			toks[:k+1], prompt(toks[:k]...), StopReasonStop},
		{"stop beyond the limit", Options{MaxNewTokens: 3, StopTokens: []int{96}, StopStrings: []string{"never"}},
			toks[:3], prompt(toks[:3]...), StopReasonLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := g.Generate(ctx, []string{p}, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if r.StopReason != tc.wantReason {
				t.Errorf("got stop reason %q, want %q", r.StopReason, tc.wantReason)
			}
			if r.CompletionTokens != len(r.Tokens) {
				t.Errorf("got %d completion tokens for %d tokens", r.CompletionTokens, len(r.Tokens))
			}
			if !slices.Equal(r.Tokens, toks[:len(r.Tokens)]) {
				t.Errorf("got tokens %v, want a prefix of %v", r.Tokens, toks)
			}
			if tc.wantTokens != nil && !slices.Equal(r.Tokens, tc.wantTokens) {
				t.Errorf("got tokens %v, want %v", r.Tokens, tc.wantTokens)
			}
			full := prompt(r.Tokens...)
			if tc.wantText == "" {
				// The text is the completion cut right before the first stop string.
				stop := tc.o.StopStrings[0]
				cut := strings.Index(full, stop)
				if cut < 0 || r.Text != full[:cut] {
					t.Errorf("got text %q, want %q cut before %q", r.Text, full, stop)
				}
				if strings.Contains(prompt(r.Tokens[:len(r.Tokens)-1]...), stop) {
					t.Errorf("tokens %v run past the first %q", r.Tokens, stop)
				}
			} else if r.Text != tc.wantText {
				t.Errorf("got text %q, want %q", r.Text, tc.wantText)
			}
		})
	}
}

func TestStopsPerRow(t *testing.T) {
	g, _, _ := newGenerator(t)
	ref, err := g.Generate(context.Background(), testPrompts, Options{MaxNewTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Row 0 stops at its own third token; the others run to the limit unless they emit it.
	stop := ref[0].Tokens[2]
	res, err := g.Generate(context.Background(), testPrompts, Options{MaxNewTokens: 10, StopTokens: []int{stop}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		k := slices.Index(ref[i].Tokens, stop)
		want, reason := ref[i].Tokens, StopReasonLength
		if k >= 0 {
			want, reason = ref[i].Tokens[:k+1], StopReasonStop
		}
		if !slices.Equal(r.Tokens, want) || r.StopReason != reason {
			t.Errorf("row %d: got %v (%s), want %v (%s)", i, r.Tokens, r.StopReason, want, reason)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	g, _, _ := newGenerator(t)
	for _, tc := range []struct {
		name    string
		prompts []string
		o       Options
		want    string
	}{
		{"max new tokens", []string{prompt(1)}, Options{}, "max_new_tokens (0)"},
		{"temperature", []string{prompt(1)}, Options{MaxNewTokens: 1, Temperature: -1}, "temperature (-1)"},
		{"top p", []string{prompt(1)}, Options{MaxNewTokens: 1, TopP: 2}, "top_p (2)"},
		{"presence penalty", []string{prompt(1)}, Options{MaxNewTokens: 1, PresencePenalty: 2.5}, "presence_penalty (2.5) must be in [-2, 2]"},
		{"frequency penalty", []string{prompt(1)}, Options{MaxNewTokens: 1, FrequencyPenalty: math.NaN()}, "frequency_penalty (NaN)"},
		{"empty prompt", []string{prompt(1), ""}, Options{MaxNewTokens: 1}, "prompt 1 encodes to no tokens"},
		{"token id", []string{prompt(97)}, Options{MaxNewTokens: 1}, "token id 97 outside the vocabulary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Generate(context.Background(), tc.prompts, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	g, _, _ := newGenerator(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Generate(ctx, testPrompts, Options{MaxNewTokens: 4}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("got error %v, want context canceled", err)
	}
}

// TestMaxPositionEmbeddings: a row that reaches the model's context length stops with "length".
func TestMaxPositionEmbeddings(t *testing.T) {
	cfg := tinyConfig()
	cfg.MaxPositionEmbeddings = 14
	g, _, _ := newGeneratorFor(t, cfg, dtypes.Float32)
	res, err := g.Generate(context.Background(), testPrompts, Options{MaxNewTokens: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{8, 8, 3} {
		if got := res[i].CompletionTokens; got != want || res[i].StopReason != StopReasonLength {
			t.Errorf("row %d: got %d tokens (%s), want %d (length)", i, got, res[i].StopReason, want)
		}
	}
}

func TestBucket(t *testing.T) {
	for _, tc := range []struct{ n, step, want int }{
		{1, 8, 8}, {8, 8, 8}, {9, 8, 16}, {64, 8, 64}, {65, 8, 80}, {200, 32, 224}, {257, 32, 320}, {1000, 32, 1024}, {1025, 32, 1280},
	} {
		if got := bucket(tc.n, tc.step); got != tc.want {
			t.Errorf("bucket(%d, %d) = %d, want %d", tc.n, tc.step, got, tc.want)
		}
	}
}

// TestConcurrentCalls: calls from several goroutines are serialized and give the sequential
// results.
func TestConcurrentCalls(t *testing.T) {
	g, _, _ := newGenerator(t)
	o := Options{MaxNewTokens: 8, Temperature: 0.7, Seed: 1}
	want, err := g.Generate(context.Background(), testPrompts, o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][]Result, 4)
	errs := make([]error, len(got))
	for i := range got {
		wg.Go(func() { got[i], errs[i] = g.Generate(context.Background(), testPrompts, o) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for j := range want {
			if !slices.Equal(got[i][j].Tokens, want[j].Tokens) {
				t.Errorf("call %d row %d: got %v, want %v", i, j, got[i][j].Tokens, want[j].Tokens)
			}
		}
	}
}
