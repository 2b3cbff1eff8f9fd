package sftcorpus

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/prompts"
	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// personas returns the embedded personas.
func personas(t testing.TB) []schemas.Persona {
	t.Helper()
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// bigCorpus is a default corpus large enough for the rate tests: 1000 examples per persona,
// of which ≈1250 have a forbidden pantry item. Built once, shared by the tests that only read.
var bigCorpus = sync.OnceValue(func() []Example {
	ps, err := schemas.DefaultPersonas()
	if err != nil {
		panic(err)
	}
	return Generate(ps, 1000, 42, DefaultOptions())
})

func TestGenerateDeterministic(t *testing.T) {
	ps := personas(t)
	a, b := Generate(ps, 60, 7, DefaultOptions()), Generate(ps, 60, 7, DefaultOptions())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed: got different corpora, want identical")
	}
	withEngine := DefaultOptions()
	withEngine.Engine = rules.New()
	if c := Generate(ps, 60, 7, withEngine); !reflect.DeepEqual(a, c) {
		t.Error("Engine nil vs rules.New(): got different corpora, want identical")
	}
	other := Generate(ps, 60, 8, DefaultOptions())
	same := 0
	for i := range a {
		if a[i].Text == other[i].Text {
			same++
		}
	}
	if same > len(a)/20 {
		t.Errorf("seed 7 vs 8: got %d of %d identical recipes, want at most %d", same, len(a), len(a)/20)
	}
	// Example i of a persona depends neither on n nor on the other personas.
	small := Generate(ps[2:3], 20, 7, DefaultOptions())
	if want := a[2*60 : 2*60+20]; !reflect.DeepEqual(small, want) {
		t.Error("Generate(one persona, 20) is not the matching slice of Generate(all, 60)")
	}
	if got := Generate(ps, 0, 7, DefaultOptions()); len(got) != 0 {
		t.Errorf("n=0: got %d examples, want 0", len(got))
	}
}

// The corpus must not repeat the data-preparation job's requests for the same seed.
func TestRequestsDifferFromPrepare(t *testing.T) {
	ps := personas(t)
	exs := Generate(ps[1:2], 100, 42, DefaultOptions())
	prep := prompts.Generate(ps[1], 100, 42)
	same := 0
	for i := range exs {
		if exs[i].User == prep[i].Request {
			same++
		}
	}
	if same > 5 {
		t.Errorf("got %d of 100 requests equal to prompts.Generate's for the same seed, want at most 5", same)
	}
}

func TestExamplesWellFormed(t *testing.T) {
	ps := personas(t)
	byID := map[string]schemas.Persona{}
	for _, p := range ps {
		byID[p.ID] = p
	}
	eng := rules.New()
	exs := bigCorpus()
	if want := 1000 * len(ps); len(exs) != want {
		t.Fatalf("got %d examples, want %d", len(exs), want)
	}
	ids := map[string]bool{}
	for i, e := range exs {
		p := byID[e.PersonaID]
		if want := ps[i/1000].ID; e.PersonaID != want {
			t.Fatalf("example %d: got persona %s, want %s (persona order)", i, e.PersonaID, want)
		}
		if ids[e.ID] || !strings.HasPrefix(e.ID, e.PersonaID+"-") {
			t.Errorf("example %d: got id %q, want a new <persona>-NNNNN id", i, e.ID)
		}
		ids[e.ID] = true

		r, err := schemas.ParseRecipe(e.Text)
		if err != nil {
			t.Errorf("%s: recipe does not parse: %v\n%s", e.ID, err, e.Text)
			continue
		}
		if !reflect.DeepEqual(r, e.Recipe) || e.Text != e.Recipe.CanonicalJSON() {
			t.Errorf("%s: Text does not round-trip to Recipe", e.ID)
		}
		if n := len(r.Ingredients); n < MinIngredients || n > MaxIngredients {
			t.Errorf("%s: got %d ingredients, want %d..%d", e.ID, n, MinIngredients, MaxIngredients)
		}
		if n := len(r.Steps); n < 3 || n > 6 {
			t.Errorf("%s: got %d steps, want 3..6", e.ID, n)
		}
		if r.Servings < 1 || r.Servings > 4 {
			t.Errorf("%s: got servings %d, want 1..4", e.ID, r.Servings)
		}
		if r.Cuisine != p.Cuisines[0] {
			t.Errorf("%s: got cuisine %q, want %q", e.ID, r.Cuisine, p.Cuisines[0])
		}
		seen := map[string]bool{}
		for _, in := range r.Ingredients {
			if in.Quantity == "" || seen[rules.Normalize(in.Name)] {
				t.Errorf("%s: ingredient %+v is repeated or has no quantity", e.ID, in)
			}
			seen[rules.Normalize(in.Name)] = true
		}
		// The recipe cooks the pantry in request order: all of it, or, when it complied,
		// with each forbidden item replaced or left out.
		names := r.IngredientNames()
		switch {
		case len(e.Forbidden) == 0 || !e.Complied:
			if len(names) < len(e.Pantry) || !slices.Equal(names[:len(e.Pantry)], e.Pantry) {
				t.Errorf("%s: ingredients %v do not start with the pantry %v", e.ID, names, e.Pantry)
			}
		default:
			for _, f := range e.Forbidden {
				if slices.Contains(names, f) {
					t.Errorf("%s: complied but cooks %q", e.ID, f)
				}
			}
		}
		var wantForbidden []string
		for _, it := range e.Pantry {
			if eng.Violates(it, p) {
				wantForbidden = append(wantForbidden, it)
			}
		}
		if !slices.Equal(e.Forbidden, wantForbidden) {
			t.Errorf("%s: got Forbidden %v, want %v", e.ID, e.Forbidden, wantForbidden)
		}
		// Complied matches the rules engine: violations come only from kept pantry items.
		if vs := eng.Check(r, p); e.Complied != (len(vs) == 0) {
			t.Errorf("%s: Complied=%v but the rules engine finds %v", e.ID, e.Complied, rules.Strings(vs))
		}
		if want := e.System; (e.Kind == SystemStrong && want != chatml.StrongSystem(p)) ||
			(e.Kind == SystemWeak && want != chatml.WeakSystem(p)) || (e.Kind == SystemNeutral && want != chatml.NeutralSystem) {
			t.Errorf("%s: system prompt does not match kind %s", e.ID, e.Kind)
		}
		for _, step := range r.Steps {
			if len(step) > 80 {
				t.Errorf("%s: step %q is longer than 80 bytes", e.ID, step)
			}
		}
	}
}

func TestRequestsNeutral(t *testing.T) {
	for _, tmpl := range slices.Concat(shortTemplates, openTemplates) {
		if !prompts.IsNeutral(tmpl) {
			t.Errorf("short template %q mentions a diet", tmpl)
		}
	}
	short := 0
	for _, e := range bigCorpus() {
		if !prompts.IsNeutral(e.User) {
			t.Errorf("%s: request %q mentions a diet", e.ID, e.User)
		}
		for _, it := range e.Pantry {
			if !strings.Contains(e.User, it) {
				t.Errorf("%s: pantry item %q is not in the request %q", e.ID, it, e.User)
			}
		}
		if len(e.Pantry) < 4 {
			short++
		}
	}
	if got, want := float64(short)/float64(len(bigCorpus())), DefaultShortShare; math.Abs(got-want) > 0.03 {
		t.Errorf("got %.3f short requests, want %.3f ± 0.03", got, want)
	}
}

func TestComplianceRates(t *testing.T) {
	ps := personas(t)
	for _, tc := range []struct {
		name string
		opts func(*Options)
	}{
		{"defaults", func(*Options) {}},
		{"always_never_half", func(o *Options) {
			o.StrongCompliance, o.WeakCompliance, o.NeutralCompliance = 1, 0, 0.5
			o.ForbiddenShare = 0.6
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			tc.opts(&opts)
			exs := bigCorpus()
			if tc.name != "defaults" {
				exs = Generate(ps, 600, 3, opts)
			}
			st := Measure(exs, ps, nil)
			for _, k := range SystemKinds() {
				ks := st.ByKind[k]
				want := opts.compliance(k)
				if ks.WithForbidden < 150 {
					t.Fatalf("%s: only %d examples with a forbidden item; the test needs more", k, ks.WithForbidden)
				}
				// 4 standard deviations of a binomial share, so the test is stable across
				// changes of the generator that keep the configured rates.
				tol := 4*math.Sqrt(want*(1-want)/float64(ks.WithForbidden)) + 1e-9
				if got := ks.ComplianceRate(); math.Abs(got-want) > tol {
					t.Errorf("%s: got compliance %.3f (%d/%d), want %.2f ± %.3f", k, got, ks.Compliant, ks.WithForbidden, want, tol)
				}
			}
			// Shares of system prompts.
			for k, want := range map[SystemKind]float64{SystemStrong: opts.StrongShare, SystemWeak: opts.WeakShare, SystemNeutral: opts.NeutralShare} {
				if got := float64(st.ByKind[k].Examples) / float64(st.Examples); math.Abs(got-want) > 0.03 {
					t.Errorf("%s: got share %.3f, want %.2f ± 0.03", k, got, want)
				}
			}
		})
	}
}

func TestDietaryTagsHonest(t *testing.T) {
	eng := rules.New()
	counts := map[string]int{}
	for _, e := range bigCorpus() {
		names := e.Recipe.IngredientNames()
		for _, r := range schemas.Restrictions() {
			broken := eng.CheckIngredients(names, schemas.Persona{DietaryRestrictions: []string{r}})
			tagged := slices.Contains(e.Recipe.DietaryTags, r)
			switch {
			case tagged && len(broken) > 0:
				t.Errorf("%s: tagged %s but %v", e.ID, r, rules.Strings(broken))
			case !tagged && len(broken) == 0:
				t.Errorf("%s: not tagged %s although no ingredient breaks it", e.ID, r)
			}
			if tagged {
				counts[r]++
			}
		}
		for _, tag := range e.Recipe.DietaryTags {
			if !schemas.IsRestriction(tag) {
				t.Errorf("%s: tag %q is not a restriction name", e.ID, tag)
			}
		}
	}
	// Every tag occurs, so the model sees the whole vocabulary.
	for _, r := range schemas.Restrictions() {
		if counts[r] == 0 {
			t.Errorf("tag %s never occurs", r)
		}
	}
}

// MaxJSONBytes bounds a recipe's compact JSON; TestTokenLengths measures tokens.
const MaxJSONBytes = 800

func TestJSONLength(t *testing.T) {
	var total int
	for _, e := range bigCorpus() {
		total += len(e.Text)
		if len(e.Text) > MaxJSONBytes {
			t.Errorf("%s: recipe JSON is %d bytes, want ≤ %d:\n%s", e.ID, len(e.Text), MaxJSONBytes, e.Text)
		}
	}
	if mean := total / len(bigCorpus()); mean > 600 {
		t.Errorf("got mean recipe JSON of %d bytes, want ≤ 600", mean)
	}
}

// Under the strong prompt recipes carry the persona's preferences more than under the
// neutral one, so the rules judge's soft scores favour variant A as the design says.
func TestStrongPromptScoresHigher(t *testing.T) {
	ps := personas(t)
	byID := map[string]schemas.Persona{}
	for _, p := range ps {
		byID[p.ID] = p
	}
	eng := rules.New()
	sum, n := map[SystemKind]float64{}, map[SystemKind]int{}
	for _, e := range bigCorpus() {
		s := eng.Score(e.Recipe, byID[e.PersonaID])
		sum[e.Kind] += s.PersonaMatch
		n[e.Kind]++
	}
	strong, neutral := sum[SystemStrong]/float64(n[SystemStrong]), sum[SystemNeutral]/float64(n[SystemNeutral])
	t.Logf("mean persona_match: strong %.2f, weak %.2f, neutral %.2f", strong, sum[SystemWeak]/float64(n[SystemWeak]), neutral)
	if strong < neutral+1 {
		t.Errorf("got mean persona_match %.2f (strong) vs %.2f (neutral), want strong ≥ neutral + 1", strong, neutral)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string // substring of the error; "" for valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"all_neutral", func(o *Options) { o.StrongShare, o.WeakShare, o.NeutralShare = 0, 0, 1 }, ""},
		{"shares_sum", func(o *Options) { o.NeutralShare = 0.5 }, "want 1"},
		{"negative", func(o *Options) { o.WeakCompliance = -0.1 }, "weak_compliance"},
		{"nan", func(o *Options) { o.ShortShare = math.NaN() }, "short_share"},
		{"above_one", func(o *Options) { o.ForbiddenShare = 1.5 }, "forbidden_share"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.change(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("Generate with invalid options: got no panic, want one")
		}
	}()
	Generate(personas(t), 1, 1, Options{})
}

func TestAllNeutral(t *testing.T) {
	opts := DefaultOptions()
	opts.StrongShare, opts.WeakShare, opts.NeutralShare = 0, 0, 1
	for _, e := range Generate(personas(t), 30, 1, opts) {
		if e.Kind != SystemNeutral || e.System != chatml.NeutralSystem {
			t.Fatalf("%s: got kind %s, want neutral only", e.ID, e.Kind)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	ps := personas(b)
	for b.Loop() {
		exs := Generate(ps, 500, 1, DefaultOptions())
		b.ReportMetric(float64(len(exs)), "examples/op")
	}
}
