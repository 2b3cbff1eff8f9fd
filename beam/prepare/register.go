package prepare

import (
	"context"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
)

func init() {
	register.DoFn3x0[schemas.Prompt, func(schemas.Prompt), func(schemas.DeadLetter)](&validatePromptFn{})
	register.DoFn1x2[schemas.Prompt, int, schemas.Prompt](&batchKeyFn[schemas.Prompt]{})
	register.DoFn1x2[schemas.Variant, int, schemas.Variant](&batchKeyFn[schemas.Variant]{})
	register.DoFn5x1[context.Context, int, func(*schemas.Prompt) bool, func(schemas.Variant), func(schemas.DeadLetter), error](&generateFn{})
	register.DoFn6x1[context.Context, int, func(*schemas.Variant) bool, func(schemas.PreferencePair), func(schemas.DeadLetter), func(string, int64), error](&labelFn{})
	register.DoFn3x0[schemas.PreferencePair, func(schemas.DPOExample), func(schemas.DeadLetter)](&formatFn{})
	register.Function2x0(tallyDead)
	register.Function2x0(tallyVariant)
	register.Function2x0(tallyPair)
	register.DoFn4x1[context.Context, []byte, func(*schemas.ShardInfo) bool, func(*string, *int64) bool, error](&manifestFn{})
	rowsink.Register[schemas.Prompt]()
	rowsink.Register[schemas.Variant]()
	rowsink.Register[schemas.PreferencePair]()
	rowsink.Register[schemas.DPOExample]()
	rowsink.Register[schemas.DeadLetter]()
	register.DoFn2x0[schemas.Prompt, func(string, int64)](&tallyFn[schemas.Prompt]{})
	register.DoFn2x0[schemas.PreferencePair, func(string, int64)](&tallyFn[schemas.PreferencePair]{})

	register.Emitter2[string, int64]()
	register.Iter1[*schemas.ShardInfo]()
	register.Iter2[*string, *int64]()
}
