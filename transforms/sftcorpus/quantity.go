package sftcorpus

import (
	"strings"

	"github.com/pantrypilot/recipe-dpo/transforms/rules"
)

// kind is the culinary role of an ingredient: it picks the quantity, whether the ingredient
// can name the dish, and which step mentions it.
type kind int

const (
	kindVeg     kind = iota // the default: vegetables, fruit, mushrooms
	kindProtein             // tofu, paneer, meat, fish, eggs' plant stand-ins
	kindGrain               // rice, noodles, pasta, legumes, flours
	kindSpice               // dried spices, salt, sweeteners, thickeners
	kindFat                 // cooking oils and fats
	kindLiquid              // sauces, pastes, vinegars, juices, milks
	kindHerb                // fresh herbs and leaves
	kindCheese              // cheeses and their stand-ins
	kindCount               // counted things: eggs, limes, tortillas, onions
)

// class is an ingredient's role and quantity for a small (≤2 servings) and a large recipe.
type class struct {
	kind         kind
	small, large string
}

// byRole are the default quantities of each role.
var byRole = map[kind]class{
	kindVeg:     {kindVeg, "1 cup", "2 cups"},
	kindProtein: {kindProtein, "200 g", "400 g"},
	kindGrain:   {kindGrain, "1 cup", "2 cups"},
	kindSpice:   {kindSpice, "1 tsp", "2 tsp"},
	kindFat:     {kindFat, "1 tbsp", "2 tbsp"},
	kindLiquid:  {kindLiquid, "1 tbsp", "2 tbsp"},
	kindHerb:    {kindHerb, "1 handful", "2 handfuls"},
	kindCheese:  {kindCheese, "50 g", "100 g"},
	kindCount:   {kindCount, "1", "2"},
}

// phraseClasses override the word rules for whole normalised names.
var phraseClasses = map[string]class{
	"black pepper":          byRole[kindSpice],
	"nutritional yeast":     {kindCheese, "2 tbsp", "3 tbsp"},
	"coconut milk":          {kindLiquid, "1 cup", "2 cups"},
	"coconut cream":         {kindLiquid, "1/2 cup", "1 cup"},
	"kombu dashi":           {kindLiquid, "2 cups", "4 cups"},
	"shiitake dashi":        {kindLiquid, "2 cups", "4 cups"},
	"flax egg":              {kindCount, "1", "2"},
	"xanthan gum":           {kindSpice, "1/2 tsp", "1 tsp"},
	"heart of palm":         byRole[kindProtein],
	"lettuce cup":           {kindCount, "4", "8"},
	"all purpose flour":     {kindGrain, "2 tbsp", "1/4 cup"},
	"cauliflower mash":      byRole[kindGrain],
	"low sodium stock":      {kindLiquid, "2 cups", "4 cups"},
	"low sodium broth":      {kindLiquid, "2 cups", "4 cups"},
	"smoked paprika":        byRole[kindSpice],
	"dried red chili":       {kindSpice, "3", "6"},
	"monk fruit sweetener":  byRole[kindSpice],
	"instant dashi granule": byRole[kindSpice],
}

// wordClasses classify by the last listed word of the name (English puts the head noun last:
// "chicken thighs" is a thigh, "toasted sesame oil" an oil).
var wordClasses = func() map[string]class {
	m := map[string]class{}
	set := func(c class, words ...string) {
		for _, w := range words {
			m[w] = c
		}
	}
	set(byRole[kindProtein], "tofu", "paneer", "chicken", "thigh", "breast", "pork", "belly", "beef",
		"rib", "lamb", "steak", "salmon", "cod", "shrimp", "fish", "fillet", "chorizo", "jackfruit",
		"tempeh", "seitan")
	set(byRole[kindGrain], "rice", "noodle", "pasta", "spaghetti", "penne", "orzo", "couscous", "quinoa",
		"polenta", "lentil", "chickpea", "bean", "gnocchi", "cake", "pea", "edamame", "corn", "yuca")
	set(class{kindGrain, "2 tbsp", "1/4 cup"}, "flour", "breadcrumb")
	set(class{kindCount, "2 slices", "4 slices"}, "bread", "ciabatta")
	set(class{kindProtein, "2", "4"}, "egg")
	set(class{kindCount, "2", "4"}, "pita", "flatbread", "tomato", "chili", "plum", "scallion")
	set(class{kindCount, "4", "8"}, "tortilla")
	set(byRole[kindCount], "lime", "lemon", "avocado", "onion", "pepper", "jalapeno", "potato",
		"plantain", "pear", "zucchini", "eggplant", "carrot", "cucumber", "yuzu")
	set(class{kindCount, "2 cloves", "4 cloves"}, "garlic")
	set(byRole[kindSpice], "seed", "powder", "masala", "turmeric", "cumin", "gochugaru", "peppercorn",
		"oregano", "anise", "pod", "flake", "salt", "sugar", "sweetener", "cornstarch", "paprika")
	set(class{kindSpice, "1 tbsp", "2 tbsp"}, "ginger")
	set(byRole[kindFat], "oil", "butter", "ghee")
	set(byRole[kindLiquid], "sauce", "vinegar", "paste", "miso", "doenjang", "gochujang", "aminos",
		"juice", "honey", "syrup", "crema", "tahini", "tamari", "mirin", "tamarind")
	set(class{kindLiquid, "1/2 cup", "1 cup"}, "yogurt", "milk", "cream")
	set(class{kindLiquid, "2 cups", "4 cups"}, "stock", "broth", "water", "dashi")
	set(byRole[kindHerb], "cilantro", "basil", "parsley", "shiso", "perilla", "rosemary", "leaf", "mint", "herb")
	set(class{kindVeg, "1 sheet", "2 sheets"}, "kombu", "nori")
	set(class{kindVeg, "1 tbsp", "2 tbsp"}, "wakame")
	set(byRole[kindCheese], "parmesan", "pecorino", "mozzarella", "feta", "cotija", "queso", "fresco", "cheese")
	set(class{kindCheese, "1/2 cup", "1 cup"}, "ricotta")
	set(class{kindVeg, "2 tbsp", "1/4 cup"}, "pepita", "nut", "cashew", "olive")
	return m
}()

// classify returns an ingredient's role and quantities.
func classify(name string) class {
	key := rules.Normalize(name)
	if c, ok := phraseClasses[key]; ok {
		return c
	}
	toks := strings.Fields(key)
	for i := len(toks) - 1; i >= 0; i-- {
		if c, ok := wordClasses[toks[i]]; ok {
			return c
		}
	}
	return byRole[kindVeg]
}

// quantity is the ingredient's quantity for a recipe of the given servings.
func quantity(name string, servings int) string {
	c := classify(name)
	if servings <= 2 {
		return c.small
	}
	return c.large
}
