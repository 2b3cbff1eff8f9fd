package peft_test

import (
	"fmt"
	"log"
	"os"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/peft"
)

// A new adapter is saved in PEFT's layout, loaded back and merged into base weights.
func Example() {
	mc := model.Config{
		HiddenSize: 8, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1,
		IntermediateSize: 12, VocabSize: 16, RMSNormEps: 1e-5, RopeTheta: 10000, MaxPositionEmbeddings: 32,
	}
	dir, err := os.MkdirTemp("", "peft-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	a := peft.NewRandom(peft.NewConfig(4, 8, 0.05, "q_proj", "v_proj"), mc, 1)
	if err := peft.Save(dir, a, mc); err != nil {
		log.Fatal(err)
	}
	loaded, err := peft.Load(dir, mc)
	if err != nil {
		log.Fatal(err)
	}
	in, out, _ := peft.ModuleShape(mc, "v_proj")
	nameA, nameB := peft.TensorNames(peft.ModulePath(1, "v_proj"))
	fmt.Println(nameA, "[", loaded.Config.R, in, "]")
	fmt.Println(nameB, "[", out, loaded.Config.R, "]")

	weights := map[string][]float32{}
	for _, s := range model.TensorSpecs(mc) {
		n := 1
		for _, d := range s.Shape {
			n *= d
		}
		weights[s.Name] = make([]float32, n)
	}
	if err := peft.Merge(weights, mc, loaded); err != nil {
		log.Fatal(err)
	}
	fmt.Println("scale", loaded.Config.Scale(), "modules", len(peft.Modules(mc, loaded.Config.TargetModules)))
	// Output:
	// base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight [ 4 8 ]
	// base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight [ 4 4 ]
	// scale 2 modules 4
}
