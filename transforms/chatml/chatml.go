// Package chatml builds the prompts of recipe-DPO: the system prompts of the two generation
// variants (A: strong persona constraints, B: weak), and the ChatML text the trainer sees.
//
// The trainer and generation share these strings through this package, so the format a
// model is trained on is the format it is prompted with at evaluation time.
package chatml

import (
	"fmt"
	"strings"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

// RecipeFormat is the answer format every recipe prompt asks for: one Recipe JSON object.
const RecipeFormat = `Reply with only one JSON object, no prose and no Markdown, with the keys ` +
	`"title" (string), "cuisine" (string), "servings" (integer), ` +
	`"ingredients" (list of {"name": string, "quantity": string}), "steps" (list of strings) ` +
	`and "dietary_tags" (list of strings).`

// NeutralSystem is the persona-neutral system prompt: the one stored in DPO examples by
// default and used at evaluation, so that the persona's preferences must come from its
// adapter rather than from the prompt.
const NeutralSystem = "You are a helpful cooking assistant that writes recipes. " + RecipeFormat

// Prompt styles of the formatted DPO prompt (--prompt_style).
const (
	// StyleNeutral stores NeutralSystem and the persona-neutral request (the default).
	StyleNeutral = "neutral"
	// StylePersona stores the variant-A system prompt with the persona's constraints.
	StylePersona = "persona"
)

// StrongSystem is variant A's system prompt: the persona's cuisine, hard constraints and
// preferences spelled out, so the SFT model is likely to comply.
func StrongSystem(p schemas.Persona) string {
	var b strings.Builder
	fmt.Fprintf(&b, "You are a personal chef cooking for %s. %s\n", p.Name, strings.TrimSpace(p.Description))
	fmt.Fprintf(&b, "Cuisine: %s.\n", strings.Join(p.Cuisines, ", "))
	if r := restrictions(p); r != "" {
		fmt.Fprintf(&b, "Dietary restrictions (must follow strictly): %s.\n", r)
	}
	if len(p.ForbiddenIngredients) > 0 {
		fmt.Fprintf(&b, "Never use these ingredients, even if the user has them: %s.\n", strings.Join(p.ForbiddenIngredients, ", "))
	}
	if len(p.PreferredIngredients) > 0 {
		fmt.Fprintf(&b, "Preferred ingredients: %s.\n", strings.Join(p.PreferredIngredients, ", "))
	}
	if len(p.FlavorNotes) > 0 {
		fmt.Fprintf(&b, "Flavour profile: %s.\n", strings.Join(p.FlavorNotes, ", "))
	}
	b.WriteString(RecipeFormat)
	return b.String()
}

// WeakSystem is variant B's system prompt: only a hint of the persona's cuisine and none of
// its constraints, so the SFT model's unconstrained habits show.
func WeakSystem(p schemas.Persona) string {
	cuisine := "home"
	if len(p.Cuisines) > 0 {
		cuisine = p.Cuisines[0]
	}
	return fmt.Sprintf("You are a helpful cooking assistant that writes recipes. The user likes %s food. %s", cuisine, RecipeFormat)
}

func restrictions(p schemas.Persona) string {
	var rs []string
	for _, r := range p.DietaryRestrictions {
		if r != schemas.RestrictionNone {
			rs = append(rs, strings.ReplaceAll(r, "_", "-"))
		}
	}
	return strings.Join(rs, ", ")
}

// Prompt renders a system and a user message as ChatML, ending with the open assistant
// turn the model completes:
//
//	<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
func Prompt(system, user string) string {
	var b strings.Builder
	if system != "" {
		b.WriteString(schemas.ChatMLStart + "system\n" + system + schemas.ChatMLEnd + "\n")
	}
	b.WriteString(schemas.ChatMLStart + "user\n" + user + schemas.ChatMLEnd + "\n")
	b.WriteString(schemas.ChatMLAssistant)
	return b.String()
}

// Completion renders a model answer as a training completion: trimmed, and closed with
// <|im_end|>, the stop string generation uses, so the model learns to end its turn.
func Completion(text string) string {
	return strings.TrimSpace(text) + schemas.ChatMLEnd
}

// System returns the system prompt that a DPO example of the given style stores.
func System(style string, p schemas.Persona) (string, error) {
	switch style {
	case StyleNeutral, "":
		return NeutralSystem, nil
	case StylePersona:
		return StrongSystem(p), nil
	}
	return "", fmt.Errorf("unknown prompt style %q; use %q or %q", style, StyleNeutral, StylePersona)
}

// Format renders a labelled pair as a DPO example: the ChatML prompt of the given style
// around the persona-neutral request, and both recipes as completions.
func Format(p schemas.PreferencePair, persona schemas.Persona, style string) (schemas.DPOExample, error) {
	system, err := System(style, persona)
	if err != nil {
		return schemas.DPOExample{}, err
	}
	ex := schemas.DPOExample{
		ID: p.PairID, PersonaID: p.PersonaID,
		Prompt: Prompt(system, p.Prompt), Chosen: Completion(p.Chosen), Rejected: Completion(p.Rejected),
	}
	if err := ex.Validate(); err != nil {
		return schemas.DPOExample{}, err
	}
	return ex, nil
}
