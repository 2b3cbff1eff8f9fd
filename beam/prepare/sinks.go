package prepare

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/blob"
	"github.com/pantrypilot/recipe-dpo/transforms/llm"
)

// tallyFn counts every element under one key, N times.
type tallyFn[T any] struct {
	Key string
	N   int64
}

func (f *tallyFn[T]) ProcessElement(_ T, emit func(string, int64)) { emit(f.Key, f.N) }

func tallyDead(d schemas.DeadLetter, emit func(string, int64)) {
	emit(d.Stage+"/dead/"+d.Reason, 1)
}

func tallyVariant(v schemas.Variant, emit func(string, int64)) {
	emit("generate/tokens/prompt", v.PromptTokens)
	emit("generate/tokens/completion", v.CompletionTokens)
	if !v.ParsedOK {
		emit("generate/unparsed", 1)
	}
}

func tallyPair(p schemas.PreferencePair, emit func(string, int64)) {
	emit("label/agreement/"+p.Agreement, 1)
	if p.Vetoed {
		emit("label/vetoed", 1)
	}
}

// manifestFn writes manifest.json once every shard is written (its side inputs are the
// shard descriptions and the tallies).
type manifestFn struct {
	Root           string
	CodeVersion    string
	Settings       string // JSON
	Inputs         map[string]string
	GeneratorModel string
	JudgeModel     string
}

func (f *manifestFn) ProcessElement(ctx context.Context, _ []byte, infos func(*schemas.ShardInfo) bool, tallies func(*string, *int64) bool) error {
	var m schemas.Manifest
	m.Job = "prepare"
	m.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	m.CodeVersion = f.CodeVersion
	m.Inputs = f.Inputs
	if err := json.Unmarshal([]byte(f.Settings), &m.Config); err != nil {
		return fmt.Errorf("manifest settings: %w", err)
	}
	var si schemas.ShardInfo
	for infos(&si) {
		m.Shards = append(m.Shards, si)
	}
	sort.Slice(m.Shards, func(i, j int) bool { return m.Shards[i].Path < m.Shards[j].Path })
	t := map[string]int64{}
	var k string
	var n int64
	for tallies(&k, &n) {
		t[k] += n
	}
	m.Stages, m.Balanced = Summarize(m.Shards, t)
	m.Label = labelStats(m.Stages, t)
	m.Usage = map[string]schemas.Usage{
		"generator": usage(f.GeneratorModel, t["generate/tokens/prompt"], t["generate/tokens/completion"]),
		"judge":     usage(f.JudgeModel, t["label/tokens/prompt"], t["label/tokens/completion"]),
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return blob.WriteFile(ctx, blob.Join(f.Root, "manifest.json"), append(b, '\n'))
}

// Stages in pipeline order.
var Stages = []string{schemas.StagePrompts, schemas.StageGenerate, schemas.StageLabel, schemas.StageFormat}

// Summarize computes each stage's in/out/dead from the written shards and the input tallies,
// and whether every stage balances (in == out + dead).
func Summarize(infos []schemas.ShardInfo, tallies map[string]int64) ([]schemas.StageSummary, bool) {
	all := true
	var out []schemas.StageSummary
	for _, st := range Stages {
		s := schemas.StageSummary{Stage: st, In: tallies[st+"/in"]}
		for _, in := range infos {
			if in.Stage != st {
				continue
			}
			if in.Kind == schemas.ShardDead {
				s.Dead += in.Rows
			} else {
				s.Out += in.Rows
			}
		}
		prefix := st + "/dead/"
		for k, n := range tallies {
			if strings.HasPrefix(k, prefix) {
				if s.DeadReasons == nil {
					s.DeadReasons = map[string]int64{}
				}
				s.DeadReasons[strings.TrimPrefix(k, prefix)] = n
			}
		}
		s.Balanced = s.In == s.Out+s.Dead
		all = all && s.Balanced
		out = append(out, s)
	}
	return out, all
}

func labelStats(stages []schemas.StageSummary, t map[string]int64) schemas.LabelStats {
	ls := schemas.LabelStats{Agreement: map[string]int64{}, Vetoed: t["label/vetoed"]}
	for _, s := range stages {
		if s.Stage == schemas.StageLabel && s.In > 0 {
			ls.PassRate = float64(s.Out) / float64(s.In)
		}
	}
	for _, a := range []string{schemas.AgreementAgree, schemas.AgreementDisagree, schemas.AgreementNA} {
		ls.Agreement[a] = t["label/agreement/"+a]
	}
	if d := ls.Agreement[schemas.AgreementAgree] + ls.Agreement[schemas.AgreementDisagree]; d > 0 {
		ls.AgreementRate = float64(ls.Agreement[schemas.AgreementAgree]) / float64(d)
	}
	return ls
}

func usage(model string, in, out int64) schemas.Usage {
	cost, known := llm.EstimateCost(model, in, out)
	return schemas.Usage{Model: model, PromptTokens: in, CompletionTokens: out, EstimatedCostUSD: cost, PriceKnown: known}
}
