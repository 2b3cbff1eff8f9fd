package tokenizer

import (
	"slices"
	"testing"
)

// recipeCorpus is a small corpus in the shape of our data: recipe prose, JSON recipes and ChatML
// turns. The HF fixture's trained tokenizer is learned from it, so changing it means
// regenerating testdata (see testdata/gen_fixture.cjs).
var recipeCorpus = []string{
	"Preheat the oven to 200°C and line a baking tray with parchment paper.",
	"Dice the onions finely and fry them in olive oil until golden, about 8 minutes.",
	"Add the garlic, cumin and smoked paprika; stir for 1 minute until fragrant.",
	"Pour in 400 ml of coconut milk and 250 g of red lentils, then simmer for 20 minutes.",
	"Season with salt, pepper and a squeeze of lime juice before serving.",
	"Whisk 3 eggs with 120 g of sugar until pale, then fold in 150 g of flour.",
	"Don't overmix the batter: it's ready when no dry flour remains.",
	"We'll bake the cake for 35 minutes, or until a skewer comes out clean.",
	"Let the bread cool on a rack; you'll get a crisper crust.",
	"For a vegan version, replace the butter with coconut oil and the eggs with flax eggs.",
	"This gluten-free pasta uses rice flour, tapioca starch and xanthan gum.",
	"Toss the roasted chickpeas with tahini, lemon juice and chopped parsley.",
	"Serve the curry over basmati rice and garnish with fresh coriander.",
	"Marinate the tofu in soy sauce, ginger and maple syrup for at least 1 hour.",
	"Blanch the green beans for 2 minutes, then plunge them into ice water.",
	"Crème fraîche makes the soup richer; a purée of céleri-rave works too.",
	"Knead the dough for 10 minutes until smooth and elastic.",
	"Cover and let it rise in a warm place until doubled in size, 1–2 hours.",
	"Slice the tomatoes 🍅 and avocados 🥑 and arrange them on the toast.",
	"Low-sodium broth keeps the dish suitable for a heart-healthy diet.",
	"The keto version swaps the potatoes for cauliflower and adds more cheese.",
	"Nut-free: use sunflower seeds instead of almonds in the pesto.",
	"Stir-fry the vegetables over high heat so they stay crisp.",
	"Bring 1.5 litres of water to the boil and cook the noodles for 4 minutes.",
	"Mix 2 tablespoons of miso with 1 teaspoon of sesame oil and brush the aubergine.",
	"Grill the halloumi for 3 minutes per side until charred.",
	"Fold the whipped cream into the chocolate mixture in three additions.",
	"Chill the tart for 4 hours, or overnight, before slicing.",
	"Sprinkle with toasted pumpkin seeds and a pinch of chilli flakes.",
	"Reduce the sauce until it coats the back of a spoon.",
	"I'm sure they're going to love this quick weeknight dinner.",
	"Ramen (ラーメン) and mapo tofu (麻婆豆腐) are favourites in our kitchen.",
	"{\"title\": \"Lentil Curry\", \"cuisine\": \"Indian\", \"servings\": 4, \"ingredients\": [{\"name\": \"red lentils\", \"quantity\": \"250 g\"}, {\"name\": \"coconut milk\", \"quantity\": \"400 ml\"}], \"steps\": [\"Rinse the lentils.\", \"Simmer for 20 minutes.\"], \"dietary_tags\": [\"vegan\", \"gluten-free\"]}",
	"{\"title\": \"Banana Bread\", \"cuisine\": \"American\", \"servings\": 8, \"ingredients\": [{\"name\": \"ripe bananas\", \"quantity\": \"3\"}, {\"name\": \"flour\", \"quantity\": \"200 g\"}], \"steps\": [\"Mash the bananas.\", \"Bake for 55 minutes.\"], \"dietary_tags\": [\"vegetarian\"]}",
	"<|im_start|>system\nYou are a helpful chef for a vegan home cook.<|im_end|>\n<|im_start|>user\nGive me a quick dinner recipe with lentils.<|im_end|>\n<|im_start|>assistant\n",
	"<|im_start|>system\nYou are a nutrition-aware chef for a low-sodium diet.<|im_end|>\n<|im_start|>user\nWhat can I cook with salmon and spinach?<|im_end|>\n<|im_start|>assistant\nPan-fry the salmon and wilt the spinach with garlic.<|im_end|>\n",
	"Ingredients:\n- 2 cups flour\n- 1 cup milk\n- 2 eggs\n\nSteps:\n1. Mix.\n2. Bake at 180°C for 25 minutes.\n",
	"\tIndented line with a tab, and    several   spaces.",
}

// specialsForTest are the specials our trained tokenizers carry: Llama 3's delimiters and ChatML.
var specialsForTest = []string{"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>"}

// trainedForTest trains the tokenizer most tests use.
func trainedForTest(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := Train(recipeCorpus, 500, specialsForTest)
	if err != nil {
		t.Fatalf("Train: %v", err)
	}
	return tok
}

func assertIDs(t *testing.T, name string, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got ids %v, want %v", name, got, want)
	}
}
