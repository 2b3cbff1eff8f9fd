package train

import (
	"encoding/json"
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/pantrypilot/recipe-dpo/trainer/llama"
)

// A session is a LoRA run's loaded model and compiled programs, which train-all hands from
// one persona to the next: the personas share the base model and every setting, so their
// graphs are the same and only the batches differ. XLA compiles a program for each batch
// shape of each graph (on an H100, 3–7 s apiece for the demo's model and 40 s for a training
// step at the SmolLM-135M shape), so a persona that reuses the programs compiles only the
// shapes no earlier persona met, and loads no base weights. Between personas the adapter
// goes back to its initial values and the gradient accumulators and AdamW moments to zero,
// so each persona trains exactly as a fresh run would (the same bytes on the pure-Go
// backend). --full runs, which train the base itself, get no session.
type session struct {
	key     string // sessionKey of the runs it serves
	base    *baseModel
	store   *model.Store
	m       *llama.Model
	tv      *trainVars
	initial []*tensors.Tensor // the adapter's initial values, in tv.params order, on the host
	shapes  map[[2]int]bool   // micro-batch shapes the training program has met (see stepClock)

	micro, apply, ref *model.Exec // compiled as first needed
}

// sessionKey identifies the runs that can share a session: the same settings but for the
// persona.
func sessionKey(c Config) string {
	c.Persona = ""
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a Config always marshals (training_args.json is the same)
	}
	return string(b)
}

// newSession holds base, store, m and tv (just built) and, for a LoRA run, a copy of the
// adapter's initial values.
func newSession(c Config, base *baseModel, store *model.Store, m *llama.Model, tv *trainVars) (*session, error) {
	s := &session{key: sessionKey(c), base: base, store: store, m: m, tv: tv, shapes: map[[2]int]bool{}}
	if tv.full {
		return s, nil // never reused: the base it trains is not kept
	}
	for i, p := range tv.params {
		v, err := p.Value()
		if err == nil {
			v, err = v.LocalClone()
		}
		if err != nil {
			return nil, fmt.Errorf("train: %s: %w", tv.names[i], err)
		}
		s.initial = append(s.initial, v)
	}
	return s, nil
}

// reset puts the adapter back to its initial values and zeroes the gradient accumulators and
// AdamW moments: the state buildModel leaves.
func (s *session) reset() error {
	for i, p := range s.tv.params {
		v, err := s.initial[i].LocalClone() // SetValue takes ownership; keep the copy
		if err == nil {
			err = p.SetValue(v)
		}
		if err != nil {
			return fmt.Errorf("train: %s: %w", s.tv.names[i], err)
		}
	}
	for _, vs := range [][]*model.Variable{s.tv.acc, s.tv.mom, s.tv.vel} {
		for _, v := range vs {
			if err := v.SetValue(tensors.FromShape(v.Shape())); err != nil {
				return fmt.Errorf("train: %s: %w", v.Path(), err)
			}
		}
	}
	return nil
}

// compiled returns *slot, compiling it with build the first time.
func compiled(slot **model.Exec, build func() (*model.Exec, error)) (*model.Exec, error) {
	if *slot == nil {
		e, err := build()
		if err != nil {
			return nil, err
		}
		*slot = e
	}
	return *slot, nil
}

// refExec is the reference pass's executor (see computeRefLogps).
func (s *session) refExec(backend compute.Backend) (*model.Exec, error) {
	return compiled(&s.ref, func() (*model.Exec, error) { return newRefExec(backend, s.store, s.m) })
}

// close frees the compiled programs.
func (s *session) close() {
	for _, e := range []*model.Exec{s.micro, s.apply, s.ref} {
		if e != nil {
			e.Finalize()
		}
	}
	s.micro, s.apply, s.ref = nil, nil, nil
}

// sessions holds the session train-all's previous persona left (one at a time: personas of
// one train-all run one after another when they share a backend).
type sessions struct{ last *session }

// take returns the kept session if it serves c (and forgets it: the caller owns it now).
func (ss *sessions) take(c Config) *session {
	if ss == nil || ss.last == nil || c.Full || ss.last.key != sessionKey(c) {
		return nil
	}
	s := ss.last
	ss.last = nil
	return s
}

// keep stores s for the next persona, or closes it when there is no next (ss nil) or it
// cannot serve one (--full).
func (ss *sessions) keep(s *session, c Config) {
	if ss == nil || c.Full {
		s.close()
		return
	}
	ss.close()
	ss.last = s
}

// close frees the kept session, if any.
func (ss *sessions) close() {
	if ss != nil && ss.last != nil {
		ss.last.close()
		ss.last = nil
	}
}
