package sftcorpus

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/chatml"
	"github.com/pantrypilot/recipe-dpo/transforms/shards"
)

// CorpusID is the pseudo-persona the corpus is written under: the trainer trains on one
// persona directory at a time, and the SFT model is one model for every persona. Give the
// corpus its own run root (e.g. out/demo/sft_corpus), not the data-preparation job's, or
// `trainer train-all` there would take it for a persona.
const CorpusID = "sft_corpus"

// ShardStage is the Stage of the shard descriptions WriteShards returns (for a manifest).
const ShardStage = "sft_corpus"

// ToDPOExamples renders examples as the rows `trainer train --mode sft` reads:
//
//   - ID is the example id ("<persona id>-NNNNN"), PersonaID is CorpusID;
//   - Prompt is chatml.Prompt(system, user), Chosen is chatml.Completion(recipe JSON): the
//     only completion sft mode trains on (trainer/train replaces Rejected by Chosen right
//     after tokenizing);
//   - Rejected is never trained on in sft mode and exists because schemas.DPOExample
//     requires a distinct one: it is the recipe of the next example of the same persona
//     (cyclically), a valid answer to another request. Should the corpus ever be run in dpo
//     mode, it would teach "answer the request you were given" and nothing about personas.
//
// Rows come back sorted by ID, the order shards are written in, and each passes Validate.
func ToDPOExamples(exs []Example) []schemas.DPOExample {
	byPersona := map[string][]int{}
	for i, e := range exs {
		byPersona[e.PersonaID] = append(byPersona[e.PersonaID], i)
	}
	rows := make([]schemas.DPOExample, len(exs))
	for _, idx := range byPersona {
		for j, i := range idx {
			e := exs[i]
			rejected := ""
			for k := 1; k < len(idx) && rejected == ""; k++ {
				if other := exs[idx[(j+k)%len(idx)]].Text; other != e.Text {
					rejected = other
				}
			}
			if rejected == "" { // a persona with one example, or only identical recipes
				r := e.Recipe
				r.Servings++
				rejected = r.CanonicalJSON()
			}
			rows[i] = schemas.DPOExample{
				ID: e.ID, PersonaID: CorpusID,
				Prompt: e.Prompt(), Chosen: e.Completion(), Rejected: chatml.Completion(rejected),
			}
		}
	}
	slices.SortFunc(rows, func(a, b schemas.DPOExample) int { return strings.Compare(a.ID, b.ID) })
	return rows
}

// WriteShards writes the corpus as DPOExample shards under
// shards.PersonaDir(root, shards.DirDPOFormatted, CorpusID), idempotently (shards.Write),
// and returns their descriptions. root is a local directory or gs:// URL.
func WriteShards(ctx context.Context, root string, exs []Example) ([]shards.Info, error) {
	rows := ToDPOExamples(exs)
	for _, r := range rows {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("sft corpus: %w", err)
		}
	}
	dir := shards.PersonaDir(root, shards.DirDPOFormatted, CorpusID)
	infos, err := shards.Write(ctx, dir, rows, shards.DefaultMaxRows,
		shards.Info{Stage: ShardStage, Kind: shards.KindOut, PersonaID: CorpusID})
	if err != nil {
		return nil, fmt.Errorf("sft corpus: write %s: %w", dir, err)
	}
	return infos, nil
}

// Texts returns the corpus as `trainer tokenizer train` should see it: one document per
// example, the ChatML prompt followed by the completion, markers included (the tokenizer
// cuts its special tokens out before learning merges).
func Texts(exs []Example) []string {
	out := make([]string, len(exs))
	for i, e := range exs {
		out[i] = e.Prompt() + e.Completion()
	}
	return out
}
