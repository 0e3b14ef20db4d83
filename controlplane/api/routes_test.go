package api

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/pb33f/libopenapi"
	oaval "github.com/pb33f/libopenapi-validator"
)

// TestRoutesMatchDocument: every route the server registers is an operation of openapi.yaml,
// and every operation is a registered route.
func TestRoutesMatchDocument(t *testing.T) {
	var registered []string
	for _, rt := range (&Server{}).routes() {
		registered = append(registered, rt.method+" "+rt.path)
	}
	slices.Sort(registered)
	documented := documentOperations(t)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.yaml operation %s is not a registered route", d)
		}
	}
	if len(registered) != len(documented) {
		t.Errorf("%d routes, %d operations", len(registered), len(documented))
	}
}

// TestDocumentCheckIsNotVacuous: the request and response checks fail when the document and
// the server disagree (here: a document that says last4 is an integer and ttl a string).
func TestDocumentCheckIsNotVacuous(t *testing.T) {
	e := newEnv(t, backends[0], withoutDoc())
	mutated := bytes.Replace(OpenAPI, []byte("last4: { type: string, maxLength: 4 }"), []byte("last4: { type: integer }"), 1)
	mutated = bytes.Replace(mutated, []byte("        ttl:\n          type: integer"), []byte("        ttl:\n          type: string"), 1)
	if bytes.Equal(mutated, OpenAPI) {
		t.Fatal("mutation did not apply")
	}
	doc, err := libopenapi.NewDocument(mutated)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := oaval.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	q := req{method: "POST", path: "/v1/keys", body: map[string]any{"type": "live"}}
	r, _ := e.build(q)
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, r)
	r2, _ := e.build(q)
	if ok, _ := v.ValidateHttpResponse(r2, rec.Result()); ok || rec.Code != 201 {
		t.Fatalf("status %d; a Key with a string last4 passed a document requiring an integer", rec.Code)
	}
	r3, _ := e.build(req{method: "POST", path: "/v1/sessions/s/client-tokens", body: map[string]any{"scopes": []string{"read"}, "ttl": 5}})
	if ok, _ := v.ValidateHttpRequestSync(r3); ok {
		t.Fatal("an integer ttl passed a document requiring a string")
	}
}
