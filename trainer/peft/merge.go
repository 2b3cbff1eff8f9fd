package peft

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/pantrypilot/recipe-dpo/trainer/model"
	"github.com/pantrypilot/recipe-dpo/trainer/safetensors"
)

// Merge folds a into base weights in place, as PEFT's merge_and_unload does: for every adapted
// module m with Hugging Face weight W = weights[m + ".weight"] ([out, in], row-major),
//
//	W' = W + Scale() · B·A        B [out, r], A [r, in]
//
// B·A is accumulated in float64 and added to W once, then rounded to float32. weights is keyed
// by Hugging Face tensor name (e.g. "model.layers.3.self_attn.q_proj.weight"); other entries
// are left alone. Everything is checked first (a.Check, and every target weight present with
// out·in values), so on error no weight has been changed. Modules are merged in parallel.
func Merge(weights map[string][]float32, mc model.Config, a *Adapter) error {
	if err := a.Check(mc); err != nil {
		return fmt.Errorf("merge adapter: %w", err)
	}
	modules := Modules(mc, a.Config.TargetModules)
	e := MismatchError{What: "base model weights"}
	for _, m := range modules {
		in, out, _ := ModuleShape(mc, m)
		w, ok := weights[m+".weight"]
		switch {
		case !ok:
			e.Missing = append(e.Missing, m+".weight")
		case len(w) != out*in:
			e.WrongShape = append(e.WrongShape, fmt.Sprintf("%s.weight has %d values, want [%d %d] = %d", m, len(w), out, in, out*in))
		}
	}
	if !e.empty() {
		return fmt.Errorf("merge adapter: %w", e.sorted())
	}
	scale := a.Config.Scale()
	parallel(len(modules), func(i int) {
		m := modules[i]
		in, out, _ := ModuleShape(mc, m)
		mergeModule(weights[m+".weight"], a.A[m], a.B[m], in, out, a.Config.R, scale)
	})
	return nil
}

// MergeFile is Merge on a checkpoint as model.LoadModelDir returns it: each target tensor is
// widened to float32, merged and stored back in its own dtype, rounded to nearest even. For a
// BF16 base that rounding dominates (8 mantissa bits): to keep the adapter's full effect,
// convert the base to float32 and use Merge. Shapes are checked like Merge's; on error no
// tensor has been changed.
func MergeFile(f *safetensors.File, mc model.Config, a *Adapter) error {
	if err := a.Check(mc); err != nil {
		return fmt.Errorf("merge adapter: %w", err)
	}
	modules := Modules(mc, a.Config.TargetModules)
	weights := make(map[string][]float32, len(modules))
	var errs []error
	for _, m := range modules {
		name := m + ".weight"
		t, ok := f.Tensors[name]
		if !ok {
			continue // Merge reports it with the others
		}
		v, err := t.Float32s()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		weights[name] = v
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("merge adapter: base weights: %w", err)
	}
	if err := Merge(weights, mc, a); err != nil {
		return err
	}
	merged := make(map[string]safetensors.Tensor, len(weights))
	for name, v := range weights {
		t := f.Tensors[name]
		nt, err := safetensors.FromFloat32(name, t.Shape, v, t.DType)
		if err != nil {
			return fmt.Errorf("merge adapter: %w", err) // shapes were checked: cannot happen
		}
		merged[name] = nt
	}
	for name, t := range merged { // replace only once every tensor converted
		f.Tensors[name] = t
	}
	return nil
}

// mergeModule adds scale·B·A to w, row by row: w [out, in], a [r, in], b [out, r]. Four
// rows of A are folded per pass over the accumulator, which quarters its loads and stores
// (the loop is memory-bound otherwise); the sum order per element is fixed, so the result is
// deterministic.
func mergeModule(w, a, b []float32, in, out, r int, scale float64) {
	acc := make([]float64, in)
	for o := range out {
		clear(acc)
		bo := b[o*r : (o+1)*r]
		k := 0
		for ; k+4 <= r; k += 4 {
			b0, b1, b2, b3 := float64(bo[k]), float64(bo[k+1]), float64(bo[k+2]), float64(bo[k+3])
			a0 := a[k*in : (k+1)*in]
			a1 := a[(k+1)*in : (k+2)*in][:len(a0)]
			a2 := a[(k+2)*in : (k+3)*in][:len(a0)]
			a3 := a[(k+3)*in : (k+4)*in][:len(a0)]
			acc := acc[:len(a0)]
			for i := range a0 {
				acc[i] += b0*float64(a0[i]) + b1*float64(a1[i]) + b2*float64(a2[i]) + b3*float64(a3[i])
			}
		}
		for ; k < r; k++ {
			bk := float64(bo[k])
			row := a[k*in : (k+1)*in]
			acc := acc[:len(row)]
			for i, x := range row {
				acc[i] += bk * float64(x)
			}
		}
		wr := w[o*in : (o+1)*in]
		acc := acc[:len(wr)]
		for i := range wr {
			wr[i] = float32(float64(wr[i]) + scale*acc[i])
		}
	}
}

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
