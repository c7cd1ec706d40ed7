package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// root is the repository's root (where go.mod is).
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// sources lists the repository's Go files (tests included when tests),
// relative to root, leaving out bench/ (benchmark programs with peers'
// code) and testdata.
func sources(t *testing.T, tests bool) []string {
	t.Helper()
	r := root(t)
	var out []string
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r, path)
		if d.IsDir() {
			if rel == "bench" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && (tests || !strings.HasSuffix(path, "_test.go")) {
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// where lists the files (without tests) whose text matches re.
func where(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var out []string
	for _, f := range sources(t, false) {
		if re.MatchString(read(t, f)) {
			out = append(out, f)
		}
	}
	return out
}

// publicPackage reports whether the directory of rel is a package code
// outside the module can import.
func publicPackage(rel string) bool {
	dir := filepath.ToSlash(filepath.Dir(rel))
	for _, p := range []string{"internal", "cmd", "examples", "deploy", "scripts"} {
		if dir == p || strings.HasPrefix(dir, p+"/") || strings.Contains(dir, "/internal/") || strings.HasSuffix(dir, "/internal") {
			return false
		}
	}
	return dir != "."
}

// TestPublicAPIUsesNoInternalTypes: every exported function, method, type,
// field, constant and variable of a public package is expressed without
// internal/ types, so code outside the module can build every config and
// read every answer (queue.Config{TTL: time.Minute} did not compile).
func TestPublicAPIUsesNoInternalTypes(t *testing.T) {
	fset := token.NewFileSet()
	for _, rel := range sources(t, false) {
		if !publicPackage(rel) {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(root(t), rel), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		internal := map[string]string{} // import name → path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(path, "/internal/") {
				continue
			}
			name := filepath.Base(path)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			internal[name] = path
		}
		if len(internal) == 0 {
			continue
		}
		check := func(what string, e ast.Node) {
			if e == nil {
				return
			}
			ast.Inspect(e, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && internal[id.Name] != "" {
						t.Errorf("%s: exported %s uses %s.%s (%s)", rel, what, id.Name, sel.Sel.Name, internal[id.Name])
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Recv != nil && !exportedRecv(d.Recv) {
					continue
				}
				check(d.Name.Name, d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							checkType(s.Name.Name, s.Type, check)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								check(n.Name, s.Type)
								for _, v := range s.Values {
									check(n.Name, v)
								}
							}
						}
					}
				}
			}
		}
	}
}

// checkType checks what an exported type shows: the exported fields of a
// struct, the methods of an interface, or the whole type expression.
func checkType(name string, e ast.Expr, check func(string, ast.Node)) {
	switch e := e.(type) {
	case *ast.StructType:
		for _, fld := range e.Fields.List {
			exported := len(fld.Names) == 0 && ast.IsExported(embeddedName(fld.Type))
			for _, n := range fld.Names {
				exported = exported || n.IsExported()
			}
			if exported {
				check(name+" field", fld.Type)
			}
		}
	case *ast.InterfaceType:
		check(name, e)
	default:
		check(name, e)
	}
}

func embeddedName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return embeddedName(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.Ident:
		return e.Name
	}
	return ""
}

func exportedRecv(fl *ast.FieldList) bool {
	return ast.IsExported(embeddedName(fl.List[0].Type))
}

// TestOnePropagator: the W3C propagator is built once, in telemetry (it was
// built six times, with three NATS header carriers).
func TestOnePropagator(t *testing.T) {
	got := where(t, regexp.MustCompile(`NewCompositeTextMapPropagator\(`))
	if !slices.Equal(got, []string{"telemetry/propagation.go"}) {
		t.Errorf("the propagator is built in %v; build it only in telemetry/propagation.go", got)
	}
	if got := where(t, regexp.MustCompile(`\bTextMapCarrier\b`)); !slices.Equal(got, []string{"telemetry/propagation.go"}) {
		t.Errorf("trace carriers in %v; carry trace context with telemetry's helpers", got)
	}
}

// TestOneClock: one Clock interface (breaker, ratelimit and gateway each
// declared the same one).
func TestOneClock(t *testing.T) {
	got := where(t, regexp.MustCompile(`(?m)^type Clock interface`))
	if !slices.Equal(got, []string{"clock/clock.go"}) {
		t.Errorf("Clock interfaces in %v; use clock.Clock", got)
	}
}

// TestOneRetryVocabulary: the retry budget, idempotency and dial-error
// classification live in retry/ only (the gateway and the client each had
// a copy, and two budgets that meant different things).
func TestOneRetryVocabulary(t *testing.T) {
	for _, re := range []string{`func idempotent\w*\(`, `func isDialError\(`, `(?m)^type budget struct`, `(?m)^type Budget struct`,
		`func IsFailure\(`} {
		for _, f := range where(t, regexp.MustCompile(re)) {
			if !strings.HasPrefix(f, "retry/") {
				t.Errorf("%s: %s belongs to package retry", f, re)
			}
		}
	}
}

// TestOneBodyReaderProblemWriterSSEWriter: Plexus's APIs read request
// bodies, write problems and stream server-sent events with internal/httpx
// only. The gateway's proxy streams bodies it does not read
// (gateway/body.go), and telemetry bounds a gzip body as sent before httpx
// reads it decompressed. Example services and test helpers are programs of
// their own and not looked at.
func TestOneBodyReaderProblemWriterSSEWriter(t *testing.T) {
	for re, allowed := range map[string][]string{
		`http\.MaxBytesReader\(`:                             {"internal/httpx/json.go", "gateway/body.go", "telemetry/api.go"},
		`io\.ReadAll\(r\.Body`:                               nil,
		`Set\("Content-Type", "application/problem\+json"\)`: {"internal/httpx/problem.go"},
		`Set\("Content-Type", "text/event-stream"\)`:         {"internal/httpx/sse.go"},
		`json\.NewDecoder\(r\.Body\)`:                        nil,
	} {
		for _, f := range where(t, regexp.MustCompile(re)) {
			if !slices.Contains(allowed, f) && !strings.HasPrefix(f, "examples/") && !strings.HasSuffix(filepath.Dir(f), "test") {
				t.Errorf("%s: %s outside internal/httpx; use its helpers", f, re)
			}
		}
	}
}

// TestEveryHTTPAPIHasTheSameShape: each HTTP API is NewAPI(…) with
// Mount(handle) (the method was Mount, Routes or Register) and answers
// errors through httpx.Errors.
func TestEveryHTTPAPIHasTheSameShape(t *testing.T) {
	for _, pkg := range []string{"registry", "queue", "eventstore", "telemetry", "gateway"} {
		var all strings.Builder
		for _, f := range sources(t, false) {
			if filepath.Dir(f) == pkg {
				all.WriteString(read(t, f))
			}
		}
		src := all.String()
		for _, want := range []string{"\nfunc NewAPI(", "\nfunc (a *API) Mount(handle func(pattern string, h http.Handler)) {"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s: no %q", pkg, strings.TrimSpace(want))
			}
		}
		if regexp.MustCompile(`\) (Routes|Register)\(handle func`).MatchString(src) {
			t.Errorf("%s: routes are mounted with Mount", pkg)
		}
		if pkg != "gateway" && !strings.Contains(src, "httpx.Errors{") {
			t.Errorf("%s: its API does not answer errors through httpx.Errors", pkg)
		}
	}
}

// TestReferencesStayInTheRepository: comments and docs cited API.md and
// "the original", neither of which is in the repository; they cite
// docs/openapi.yaml and docs/ (the README defines "the seed").
func TestReferencesStayInTheRepository(t *testing.T) {
	re := regexp.MustCompile(`API\.md|[Tt]he original\b`)
	r := root(t)
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, ".md") || strings.HasSuffix(path, "arch_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if re.MatchString(line) {
				t.Errorf("%s:%d cites a document outside the repository: %s", filepath.ToSlash(rel), i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
