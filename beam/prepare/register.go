package prepare

import (
	"context"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/pantrypilot/recipe-dpo/schemas"
)

func init() {
	for _, t := range []any{schemas.Prompt{}, schemas.Variant{}, schemas.PreferencePair{}, schemas.DPOExample{},
		schemas.DeadLetter{}, schemas.ShardInfo{}} {
		beam.RegisterType(reflect.TypeOf(t))
	}
	register.DoFn3x0[schemas.Prompt, func(schemas.Prompt), func(schemas.DeadLetter)](&validatePromptFn{})
	register.DoFn1x2[schemas.Prompt, int, schemas.Prompt](&batchKeyFn[schemas.Prompt]{})
	register.DoFn1x2[schemas.Variant, int, schemas.Variant](&batchKeyFn[schemas.Variant]{})
	register.DoFn5x1[context.Context, int, func(*schemas.Prompt) bool, func(schemas.Variant), func(schemas.DeadLetter), error](&generateFn{})
	register.DoFn6x1[context.Context, int, func(*schemas.Variant) bool, func(schemas.PreferencePair), func(schemas.DeadLetter), func(string, int64), error](&labelFn{})
	register.DoFn3x0[schemas.PreferencePair, func(schemas.DPOExample), func(schemas.DeadLetter)](&formatFn{})
	register.Function1x2(markerFn)
	register.Function2x0(tallyDead)
	register.Function2x0(tallyVariant)
	register.Function2x0(tallyPair)
	register.DoFn4x1[context.Context, []byte, func(*schemas.ShardInfo) bool, func(*string, *int64) bool, error](&manifestFn{})
	registerRow[schemas.Prompt]()
	registerRow[schemas.Variant]()
	registerRow[schemas.PreferencePair]()
	registerRow[schemas.DPOExample]()
	registerRow[schemas.DeadLetter]()
	register.DoFn2x0[schemas.Prompt, func(string, int64)](&tallyFn[schemas.Prompt]{})
	register.DoFn2x0[schemas.PreferencePair, func(string, int64)](&tallyFn[schemas.PreferencePair]{})

	register.Emitter1[schemas.Prompt]()
	register.Emitter1[schemas.Variant]()
	register.Emitter1[schemas.PreferencePair]()
	register.Emitter1[schemas.DPOExample]()
	register.Emitter1[schemas.DeadLetter]()
	register.Emitter1[schemas.ShardInfo]()
	register.Emitter2[string, int64]()
	register.Iter1[*schemas.Prompt]()
	register.Iter1[*schemas.Variant]()
	register.Iter1[*schemas.ShardInfo]()
	register.Iter1[*int]()
	register.Iter2[*string, *int64]()
}

func registerRow[T row]() {
	register.DoFn1x2[T, string, T](&partitionFn[T]{})
	register.DoFn5x1[context.Context, string, func(*T) bool, func(*int) bool, func(schemas.ShardInfo), error](&writeShardsFn[T]{})
	register.Iter1[*T]()
}
