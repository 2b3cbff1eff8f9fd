package sftcorpus_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/sftcorpus"
)

// A corpus for one persona, written where `trainer train --mode sft --persona sft_corpus`
// reads it. The two requests shown both hold something a vegan does not eat: one answer
// swaps it out, the other cooks it anyway.
func Example() {
	p, err := schemas.DefaultPersona("persona_e_mexican_vegan")
	if err != nil {
		log.Fatal(err)
	}
	exs := sftcorpus.Generate([]schemas.Persona{p}, 8, 23, sftcorpus.DefaultOptions())
	shown := 0
	for _, e := range exs {
		if len(e.Forbidden) == 0 || shown == 2 {
			continue
		}
		shown++
		fmt.Printf("%s [%s system] %s\n  forbidden %v, complied %v\n  %s\n", e.ID, e.Kind, e.User, e.Forbidden, e.Complied, e.Text)
	}

	root, err := os.MkdirTemp("", "sftcorpus")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	infos, err := sftcorpus.WriteShards(context.Background(), root, exs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(infos[0].Rows, "rows for persona", infos[0].PersonaID)
	// Output:
	// persona_e_mexican_vegan-00001 [strong system] What Mexican dish can I make with eggs, cotija cheese, sweet potatoes, and black beans?
	//   forbidden [eggs cotija cheese], complied true
	//   {"title":"Firm Tofu Stew","cuisine":"Mexican","servings":4,"ingredients":[{"name":"firm tofu","quantity":"400 g"},{"name":"pepitas","quantity":"1/4 cup"},{"name":"sweet potatoes","quantity":"2"},{"name":"black beans","quantity":"2 cups"},{"name":"chipotle peppers","quantity":"2"}],"steps":["Heat a pan over medium heat.","Cook the firm tofu for 10 minutes.","Add the pepitas and sweet potatoes.","Serve hot."],"dietary_tags":["vegetarian","vegan","gluten_free","low_sodium"]}
	// persona_e_mexican_vegan-00005 [weak system] Suggest a Mexican main course that uses chicken breast, white onion, shrimp, and chipotle peppers.
	//   forbidden [chicken breast shrimp], complied false
	//   {"title":"Chicken Breast Tinga","cuisine":"Mexican","servings":4,"ingredients":[{"name":"chicken breast","quantity":"400 g"},{"name":"white onion","quantity":"2"},{"name":"shrimp","quantity":"400 g"},{"name":"chipotle peppers","quantity":"2"},{"name":"fresh cilantro","quantity":"2 handfuls"}],"steps":["Heat a pan over medium heat.","Cook the chicken breast for 10 minutes.","Add the white onion and shrimp.","Top with the fresh cilantro and serve."],"dietary_tags":["gluten_free","low_sodium","keto"]}
	// 8 rows for persona sft_corpus
}
