package evaluate

import (
	"context"
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/pantrypilot/recipe-dpo/schemas"
	"github.com/pantrypilot/recipe-dpo/transforms/rowsink"
)

func init() {
	beam.RegisterType(reflect.TypeOf(schemas.TestCase{}))
	beam.RegisterType(reflect.TypeOf(Outputs{}))
	register.DoFn1x2[schemas.TestCase, int, schemas.TestCase](&caseKeyFn{})
	register.DoFn1x2[Outputs, int, Outputs](&pairKeyFn{})
	register.DoFn4x1[context.Context, int, func(*schemas.TestCase) bool, func(Outputs), error](&generateFn{})
	register.DoFn4x1[context.Context, int, func(*Outputs) bool, func(schemas.EvalResult), error](&judgeFn{})
	register.DoFn3x1[context.Context, []byte, func(*schemas.EvalResult) bool, error](&reportFn{})
	register.Emitter1[Outputs]()
	register.Iter1[*schemas.TestCase]()
	register.Iter1[*Outputs]()
	rowsink.Register[schemas.EvalResult]()
}
