package docs

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestLoad(t *testing.T) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromFile("/work/wt/api/docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(), openapi3.EnableMultiError()); err != nil {
		t.Fatal(err)
	}
	t.Log(doc.Paths.Len(), doc.Paths.Value("/api/{service}/{path}").Options.Extensions, doc.Paths.Value("/api/{service}/{path}").Options.Summary)
}
